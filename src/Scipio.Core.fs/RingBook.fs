namespace Scipio.Core

/// What the shell may do with an operation it wants to put on a ring.
[<Struct; RequireQualifiedAccess>]
type Admission =
    /// Write its SQE now.
    | Prepare
    /// The submission queue is full of prepared SQEs: hand them to the kernel, then write this one.
    | SubmitFirst
    /// The completion queue could overflow if one more went in flight: keep the operation in the backlog until a
    /// completion frees a slot.
    | Backlog

/// In-flight accounting for one io_uring instance. The invariant: prepared + in flight never exceeds the CQ size,
/// so the kernel never has to drop or hold back a completion, and prepared never exceeds the SQ size.
[<Struct>]
type RingBook =
    {
        /// Submission queue entries.
        SqEntries: int
        /// Completion queue entries.
        CqEntries: int
        /// SQEs written but not yet handed to the kernel.
        Prepared: int
        /// Operations the kernel has and has not yet completed.
        InFlight: int
        /// Operations handed to the kernel, ever.
        Submitted: int64
        /// Completions reaped, ever.
        Completed: int64
    }

/// Transitions of a RingBook.
[<RequireQualifiedAccess>]
module RingBook =
    /// An empty book for a ring of the given sizes.
    let create (sqEntries: int) (cqEntries: int) =
        {
            SqEntries = sqEntries
            CqEntries = cqEntries
            Prepared = 0
            InFlight = 0
            Submitted = 0L
            Completed = 0L
        }

    /// Whether one more operation may be prepared now.
    let admit (book: RingBook) =
        if book.Prepared + book.InFlight >= book.CqEntries then Admission.Backlog
        elif book.Prepared >= book.SqEntries then Admission.SubmitFirst
        else Admission.Prepare

    /// One SQE was written. Only after `admit` said Prepare.
    let prepared (book: RingBook) = { book with Prepared = book.Prepared + 1 }

    /// The kernel consumed `count` prepared SQEs (io_uring_enter's return value, ≤ Prepared).
    let submitted (count: int) (book: RingBook) =
        let count = max 0 (min count book.Prepared)

        { book with
            Prepared = book.Prepared - count
            InFlight = book.InFlight + count
            Submitted = book.Submitted + int64 count
        }

    /// An operation in flight completed. A multishot operation's CQEs flagged IORING_CQE_F_MORE are not completions:
    /// count only its last one.
    let completed (book: RingBook) =
        { book with
            InFlight = book.InFlight - 1
            Completed = book.Completed + 1L
        }

    /// True when nothing is prepared or in flight.
    let isIdle (book: RingBook) = book.Prepared = 0 && book.InFlight = 0

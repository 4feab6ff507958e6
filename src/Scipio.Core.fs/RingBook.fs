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

/// In-flight accounting for one io_uring instance. The invariants: prepared + in flight never exceeds the CQ size,
/// so the kernel never has to drop or hold back a completion; prepared never exceeds the SQ size; and user
/// operations take at most half the CQ less one, so the shard's own operations — a cancel for each user operation,
/// the wake-up read, the latency-ring poll — always find room: they must never wait for a user operation to
/// complete, which may be never (a read on an idle socket).
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
        /// User operations prepared or in flight (the rest are the shard's own).
        UserOps: int
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
            UserOps = 0
            Submitted = 0L
            Completed = 0L
        }

    /// How many user operations may be prepared or in flight: half the CQ less one (at least one).
    let userCapacity (book: RingBook) = max 1 (book.CqEntries / 2 - 1)

    /// Whether one more of the shard's own operations may be prepared now.
    let admitInternal (book: RingBook) =
        if book.Prepared + book.InFlight >= book.CqEntries then Admission.Backlog
        elif book.Prepared >= book.SqEntries then Admission.SubmitFirst
        else Admission.Prepare

    /// Whether one more user operation may be prepared now.
    let admit (book: RingBook) =
        if book.UserOps >= userCapacity book then Admission.Backlog else admitInternal book

    /// One SQE was written, for a user operation or one of the shard's own. Only after admission said Prepare.
    let prepared (user: bool) (book: RingBook) =
        { book with
            Prepared = book.Prepared + 1
            UserOps = if user then book.UserOps + 1 else book.UserOps
        }

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
    let completed (user: bool) (book: RingBook) =
        { book with
            InFlight = book.InFlight - 1
            UserOps = if user then book.UserOps - 1 else book.UserOps
            Completed = book.Completed + 1L
        }

    /// True when nothing is prepared or in flight.
    let isIdle (book: RingBook) = book.Prepared = 0 && book.InFlight = 0

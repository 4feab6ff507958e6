namespace Scipio.Core

open System.Runtime.CompilerServices

/// What the shell may do with an operation it wants to put on a ring.
[<Struct; RequireQualifiedAccess>]
type Admission =
    /// Write its SQE now.
    | Prepare
    /// The submission queue is full of prepared SQEs: hand them to the kernel, then write this one.
    | SubmitFirst
    /// Its class has as many operations prepared or in flight as it may: keep the operation in the shell's backlog
    /// (one per class, first in first out) until one of the class completes.
    | Backlog

/// How an operation behaves once in flight: what the ring's accounting must make room for.
[<Struct; RequireQualifiedAccess>]
type OpClass =
    /// The shard's own: cancels, the wake-up read, the latency-ring poll, the preemption timer, MSG_RING sends. Never
    /// backlogged: a cancel must not wait for the operation it cancels to complete, which may be never.
    | Internal
    /// Completes without outside help: file I/O on regular files and block devices, open, statx, fsync, close, nop.
    | Prompt
    /// May wait indefinitely: a read on a FIFO, socket or tty, accept, poll, multishot operations.
    | Lingering

/// In-flight accounting for one io_uring instance, set up with IORING_FEAT_NODROP (Linux 5.5; Scipio needs 6.1) and
/// a CQ sized by IORING_SETUP_CQSIZE (16 × SQ, at least 1024). Invariants: prepared never exceeds the SQ size; user
/// prompt operations prepared or in flight never exceed CQ − SQ, so a burst of them completing, with a full SQ's
/// worth of the shard's own operations, fits the CQ; lingering operations are bounded only by memory
/// (lingeringCapacity), since they complete rarely and, should many complete at once, NODROP keeps the CQEs that do
/// not fit in the kernel's overflow list until the next reap — never lost. So idle receives, however many, never
/// block file I/O or the shard's own operations.
[<Struct>]
type RingBook =
    {
        /// Submission queue entries.
        SqEntries: int
        /// Completion queue entries.
        CqEntries: int
        /// SQEs written but not yet handed to the kernel, of any class.
        Prepared: int
        /// Operations the kernel has and has not yet completed, of any class.
        InFlight: int
        /// User prompt operations prepared or in flight.
        Prompt: int
        /// User lingering operations prepared or in flight.
        Lingering: int
        /// The shard's own operations prepared or in flight.
        Internal: int
        /// Operations handed to the kernel, ever.
        Submitted: int64
        /// Operations completed (final completions), ever.
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
            Prompt = 0
            Lingering = 0
            Internal = 0
            Submitted = 0L
            Completed = 0L
        }

    /// How many user prompt operations may be prepared or in flight: CQ − SQ (the SQ's worth is room kept for the
    /// shard's own operations and lingering completions), at least 1.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let promptCapacity (book: RingBook) = max 1 (book.CqEntries - book.SqEntries)

    /// How many user lingering operations may be prepared or in flight: 64 × CQ, a bound on memory (pinned buffers,
    /// pooled operations) rather than on the ring: NODROP keeps an overflowing CQE in the kernel, never loses it.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let lingeringCapacity (book: RingBook) =
        if book.CqEntries > System.Int32.MaxValue / 64 then
            System.Int32.MaxValue
        else
            max 1 (64 * book.CqEntries)

    /// Whether one more operation of class `op` may be prepared now: Backlog when its class is at capacity (never
    /// for Internal), else SubmitFirst when the SQ is full of prepared SQEs, else Prepare.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let admit (op: OpClass) (book: RingBook) =
        let full =
            match op with
            | OpClass.Internal -> false
            | OpClass.Prompt -> book.Prompt >= promptCapacity book
            | OpClass.Lingering -> book.Lingering >= lingeringCapacity book

        if full then
            Admission.Backlog
        elif book.Prepared >= book.SqEntries then
            Admission.SubmitFirst
        else
            Admission.Prepare

    /// One SQE of class `op` was written. Only after admit said Prepare (or SubmitFirst, once submitted).
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let prepared (op: OpClass) (book: RingBook) =
        match op with
        | OpClass.Internal ->
            { book with
                Prepared = book.Prepared + 1
                Internal = book.Internal + 1
            }
        | OpClass.Prompt ->
            { book with
                Prepared = book.Prepared + 1
                Prompt = book.Prompt + 1
            }
        | OpClass.Lingering ->
            { book with
                Prepared = book.Prepared + 1
                Lingering = book.Lingering + 1
            }

    /// The kernel consumed `count` prepared SQEs (io_uring_enter's return value, clamped to 0..Prepared).
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let submitted (count: int) (book: RingBook) =
        let count = max 0 (min count book.Prepared)

        { book with
            Prepared = book.Prepared - count
            InFlight = book.InFlight + count
            Submitted = book.Submitted + int64 count
        }

    /// An in-flight operation of class `op` completed for good: its final CQE. A multishot operation's CQEs flagged
    /// IORING_CQE_F_MORE are not final; the shell calls this once per operation.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let completed (op: OpClass) (book: RingBook) =
        let book =
            { book with
                InFlight = book.InFlight - 1
                Completed = book.Completed + 1L
            }

        match op with
        | OpClass.Internal ->
            { book with
                Internal = book.Internal - 1
            }
        | OpClass.Prompt -> { book with Prompt = book.Prompt - 1 }
        | OpClass.Lingering ->
            { book with
                Lingering = book.Lingering - 1
            }

    /// True when nothing is prepared or in flight.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let isIdle (book: RingBook) = book.Prepared = 0 && book.InFlight = 0

    /// User operations (prompt and lingering) prepared or in flight.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let userOps (book: RingBook) = book.Prompt + book.Lingering

namespace Scipio.Core

open System

/// One range of a file a caller asks to read: `Length` bytes from `Offset`.
[<Struct>]
type FileSpan =
    {
        /// The first byte, from the start of the file; not negative.
        Offset: int64
        /// How many bytes; not negative. A zero-length span asks for nothing and gets an empty buffer.
        Length: int
    }

/// One read the shell submits, and the requests it serves: `ReadPlan.Order[First .. First + Count - 1]`.
[<Struct>]
type PlannedRead =
    {
        /// Where the read starts: a multiple of the alignment.
        Offset: int64
        /// How many bytes it reads: a multiple of the alignment. 0 for the one read that serves the zero-length
        /// requests, which is no device read: the shell completes those with empty buffers at once.
        Length: int
        /// Where the requests it serves start in `ReadPlan.Order`.
        First: int
        /// How many requests it serves.
        Count: int
    }

/// What a merged read may be.
[<Struct>]
type ReadPlanLimits =
    {
        /// The O_DIRECT alignment of offsets and lengths: a power of two, at least 512.
        Alignment: int
        /// The largest read, in bytes (the device's maximum request size): a positive multiple of `Alignment`. Only a
        /// read built around one request whose aligned span is longer may be longer (see `ReadPlan.plan`).
        MaxRequest: int
        /// The most a merged read may read, as a multiple of what its requests need: its length ÷ the bytes of the
        /// alignment blocks its requests touch. At least 1.0; 1.0 merges only requests whose blocks overlap or abut,
        /// so that no byte is read that no request needed.
        MaxAmplification: float
        /// The most requests one read may serve: at least 1.
        MaxMerge: int
    }

/// How to read a batch of ranges: the reads, in offset order, and the request indices each serves.
type ReadPlan =
    {
        /// The reads. An empty read (Length 0), present only when some request is empty, comes first and serves
        /// every zero-length request; the others are device reads in ascending offset order.
        Reads: PlannedRead array
        /// Every request index exactly once, grouped by the read that serves them (see `PlannedRead.First`).
        Order: int array
    }

/// The merge plan of `ReadManyAsync` (DmaFile): a batch of ranges of an O_DIRECT file turned into fewer, larger,
/// aligned reads. Per batch, not per byte: it may allocate.
[<RequireQualifiedAccess>]
module ReadPlan =
    /// The aligned span covering `length` bytes from `offset`: the offset rounded down to `alignment` (a power of
    /// two) and the length that reaches the end rounded up. A zero-length range covers nothing: its span is empty,
    /// at the offset rounded down. `offset` must not be negative.
    /// Throws ArgumentOutOfRangeException when the span is longer than Int32.MaxValue.
    let aligned (alignment: int) (offset: int64) (length: int) : struct (int64 * int) =
        let mask = int64 alignment - 1L
        let start = offset &&& ~~~mask

        if length = 0 then
            struct (start, 0)
        else
            let span = ((offset + int64 length + mask) &&& ~~~mask) - start

            if span > int64 Int32.MaxValue then
                raise (
                    ArgumentOutOfRangeException(
                        "length",
                        $"The range of {length} bytes at {offset}, aligned to {alignment}, is longer than one read may be."
                    )
                )

            struct (start, int span)

    let private validate (limits: ReadPlanLimits) =
        let a = limits.Alignment

        if a < 512 || a &&& (a - 1) <> 0 then
            invalidArg "limits" $"Alignment must be a power of two, at least 512; it is {a}."

        if limits.MaxRequest < a || limits.MaxRequest % a <> 0 then
            invalidArg
                "limits"
                $"MaxRequest must be a positive multiple of the alignment ({a}); it is {limits.MaxRequest}."

        // Written so that NaN fails too.
        if not (limits.MaxAmplification >= 1.0) then
            invalidArg "limits" $"MaxAmplification must be at least 1.0; it is {limits.MaxAmplification}."

        if limits.MaxMerge < 1 then
            invalidArg "limits" $"MaxMerge must be at least 1; it is {limits.MaxMerge}."

    /// Plans the reads that serve `requests`. Deterministic, and a function of the requests as a multiset: the same
    /// requests in another order give the same reads, serving the same spans in the same order.
    ///
    /// Requests are never split: one read serves each. The non-empty requests are taken in order of their aligned
    /// span (start ascending, then end descending, then offset, length and index), and each joins the read being
    /// built when the read still serves fewer than MaxMerge requests, the span covering both stays within
    /// MaxRequest, and that span is at most MaxAmplification × the bytes of the alignment blocks the read's
    /// requests touch; otherwise it starts the next read. Amplification is counted in whole blocks because any read
    /// of a request reads its blocks: two 1-byte requests in one block share it at amplification 1. So overlapping
    /// and duplicate requests share a read unless it is full or too long, and gaps are read through only as far as
    /// MaxAmplification allows. Each read is exactly the span covering its requests.
    ///
    /// A request whose aligned span is longer than MaxRequest gets a read of that span (the kernel's block layer
    /// splits it), which also serves the requests after it in that order that lie within that span, up to MaxMerge;
    /// no read is longer than MaxRequest otherwise. A device read overlaps the one before it only when that one is
    /// full (MaxMerge) or the span covering both is longer than MaxRequest; so requests that lie within one block
    /// each get disjoint reads while MaxMerge does not bind. The plan knows nothing of the file's size: a read past
    /// the end comes back short, and the shell gives each request the bytes that exist.
    ///
    /// Zero-length requests are served by one empty read (Offset 0, Length 0) that comes first; MaxMerge does not
    /// apply to it. The shell issues no I/O for it.
    ///
    /// Throws ArgumentException on limits out of their documented ranges, a negative offset or length, or a range
    /// whose aligned span does not fit in an int or whose end is beyond Int64.MaxValue.
    let plan (limits: ReadPlanLimits) (requests: FileSpan array) : ReadPlan =
        validate limits
        let n = requests.Length
        let starts = Array.zeroCreate<int64> n
        let ends = Array.zeroCreate<int64> n
        let mutable empties = 0

        for i in 0 .. n - 1 do
            let r = requests[i]

            if r.Offset < 0L || r.Length < 0 then
                invalidArg
                    "requests"
                    $"Request {i} ({r.Length} bytes at {r.Offset}): offset and length must not be negative."

            if r.Offset > Int64.MaxValue - int64 r.Length - int64 limits.Alignment then
                invalidArg
                    "requests"
                    $"Request {i} ({r.Length} bytes at {r.Offset}) ends beyond the largest file offset."

            let struct (start, span) = aligned limits.Alignment r.Offset r.Length
            starts[i] <- start
            ends[i] <- start + int64 span

            if r.Length = 0 then
                empties <- empties + 1

        let byKey (i: int) (j: int) =
            let c = compare starts[i] starts[j]

            if c <> 0 then
                c
            else
                let c = compare ends[j] ends[i]

                if c <> 0 then
                    c
                else
                    let c = compare requests[i].Offset requests[j].Offset

                    if c <> 0 then
                        c
                    else
                        let c = compare requests[i].Length requests[j].Length
                        if c <> 0 then c else compare i j

        let order = Array.init n id
        // Empty requests first (the empty read), then the rest; each part by key.
        Array.sortInPlaceWith
            (fun i j ->
                let c = compare (requests[j].Length = 0) (requests[i].Length = 0)
                if c <> 0 then c else byKey i j)
            order

        let reads = ResizeArray<PlannedRead>()

        if empties > 0 then
            reads.Add
                {
                    Offset = 0L
                    Length = 0
                    First = 0
                    Count = empties
                }

        let maxRequest = int64 limits.MaxRequest
        let mutable first = empties
        let mutable start = 0L
        // The span covering the read's requests ends at `finish`; `covered` counts the bytes of the blocks they touch.
        // Requests come in ascending aligned start, so the blocks touched form runs of which the last ends at
        // `finish`, and a new request either extends that last run or starts a new one after a gap.
        let mutable finish = 0L
        let mutable covered = 0L

        for k in empties .. n - 1 do
            let i = order[k]
            let s = starts[i]
            let e = ends[i]

            // What joining the read being built would make of it (meaningless before the first request).
            let growth = if s >= finish then e - s else max 0L (e - finish)
            let newFinish = max finish e
            let span = newFinish - start

            let joins =
                k > first
                && k - first < limits.MaxMerge
                && (span <= maxRequest || newFinish = finish)
                && float span <= limits.MaxAmplification * float (covered + growth)

            if joins then
                covered <- covered + growth
                finish <- newFinish
            else
                if k > first then
                    reads.Add
                        {
                            Offset = start
                            Length = int (finish - start)
                            First = first
                            Count = k - first
                        }

                    first <- k

                start <- s
                finish <- e
                covered <- e - s

        if n > first then
            reads.Add
                {
                    Offset = start
                    Length = int (finish - start)
                    First = first
                    Count = n - first
                }

        {
            Reads = reads.ToArray()
            Order = order
        }

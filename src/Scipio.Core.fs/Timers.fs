namespace Scipio.Core

/// A timer as the heap holds it. `Id` and `Version` let the shell find its operation and ignore a timer that was
/// cancelled (the heap deletes lazily: a cancelled entry is dropped when it reaches the top).
[<Struct>]
type TimerEntry =
    {
        /// When the timer is due.
        DeadlineNs: int64
        /// Order of insertion: timers with the same deadline fire in the order they were set.
        Sequence: int64
        /// The shell's slot for the timer's operation.
        Id: int
        /// The shell's version of that slot when the timer was set.
        Version: int
    }

/// A binary min-heap of timers ordered by (deadline, sequence). Deterministic and clock-free: `now` is an argument.
/// It mutates only its own array, which grows (allocates) only past its highest count so far.
[<Sealed>]
type TimerHeap(initialCapacity: int) =
    let mutable items: TimerEntry array = Array.zeroCreate (max 4 initialCapacity)
    let mutable count = 0
    let mutable nextSequence = 0L

    let earlier (a: TimerEntry) (b: TimerEntry) =
        a.DeadlineNs < b.DeadlineNs
        || (a.DeadlineNs = b.DeadlineNs && a.Sequence < b.Sequence)

    let swap i j =
        let t = items[i]
        items[i] <- items[j]
        items[j] <- t

    let rec siftUp i =
        if i > 0 then
            let parent = (i - 1) / 2

            if earlier items[i] items[parent] then
                swap i parent
                siftUp parent

    let rec siftDown i =
        let left = 2 * i + 1
        let right = left + 1
        let mutable least = i

        if left < count && earlier items[left] items[least] then
            least <- left

        if right < count && earlier items[right] items[least] then
            least <- right

        if least <> i then
            swap i least
            siftDown least

    /// Timers in the heap, cancelled ones included until they surface.
    member _.Count = count

    /// The earliest deadline, `Time.Never` when the heap is empty.
    member _.NextDeadline = if count = 0 then Time.Never else items[0].DeadlineNs

    /// Adds a timer.
    member _.Push(deadlineNs: int64, id: int, version: int) =
        if count = items.Length then
            let bigger = Array.zeroCreate (items.Length * 2)
            Array.blit items 0 bigger 0 count
            items <- bigger

        items[count] <-
            {
                DeadlineNs = deadlineNs
                Sequence = nextSequence
                Id = id
                Version = version
            }

        nextSequence <- nextSequence + 1L
        count <- count + 1
        siftUp (count - 1)

    /// Removes and returns the earliest timer if it is due at `nowNs` (deadline ≤ now): a timer never fires early.
    member _.TryPopDue(nowNs: int64, entry: outref<TimerEntry>) =
        if count > 0 && items[0].DeadlineNs <= nowNs then
            entry <- items[0]
            count <- count - 1
            items[0] <- items[count]
            items[count] <- Unchecked.defaultof<_>
            siftDown 0
            true
        else
            entry <- Unchecked.defaultof<_>
            false

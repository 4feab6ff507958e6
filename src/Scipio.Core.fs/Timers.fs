namespace Scipio.Core

/// A timer as the heap holds it.
[<Struct>]
type TimerEntry =
    {
        /// When the timer is due.
        DeadlineNs: int64
        /// Order of insertion: timers with the same deadline fire in the order they were set.
        Sequence: int64
        /// The shell's slot for the timer: a dense number from 0, at most one timer per slot.
        Id: int
    }

/// An indexed binary min-heap of timers ordered by (deadline, insertion order). Deterministic and clock-free: `now`
/// is an argument. Each id's position is tracked, so a cancelled timer is removed at once (O(log n)): NextDeadline
/// and Count are exact, and cancelled timers hold no memory. The arrays grow (allocate) only past their highest
/// count or id so far, and shrink only in Trim.
[<Sealed>]
type TimerHeap(initialCapacity: int) =
    let mutable items: TimerEntry array = Array.zeroCreate (max 4 initialCapacity)
    // positions[id]: the index of id's entry in items, -1 when id has no timer.
    let mutable positions: int array = Array.create (max 4 initialCapacity) -1
    let mutable count = 0
    let mutable nextSequence = 0L

    let earlier (a: TimerEntry) (b: TimerEntry) =
        a.DeadlineNs < b.DeadlineNs
        || (a.DeadlineNs = b.DeadlineNs && a.Sequence < b.Sequence)

    let place i (entry: TimerEntry) =
        items[i] <- entry
        positions[entry.Id] <- i

    let swap i j =
        let t = items[i]
        place i items[j]
        place j t

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

    /// Takes out the entry at index i and restores the heap.
    let removeAt i =
        positions[items[i].Id] <- -1
        count <- count - 1

        if i < count then
            place i items[count]
            items[count] <- Unchecked.defaultof<_>

            if i > 0 && earlier items[i] items[(i - 1) / 2] then
                siftUp i
            else
                siftDown i
        else
            items[count] <- Unchecked.defaultof<_>

    let grown (length: int) (needed: int) = max needed (length * 2)

    /// A heap for about `initialCapacity` timers and ids below it; it grows as needed.
    new() = TimerHeap 4

    /// Live timers: set and neither fired nor removed.
    member _.Count = count

    /// How many timers the heap holds without growing; Trim shrinks it.
    member _.Capacity = items.Length

    /// The earliest deadline, `Time.Never` when the heap is empty.
    member _.NextDeadline = if count = 0 then Time.Never else items[0].DeadlineNs

    /// Whether slot `id` has a timer in the heap.
    member _.Contains(id: int) =
        id >= 0 && id < positions.Length && positions[id] >= 0

    /// Sets a timer for slot `id` (≥ 0), due at `deadlineNs`. If the slot already has one, it is replaced: the timer
    /// moves to the new deadline and counts as set now (after timers already set for the same deadline).
    member this.Push(deadlineNs: int64, id: int) =
        if id < 0 then
            invalidArg (nameof id) "A timer's id is the shell's slot number: zero or more."

        if this.Contains id then
            removeAt positions[id]

        if id >= positions.Length then
            let bigger = Array.create (grown positions.Length (id + 1)) -1
            Array.blit positions 0 bigger 0 positions.Length
            positions <- bigger

        if count = items.Length then
            let bigger = Array.zeroCreate (grown items.Length (count + 1))
            Array.blit items 0 bigger 0 count
            items <- bigger

        place
            count
            {
                DeadlineNs = deadlineNs
                Sequence = nextSequence
                Id = id
            }

        nextSequence <- nextSequence + 1L
        count <- count + 1
        siftUp (count - 1)

    /// Removes slot `id`'s timer (a cancelled Sleep) in O(log n); false when it has none (it fired, was removed, or
    /// was never set).
    member this.Remove(id: int) =
        if this.Contains id then
            removeAt positions[id]
            true
        else
            false

    /// Removes and returns the earliest timer if it is due at `nowNs` (deadline ≤ now): a timer never fires early.
    member _.TryPopDue(nowNs: int64, entry: outref<TimerEntry>) =
        if count > 0 && items[0].DeadlineNs <= nowNs then
            entry <- items[0]
            removeAt 0
            true
        else
            entry <- Unchecked.defaultof<_>
            false

    /// Gives memory back after a peak: shrinks the entry array when the live timers fill less than a quarter of it,
    /// and the position array when the highest live id is below a quarter of its length, each to twice what is
    /// needed (at least 4). Allocates; the shell calls it when idle. Contents and order are unchanged.
    member _.Trim() =
        let wantedItems = max 4 (count * 2)

        if count < items.Length / 4 && wantedItems < items.Length then
            let smaller = Array.zeroCreate wantedItems
            Array.blit items 0 smaller 0 count
            items <- smaller

        let mutable highest = -1

        for i in 0 .. count - 1 do
            highest <- max highest items[i].Id

        let wantedPositions = max 4 ((highest + 1) * 2)

        if highest + 1 < positions.Length / 4 && wantedPositions < positions.Length then
            let smaller = Array.create wantedPositions -1
            Array.blit positions 0 smaller 0 (highest + 1)
            positions <- smaller

/// A periodic timer's schedule: ticks fall on a fixed grid, StartNs + k·PeriodNs for k ≥ 1, so that late wake-ups
/// never accumulate into drift. DueNs is the tick the timer waits for next.
[<Struct>]
type PeriodicSchedule =
    {
        /// When the timer started (or its period last changed): the grid's origin.
        StartNs: int64
        /// The distance between ticks, > 0.
        PeriodNs: int64
        /// The next tick: a grid point, `Time.Never` when it lies beyond the end of time.
        DueNs: int64
    }

/// The pure part of a periodic timer (ShardPeriodicTimer, repeating timer actions). The grid, not the previous wake,
/// decides the next deadline: a tick taken late moves nothing, so n ticks take n periods however late each wake was.
/// A timer taken after several grid points passed counts them as one tick and waits for the first point after now,
/// as .NET's PeriodicTimer coalesces the ticks nobody waited for.
[<RequireQualifiedAccess>]
module Periodic =
    /// The first grid point strictly after `nowNs`: StartNs + (⌊(now − StartNs) / PeriodNs⌋ + 1)·PeriodNs, or the first
    /// point when now is before StartNs; `Time.Never` when that lies beyond Int64.MaxValue. Instants are non-negative
    /// (CLOCK_MONOTONIC nanoseconds).
    let nextAfter (nowNs: int64) (schedule: PeriodicSchedule) =
        let period = schedule.PeriodNs
        let elapsed = nowNs - schedule.StartNs
        let k = if elapsed < 0L then 1L else elapsed / period + 1L

        if k > Time.Never / period then
            Time.Never
        else
            Time.addSaturating schedule.StartNs (k * period)

    /// A schedule whose grid starts at `startNs`: the first tick is one period later.
    let start (startNs: int64) (periodNs: int64) =
        if periodNs <= 0L then
            invalidArg (nameof periodNs) "A period must be positive."

        let origin =
            {
                StartNs = startNs
                PeriodNs = periodNs
                DueNs = 0L
            }

        { origin with
            DueNs = nextAfter startNs origin
        }

    /// Whether the next tick has come at `nowNs` (never early: only at or after its grid point).
    let isDue (nowNs: int64) (schedule: PeriodicSchedule) = nowNs >= schedule.DueNs

    /// The due tick was taken at `nowNs`: the schedule moves on to the first grid point after now, skipping the points
    /// that passed meanwhile (each is a tick nobody waited for, coalesced into the one just taken).
    let advance (nowNs: int64) (schedule: PeriodicSchedule) =
        { schedule with
            DueNs = nextAfter nowNs schedule
        }

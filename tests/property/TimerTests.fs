/// TimerHeap against a model: a list kept sorted by (deadline, insertion order).
module Scipio.Property.Tests.TimerTests

open System
open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

/// What the shell does to its timer heap.
type TimerCommand =
    /// Set a timer for slot `slot`, `offsetNs` from now (negative: already due; Int64.MaxValue: the latest deadline
    /// allowed, Never - 1, which the final drain must still reach). A slot that has a timer gets the new one instead.
    | Push of offsetNs: int64 * slot: int
    /// Cancel slot `slot`'s timer, if it has one.
    | Remove of slot: int
    /// Time passes; the shell then pops everything due, as its run loop does.
    | Advance of deltaNs: int64
    /// One TryPopDue at the current time, whether or not anything is due.
    | PopOne
    /// The shell is idle and gives memory back.
    | Trim

/// The latest deadline the properties use: the final drain happens at this instant.
let private lastInstant = Int64.MaxValue - 1L

/// Slots are dense numbers the shell reuses: a small range, so that replacing and removing hit live timers.
let private slot = Gen.frequency [ 4, Gen.choose (0, 15); 1, Gen.choose (0, 200) ]

let private command =
    let offset =
        Gen.frequency
            [
                4, Gen.choose64 (0L, 10L * Milli)
                // A few round values, so that equal deadlines (which must pop in insertion order) are common.
                3, Gen.elements [ 0L; 1L; Micro; Milli ]
                1, Gen.choose64 (-Second, -1L)
                1, Gen.choose64 (Second, 1L <<< 60)
                1, Gen.elements [ Int64.MinValue / 2L; Int64.MaxValue ]
            ]

    Gen.frequency
        [
            5, Gen.map2 (fun o s -> Push(o, s)) offset slot
            2, Gen.map Remove slot
            3,
            Gen.frequency
                [
                    3, Gen.choose64 (0L, 2L * Milli)
                    1, Gen.constant 0L
                    1, Gen.choose64 (0L, Second)
                ]
            |> Gen.map Advance
            1, Gen.constant PopOne
            1, Gen.constant Trim
        ]

let private scenario =
    Gen.zip (Gen.choose (0, 8)) (Gen.listOf command) |> Arb.fromGen

/// A timer as the model keeps it.
[<Struct>]
type private Expected =
    {
        Deadline: int64
        Sequence: int64
        Id: int
    }

/// Runs the commands on a heap and on the model side by side, checking every answer against the model.
let private check (capacity: int, commands: TimerCommand list) =
    let heap = TimerHeap capacity
    let model = ResizeArray<Expected>()
    let popped = Collections.Generic.HashSet<int64>()
    let mutable removed = 0
    let mutable now = 0L
    let mutable pushed = 0

    let agree () =
        Expect.equal heap.Count model.Count "Count: live timers only"
        let expectedNext = if model.Count = 0 then Time.Never else model[0].Deadline
        Expect.equal heap.NextDeadline expectedNext "NextDeadline is exact"

        for id in 0..200 do
            if heap.Contains id <> model.Exists(fun e -> e.Id = id) then
                failtestf "Contains %d says %b" id (heap.Contains id)

    /// One TryPopDue at `now`; true when it popped.
    let popOnce () =
        let mutable entry = Unchecked.defaultof<TimerEntry>
        let got = heap.TryPopDue(now, &entry)
        let due = model.Count > 0 && model[0].Deadline <= now
        Expect.equal got due "TryPopDue pops exactly when the earliest timer is due"

        if got then
            let expected = model[0]
            model.RemoveAt 0
            Expect.isLessThanOrEqual entry.DeadlineNs now "never early"
            let order = entry.DeadlineNs, entry.Sequence
            Expect.equal order (expected.Deadline, expected.Sequence) "(deadline, insertion) order"
            Expect.equal entry.Id expected.Id "the timer that was set"
            Expect.isTrue (popped.Add entry.Sequence) "each timer popped once"

        got

    let removeFromModel id =
        let at = model.FindIndex(fun e -> e.Id = id)

        if at >= 0 then
            model.RemoveAt at
            removed <- removed + 1

        at >= 0

    let step c =
        match c with
        | Push(offset, id) ->
            let deadline =
                if offset = Int64.MaxValue then
                    lastInstant
                else
                    min lastInstant (now + offset)

            heap.Push(deadline, id)
            removeFromModel id |> ignore

            let expected =
                {
                    Deadline = deadline
                    Sequence = int64 pushed
                    Id = id
                }

            // Insert after every entry that is not later: equal deadlines stay in insertion order.
            let at = model.FindIndex(fun e -> e.Deadline > deadline)
            model.Insert((if at < 0 then model.Count else at), expected)
            pushed <- pushed + 1
        | Remove id ->
            let had = removeFromModel id
            Expect.equal (heap.Remove id) had "Remove says whether the slot had a timer"
        | Advance delta ->
            now <- now + delta

            while popOnce () do
                ()
        | PopOne -> popOnce () |> ignore
        | Trim -> heap.Trim()

        agree ()

    // Messages are built only on failure: formatting a union for every check would dominate the run time.
    for c in commands do
        try
            step c
        with :? AssertException as e ->
            failtestf "after %A at now = %d: %s" c now e.Message

    now <- lastInstant

    while popOnce () do
        ()

    agree ()
    Expect.equal (popped.Count + removed) pushed "every timer popped or removed, exactly once"

/// A period: from 1 ns (every instant is a grid point's neighbour) to an hour, round values likely.
let private period =
    Gen.frequency
        [
            3, Gen.choose64 (1L, 10L * Milli)
            1, Gen.elements [ 1L; 2L; Micro; Milli; Second ]
            1, Gen.choose64 (1L, 3_600L * Second)
        ]

/// A schedule started at some instant, and an instant at or after its start.
let private scheduleAndNow =
    gen {
        let! start = instant
        let! period = period

        let! later =
            Gen.frequency [ 3, Gen.choose64 (0L, 20L * period |> min (1L <<< 50)); 1, instant ]

        return Periodic.start start period, start + later
    }
    |> Arb.fromGen

/// What a consumer of a periodic timer does between ticks: works for a while, then waits (the runtime wakes it
/// `wakeLateNs` after the deadline it waited for).
type private Iteration = { WorkNs: int64; WakeLateNs: int64 }

/// Runs a consumer loop against the schedule the way ShardPeriodicTimer does (take the tick at once when it is due,
/// else wait for DueNs and wake late by some amount; either way advance at the instant the tick is taken). Returns
/// the instants at which ticks were taken.
let private consume (start: int64) (period: int64) (iterations: Iteration list) =
    let mutable schedule = Periodic.start start period
    let mutable now = start
    let taken = ResizeArray<int64>()

    for it in iterations do
        now <- now + it.WorkNs

        if not (Periodic.isDue now schedule) then
            now <- schedule.DueNs + it.WakeLateNs

        taken.Add now
        schedule <- Periodic.advance now schedule

    taken, schedule

let periodicTests =
    testList
        "Periodic"
        [
            testPropertyWithConfig
                quick
                "the next tick is the first grid point strictly after now: never early, never a whole period away"
            <| Prop.forAll scheduleAndNow (fun (schedule, now) ->
                let next = Periodic.nextAfter now schedule
                Expect.isGreaterThan next now "strictly after now: taking a tick never leaves it due"

                Expect.isLessThanOrEqual
                    (next - now)
                    schedule.PeriodNs
                    "within one period: no grid point skipped that is still ahead"

                Expect.equal ((next - schedule.StartNs) % schedule.PeriodNs) 0L "on the grid: no drift"
                Expect.isGreaterThanOrEqual next (schedule.StartNs + schedule.PeriodNs) "never before the first tick")

            testPropertyWithConfig quick "a new schedule's first tick is one period after its start, and not due before"
            <| Prop.forAll (Arb.fromGen (Gen.zip instant period)) (fun (start, period) ->
                let s = Periodic.start start period
                Expect.equal s.DueNs (start + period) "first tick"
                Expect.isFalse (Periodic.isDue (s.DueNs - 1L) s) "not due a nanosecond early"
                Expect.isTrue (Periodic.isDue s.DueNs s) "due at its instant")

            testPropertyWithConfig quick "advancing is monotone and idempotent at one instant"
            <| Prop.forAll scheduleAndNow (fun (schedule, now) ->
                let once = Periodic.advance now schedule
                Expect.equal (Periodic.advance now once) once "taking the same instant twice changes nothing more"
                Expect.isGreaterThanOrEqual once.DueNs schedule.DueNs "the next tick never moves back"
                Expect.equal (once.StartNs, once.PeriodNs) (schedule.StartNs, schedule.PeriodNs) "same grid")

            testPropertyWithConfig
                quick
                "a consumer that keeps up gets tick k at start + k·period exactly, however late each wake"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! start = instant
                        let! period = Gen.choose64 (2L, 10L * Milli)
                        // Work plus lateness below one period: the consumer is always back before the next grid point.
                        let iteration =
                            gen {
                                let! work = Gen.choose64 (0L, period / 2L)
                                let! late = Gen.choose64 (0L, period / 2L - 1L)
                                return { WorkNs = work; WakeLateNs = late }
                            }

                        let! its = Gen.listOf iteration
                        return start, period, its
                    }
                ))
                (fun (start, period, its) ->
                    let taken, schedule = consume start period its

                    for k in 0 .. taken.Count - 1 do
                        let grid = start + int64 (k + 1) * period
                        Expect.isGreaterThanOrEqual taken[k] grid $"tick {k + 1} never early"
                        Expect.isLessThan taken[k] (grid + period) $"tick {k + 1} less than a period late: no drift"

                    Expect.equal schedule.DueNs (start + int64 (taken.Count + 1) * period) "the grid has not moved")

            testPropertyWithConfig
                quick
                "any consumer: ticks are never early, never more than the periods elapsed, and a late one skips the points it missed"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! start = instant
                        let! period = Gen.choose64 (1L, 10L * Milli)

                        let iteration =
                            gen {
                                let! work =
                                    Gen.frequency [ 3, Gen.choose64 (0L, period); 1, Gen.choose64 (0L, 10L * period) ]

                                let! late =
                                    Gen.frequency [ 3, Gen.choose64 (0L, period); 1, Gen.choose64 (0L, 10L * period) ]

                                return { WorkNs = work; WakeLateNs = late }
                            }

                        let! its = Gen.listOf iteration
                        return start, period, its
                    }
                ))
                (fun (start, period, its) ->
                    let taken, schedule = consume start period its
                    let mutable previousGrid = start

                    for k in 0 .. taken.Count - 1 do
                        // The grid point this tick stands for: the latest one not after the instant it was taken.
                        let grid = start + (taken[k] - start) / period * period
                        Expect.isGreaterThan grid previousGrid $"tick {k + 1} stands for a grid point of its own"

                        Expect.isGreaterThanOrEqual
                            taken[k]
                            (start + int64 (k + 1) * period)
                            $"tick {k + 1} never early"

                        previousGrid <- grid

                    let last = if taken.Count = 0 then start else taken[taken.Count - 1]

                    Expect.isLessThanOrEqual
                        (int64 taken.Count)
                        ((last - start) / period)
                        "no more ticks than periods elapsed"

                    Expect.equal
                        schedule.DueNs
                        (Periodic.nextAfter last schedule)
                        "waiting for the first point after the last tick")

            testCase "the end of time: a grid point past Int64.MaxValue is Never, not a wrapped-around instant"
            <| fun () ->
                let s = Periodic.start (Time.Never - 10L) 7L
                Expect.equal s.DueNs (Time.Never - 3L) "the last point that fits"
                let after = Periodic.advance (Time.Never - 3L) s
                Expect.equal after.DueNs Time.Never "beyond: never"

                Expect.equal
                    (Periodic.nextAfter (Time.Never - 1L) (Periodic.start 0L Time.Never))
                    Time.Never
                    "one huge period"

            testCase "a period must be positive"
            <| fun () ->
                Expect.throwsT<ArgumentException> (fun () -> Periodic.start 0L 0L |> ignore) "zero"
                Expect.throwsT<ArgumentException> (fun () -> Periodic.start 0L -1L |> ignore) "negative"
        ]

let tests =
    testList
        "TimerHeap"
        [
            testPropertyWithConfig
                models
                "agrees with a sorted-list model under push, remove and pop: never early, in order, exact NextDeadline"
            <| Prop.forAll scenario check

            testPropertyWithConfig quick "pushing then draining at the end of time yields a stable sort by deadline"
            <| Prop.forAll (Arb.fromGen (Gen.listOf (Gen.choose64 (-5L, 5L)))) (fun deadlines ->
                let heap = TimerHeap 0
                deadlines |> List.iteri (fun i d -> heap.Push(d, i))
                let mutable entry = Unchecked.defaultof<TimerEntry>
                let drained = ResizeArray()

                while heap.TryPopDue(lastInstant, &entry) do
                    drained.Add(entry.DeadlineNs, entry.Id)

                let expected =
                    deadlines |> List.indexed |> List.sortBy snd |> List.map (fun (i, d) -> d, i)

                Expect.sequenceEqual drained expected "List.sortBy is stable")

            testCase "an empty heap has nothing due, even at the end of time"
            <| fun () ->
                let heap = TimerHeap 0
                let mutable entry = Unchecked.defaultof<TimerEntry>
                Expect.isFalse (heap.TryPopDue(Time.Never, &entry)) "nothing to pop"
                Expect.equal heap.NextDeadline Time.Never "no deadline"
                Expect.equal heap.Count 0 "empty"

            testPropertyWithConfig quick "Remove makes NextDeadline exact: a cancelled early timer no longer shows"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip (Gen.choose64 (1L, Second)) (Gen.choose64 (1L, 3_600L * Second))))
                (fun (early, late) ->
                    let heap = TimerHeap()
                    heap.Push(late + early, 0)
                    heap.Push(early, 1)
                    Expect.equal heap.NextDeadline early "the early one first"
                    Expect.isTrue (heap.Remove 1) "removed"
                    Expect.equal heap.NextDeadline (late + early) "the next live timer"
                    Expect.isFalse (heap.Remove 1) "only once"
                    Expect.isTrue (heap.Remove 0) "the other"
                    Expect.equal heap.NextDeadline Time.Never "none left"
                    Expect.equal heap.Count 0 "empty")

            testPropertyWithConfig quick "Trim after most timers are removed shrinks the heap and keeps its contents"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip (Gen.choose (64, 5_000)) (Gen.listOf (Gen.choose64 (0L, 10L * Milli)))))
                (fun (peak, kept) ->
                    let heap = TimerHeap 0

                    for id in 0 .. peak - 1 do
                        heap.Push(int64 id * Micro, id)

                    // Slots are reused from the bottom: the survivors get low ids.
                    for id in 0 .. peak - 1 do
                        heap.Remove id |> ignore

                    let kept = kept |> List.truncate (peak / 8)
                    kept |> List.iteri (fun id d -> heap.Push(d, id))
                    let before = heap.Capacity
                    heap.Trim()
                    Expect.isLessThan heap.Capacity before "smaller"
                    Expect.isGreaterThanOrEqual heap.Capacity heap.Count "still holds them"
                    Expect.equal heap.Count kept.Length "same count"
                    // It still grows for a slot above what it kept.
                    heap.Push(Time.Never - 1L, peak)
                    Expect.isTrue (heap.Contains peak) "a high slot after trimming"
                    Expect.isTrue (heap.Remove peak) "and removable"
                    let mutable entry = Unchecked.defaultof<TimerEntry>
                    let drained = ResizeArray()

                    while heap.TryPopDue(lastInstant, &entry) do
                        drained.Add(entry.DeadlineNs, entry.Id)

                    let expected =
                        kept |> List.indexed |> List.sortBy snd |> List.map (fun (i, d) -> d, i)

                    Expect.sequenceEqual drained expected "the same timers in the same order")
        ]

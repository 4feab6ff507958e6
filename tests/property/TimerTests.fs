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
let private slot =
    Gen.frequency [ 4, Gen.choose (0, 15); 1, Gen.choose (0, 200) ]

let private command =
    let offset =
        Gen.frequency
            [ 4, Gen.choose64 (0L, 10L * Milli)
              // A few round values, so that equal deadlines (which must pop in insertion order) are common.
              3, Gen.elements [ 0L; 1L; Micro; Milli ]
              1, Gen.choose64 (-Second, -1L)
              1, Gen.choose64 (Second, 1L <<< 60)
              1, Gen.elements [ Int64.MinValue / 2L; Int64.MaxValue ] ]

    Gen.frequency
        [ 5, Gen.map2 (fun o s -> Push(o, s)) offset slot
          2, Gen.map Remove slot
          3,
          Gen.frequency [ 3, Gen.choose64 (0L, 2L * Milli); 1, Gen.constant 0L; 1, Gen.choose64 (0L, Second) ]
          |> Gen.map Advance
          1, Gen.constant PopOne
          1, Gen.constant Trim ]

let private scenario =
    Gen.zip (Gen.choose (0, 8)) (Gen.listOf command) |> Arb.fromGen

/// A timer as the model keeps it.
[<Struct>]
type private Expected =
    { Deadline: int64
      Sequence: int64
      Id: int }

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
            let deadline = if offset = Int64.MaxValue then lastInstant else min lastInstant (now + offset)
            heap.Push(deadline, id)
            removeFromModel id |> ignore

            let expected =
                { Deadline = deadline
                  Sequence = int64 pushed
                  Id = id }

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

let tests =
    testList
        "TimerHeap"
        [ testPropertyWithConfig models "agrees with a sorted-list model under push, remove and pop: never early, in order, exact NextDeadline"
          <| Prop.forAll scenario check

          testPropertyWithConfig quick "pushing then draining at the end of time yields a stable sort by deadline"
          <| Prop.forAll (Arb.fromGen (Gen.listOf (Gen.choose64 (-5L, 5L)))) (fun deadlines ->
              let heap = TimerHeap 0
              deadlines |> List.iteri (fun i d -> heap.Push(d, i))
              let mutable entry = Unchecked.defaultof<TimerEntry>
              let drained = ResizeArray()

              while heap.TryPopDue(lastInstant, &entry) do
                  drained.Add(entry.DeadlineNs, entry.Id)

              let expected = deadlines |> List.indexed |> List.sortBy snd |> List.map (fun (i, d) -> d, i)
              Expect.sequenceEqual drained expected "List.sortBy is stable")

          testCase "an empty heap has nothing due, even at the end of time"
          <| fun () ->
              let heap = TimerHeap 0
              let mutable entry = Unchecked.defaultof<TimerEntry>
              Expect.isFalse (heap.TryPopDue(Time.Never, &entry)) "nothing to pop"
              Expect.equal heap.NextDeadline Time.Never "no deadline"
              Expect.equal heap.Count 0 "empty"

          testPropertyWithConfig quick "Remove makes NextDeadline exact: a cancelled early timer no longer shows"
          <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose64 (1L, Second)) (Gen.choose64 (1L, 3_600L * Second)))) (fun (early, late) ->
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

                  let expected = kept |> List.indexed |> List.sortBy snd |> List.map (fun (i, d) -> d, i)
                  Expect.sequenceEqual drained expected "the same timers in the same order") ]

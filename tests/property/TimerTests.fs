/// TimerHeap against a model: a list kept sorted by (deadline, insertion order).
module Scipio.Property.Tests.TimerTests

open System
open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

/// What the shell does to its timer heap.
type TimerCommand =
    /// Set a timer `offsetNs` from now (negative: already due; Int64.MaxValue: the latest deadline allowed,
    /// Never - 1, which the final drain must still reach).
    | Push of offsetNs: int64 * version: int
    /// Time passes; the shell then pops everything due, as its run loop does.
    | Advance of deltaNs: int64
    /// One TryPopDue at the current time, whether or not anything is due.
    | PopOne

/// The latest deadline the properties use: the final drain happens at this instant.
let private lastInstant = Int64.MaxValue - 1L

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
        [ 5, Gen.map2 (fun o v -> Push(o, v)) offset (Gen.choose (0, 1000))
          3,
          Gen.frequency [ 3, Gen.choose64 (0L, 2L * Milli); 1, Gen.constant 0L; 1, Gen.choose64 (0L, Second) ]
          |> Gen.map Advance
          1, Gen.constant PopOne ]

let private scenario =
    Gen.zip (Gen.choose (0, 8)) (Gen.listOf command) |> Arb.fromGen

/// A timer as the model keeps it.
[<Struct>]
type private Expected =
    { Deadline: int64
      Sequence: int64
      Id: int
      Version: int }

/// Runs the commands on a heap and on the model side by side, checking every answer against the model.
let private check (capacity: int, commands: TimerCommand list) =
    let heap = TimerHeap capacity
    let model = ResizeArray<Expected>()
    let popped = Collections.Generic.HashSet<int>()
    let mutable now = 0L
    let mutable pushed = 0

    let agree () =
        Expect.equal heap.Count model.Count "Count"
        let expectedNext = if model.Count = 0 then Time.Never else model[0].Deadline
        Expect.equal heap.NextDeadline expectedNext "NextDeadline"

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
            Expect.equal (entry.Id, entry.Version) (expected.Id, expected.Version) "the timer that was set"
            Expect.isTrue (popped.Add entry.Id) "each timer popped once"

        got

    let step c =
        match c with
        | Push(offset, version) ->
            let deadline = if offset = Int64.MaxValue then lastInstant else min lastInstant (now + offset)
            heap.Push(deadline, pushed, version)

            let expected =
                { Deadline = deadline
                  Sequence = int64 pushed
                  Id = pushed
                  Version = version }

            // Insert after every entry that is not later: equal deadlines stay in insertion order.
            let at = model.FindIndex(fun e -> e.Deadline > deadline)
            model.Insert((if at < 0 then model.Count else at), expected)
            pushed <- pushed + 1
        | Advance delta ->
            now <- now + delta

            while popOnce () do
                ()
        | PopOne -> popOnce () |> ignore

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
    Expect.equal popped.Count pushed "every timer popped exactly once"

let tests =
    testList
        "TimerHeap"
        [ testPropertyWithConfig models "agrees with a sorted-list model: never early, in order, each timer once"
          <| Prop.forAll scenario check

          testPropertyWithConfig quick "pushing then draining at the end of time yields a stable sort by deadline"
          <| Prop.forAll (Arb.fromGen (Gen.listOf (Gen.choose64 (-5L, 5L)))) (fun deadlines ->
              let heap = TimerHeap 0
              deadlines |> List.iteri (fun i d -> heap.Push(d, i, 0))
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
              Expect.equal heap.Count 0 "empty" ]

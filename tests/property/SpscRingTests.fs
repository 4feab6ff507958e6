/// Model-based tests of the shell's SpscRing (a C# data structure): any sequence of enqueues, dequeues (single and
/// batched) and peeks behaves as a Queue bounded by the ring's capacity; and two threads, a producer and a
/// consumer, pass N items through a small ring with nothing lost, nothing duplicated and the order kept.
module Scipio.Property.Tests.SpscRingTests

open System
open System.Collections.Generic
open System.Threading
open Expecto
open FsCheck.FSharp
open Scipio.Runtime
open Scipio.Property.Tests.Generators

type private Op =
    | Enqueue of int
    | Dequeue
    | DequeueBatch of int
    | Peek

/// A reference type, so the ring's slot clearing matters.
type private Item = { Value: int }

let private op =
    Gen.frequency
        [
            5, Gen.choose (0, 1_000_000) |> Gen.map Enqueue
            3, Gen.constant Dequeue
            1, Gen.choose (0, 9) |> Gen.map DequeueBatch
            1, Gen.constant Peek
        ]

/// Runs `ops` on a ring of `requested` slots and on a Queue bounded by the ring's capacity; fails at the first
/// difference.
let private agreesWithModel (requested: int) (ops: Op list) =
    let ring = SpscRing<Item>(requested)
    let capacity = ring.Capacity

    Expect.isTrue
        (capacity >= requested && capacity &&& (capacity - 1) = 0)
        "capacity: a power of two, at least the request"

    let model = Queue<int>()

    for o in ops do
        match o with
        | Enqueue x ->
            let accepted = ring.TryEnqueue { Value = x }
            Expect.equal accepted (model.Count < capacity) $"TryEnqueue %d{x} with %d{model.Count} of %d{capacity}"

            if accepted then
                model.Enqueue x
        | Dequeue ->
            let ok, item = ring.TryDequeue()
            Expect.equal ok (model.Count > 0) "TryDequeue succeeds iff the model has items"

            if ok then
                Expect.equal (item.Value) (model.Dequeue()) "TryDequeue: the oldest item"
        | DequeueBatch n ->
            let buffer = Array.zeroCreate<Item> n
            let got = ring.TryDequeue(Span<Item>(buffer))
            Expect.equal got (min n model.Count) "a batch takes min(length, count)"

            for i in 0 .. got - 1 do
                Expect.equal (buffer[i].Value) (model.Dequeue()) "a batch: oldest first"
        | Peek ->
            let ok, item = ring.TryPeek()
            Expect.equal ok (model.Count > 0) "TryPeek succeeds iff the model has items"

            if ok then
                Expect.equal (item.Value) (model.Peek()) "TryPeek: the oldest item"

        Expect.equal ring.Count model.Count "Count"
        Expect.equal ring.IsEmpty (model.Count = 0) "IsEmpty"

/// Enqueues 4 fresh items and dequeues them all (a batch of 2, then 2 singles); returns weak references to them.
[<System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)>]
let private fillAndDrain (ring: SpscRing<Item>) =
    let weak = ResizeArray<WeakReference>()

    for i in 1..4 do
        let o = { Value = i }
        weak.Add(WeakReference o)
        ring.TryEnqueue o |> ignore

    ring.TryDequeue(Span<Item>(Array.zeroCreate<Item> 2)) |> ignore
    ring.TryDequeue() |> ignore
    ring.TryDequeue() |> ignore
    weak

/// Slots hold references only while items are in the ring: after everything is dequeued, nothing enqueued can
/// still be reached from the ring.
let private clearsSlots () =
    let ring = SpscRing<Item>(4)
    let weak = fillAndDrain ring
    GC.Collect()
    GC.WaitForPendingFinalizers()
    GC.Collect()
    Expect.isTrue (weak |> Seq.forall (fun w -> not w.IsAlive)) "dequeued items are not kept alive by the ring"
    GC.KeepAlive ring

/// A producer thread and a consumer thread (the consumer alternating single and batched dequeues).
let private twoThreads (items: int) (capacity: int) =
    let ring = SpscRing<int64>(capacity)
    let received = Array.zeroCreate<int64> items
    let mutable count = 0

    let producer =
        Thread(fun () ->
            let mutable i = 0L

            while i < int64 items do
                if ring.TryEnqueue i then i <- i + 1L else Thread.SpinWait 1)

    let consumer =
        Thread(fun () ->
            let buffer = Array.zeroCreate<int64> 7

            while count < items do
                if count % 2 = 0 then
                    match ring.TryDequeue() with
                    | true, x ->
                        received[count] <- x
                        count <- count + 1
                    | _ -> Thread.SpinWait 1
                else
                    let n = ring.TryDequeue(Span<int64>(buffer, 0, min buffer.Length (items - count)))

                    for k in 0 .. n - 1 do
                        received[count + k] <- buffer[k]

                    count <- count + n)

    producer.Start()
    consumer.Start()
    Expect.isTrue (producer.Join(TimeSpan.FromSeconds 60.0)) "the producer finished"
    Expect.isTrue (consumer.Join(TimeSpan.FromSeconds 60.0)) "the consumer finished"

    let firstWrong =
        received |> Array.mapi (fun i x -> x = int64 i) |> Array.tryFindIndex not

    Expect.equal firstWrong None $"item i arrives i-th (nothing lost, duplicated or reordered) of %d{items}"
    Expect.isTrue ring.IsEmpty "the ring is empty at the end"

let tests =
    testList
        "SpscRing"
        [
            testPropertyWithConfig models "single-threaded, it behaves as a bounded Queue"
            <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 9)) (Gen.listOf op))) (fun (capacity, ops) ->
                agreesWithModel capacity ops)

            testCase "dequeued slots are cleared" clearsSlots

            testCase "two threads: 2M items through 64 slots arrive once each, in order" (fun () ->
                twoThreads 2_000_000 64)

            testCase "two threads: 200k items through 1 slot arrive once each, in order" (fun () ->
                twoThreads 200_000 1)
        ]

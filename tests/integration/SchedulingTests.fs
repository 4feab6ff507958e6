/// Scheduling between task queues on a real shard: CPU time follows the shares. The one timed assertion here is a
/// ratio with a generous margin (the issue's bound), not a benchmark.
module Scipio.Integration.Tests.SchedulingTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Integration.Tests.Helpers

/// Iterations of a hog's inner loop between preemption points.
let private batch = 1000

/// A CPU hog: does work and reaches a preemption point every `batch` iterations, until `stop` is set; returns how
/// many batches it ran.
let hog (stop: Flag) () : Task<int64> =
    task {
        let mutable x = 0x9E3779B97F4A7C15UL
        let mutable batches = 0L

        while not stop.IsSet do
            for _ in 1..batch do
                x <- x * 6364136223846793005UL + 1442695040888963407UL

            batches <- batches + 1L
            do! Shard.YieldIfNeeded()

        // Keeps the arithmetic observable, so the JIT cannot drop the loop.
        return if x = 0UL then -1L else batches
    }

let private sharesRatio =
    test "hogs with shares 100 and 300 get CPU time 1:3 (within 15%)" {
        let slow, fast, slowBatches, fastBatches =
            runShardWith (ShardOptions(Placement = Placement.Fixed 0)) (fun () ->
                task {
                    let q100 = Shard.CreateTaskQueue("hog-100", Shares.Static 100, Latency.NotImportant)
                    let q300 = Shard.CreateTaskQueue("hog-300", Shares.Static 300, Latency.NotImportant)
                    let stop = { IsSet = false }
                    let h100 = spawnInto q100 (hog stop)
                    let h300 = spawnInto q300 (hog stop)
                    do! Shard.Sleep(TimeSpan.FromSeconds 1.0)
                    stop.IsSet <- true
                    let! b100 = h100
                    let! b300 = h300
                    return q100.Stats, q300.Stats, b100, b300
                })

        Expect.isGreaterThan slow.Runtime TimeSpan.Zero "the 100-share hog should have run"
        let ratio = fast.Runtime.TotalSeconds / slow.Runtime.TotalSeconds

        Expect.isTrue
            (abs (ratio / 3.0 - 1.0) <= 0.15)
            $"runtime ratio 300:100 should be 3 within 15%%, got %.3f{ratio} (hog-100 ran {slow.Runtime}, \
              %d{slowBatches} batches, picked %d{slow.QueueSelected} times; hog-300 ran {fast.Runtime}, \
              %d{fastBatches} batches, picked %d{fast.QueueSelected} times)"
    }

let private sharesSetter =
    test "TaskQueue.Shares can be changed on its shard (Stats show it) and not from another thread" {
        let statsShares, offShard =
            runShard (fun () ->
                task {
                    let q = Shard.CreateTaskQueue("q", Shares.Static 100, Latency.NotImportant)
                    q.Shares <- Shares.Static 300
                    let! _ = spawnInto q (fun () -> Task.FromResult 0)
                    // From a thread that is not the shard: the setter must refuse.
                    let! offShard = Task.Run(fun () -> thrownBy (fun () -> q.Shares <- Shares.Static 10))
                    return q.Stats.Shares, offShard
                })

        Expect.equal statsShares 300 "TaskQueue.Stats.Shares after Shares <- Static 300"

        let e =
            expectExn<InvalidOperationException> "setting TaskQueue.Shares from a ThreadPool thread" offShard

        Expect.stringContains e.Message "must be called on a shard" "the message says why"
    }

/// Shares decided at run time; records whether it was asked off the shard.
type private Controller(value: int) =
    member val AskedOffShard = false with get, set

    interface ISharesController with
        member this.Shares =
            if not Shard.IsOnShard then
                this.AskedOffShard <- true

            value

let private dynamicShares =
    test "Shares.Dynamic: the controller is asked on the shard and its answer is clamped to 1..1000" {
        let high, low = Controller 5000, Controller -3

        let highShares, lowShares =
            runShard (fun () ->
                task {
                    let qh = Shard.CreateTaskQueue("high", Shares.Dynamic high, Latency.NotImportant)
                    let ql = Shard.CreateTaskQueue("low", Shares.Dynamic low, Latency.NotImportant)
                    let! _ = spawnInto qh (fun () -> Task.FromResult 0)
                    let! _ = spawnInto ql (fun () -> Task.FromResult 0)
                    return qh.Stats.Shares, ql.Stats.Shares
                })

        Expect.equal highShares 1000 "a controller saying 5000 gets the most shares, 1000"
        Expect.equal lowShares 1 "a controller saying -3 gets the fewest, 1"
        Expect.isFalse (high.AskedOffShard || low.AskedOffShard) "the controller is asked on the shard"
    }

let private yieldInterleaves =
    test "Shard.Yield lets another runnable queue run: two queues yielding in a loop interleave" {
        let order =
            runShard (fun () ->
                task {
                    let a = Shard.CreateTaskQueue("a", Shares.Static 100, Latency.NotImportant)
                    let b = Shard.CreateTaskQueue("b", Shares.Static 100, Latency.NotImportant)
                    let order = Collections.Generic.List<char>()

                    let worker (name: char) () =
                        task {
                            for _ in 1..100 do
                                order.Add name
                                do! Shard.Yield()

                            return 0
                        }

                    let wa = spawnInto a (worker 'a')
                    let wb = spawnInto b (worker 'b')
                    let! _ = wa
                    let! _ = wb
                    return String(order.ToArray())
                })

        let firstA, lastA = order.IndexOf 'a', order.LastIndexOf 'a'
        let firstB, lastB = order.IndexOf 'b', order.LastIndexOf 'b'

        Expect.isTrue
            (firstB < lastA && firstA < lastB)
            $"neither queue should finish its 100 yields before the other starts; order was %s{order}"
    }

let private needPreemptOnPost =
    test "a post from another thread makes NeedPreempt true for the running queue" {
        let sawIt, ran =
            runShard (fun () ->
                task {
                    let queue = Shard.CurrentTaskQueue
                    let ran = { IsSet = false }
                    Thread((fun () -> queue.Post((fun _ -> ran.IsSet <- true), null)), IsBackground = true).Start()
                    // The flag is the behaviour under test; the bound only keeps a broken runtime from spinning.
                    let bound = Diagnostics.Stopwatch.StartNew()

                    while not Shard.NeedPreempt && bound.Elapsed < TimeSpan.FromSeconds 10.0 do
                        Thread.SpinWait 100

                    let sawIt = Shard.NeedPreempt
                    do! Shard.YieldIfNeeded()
                    do! Shard.Yield()
                    return sawIt, ran.IsSet
                })

        Expect.isTrue sawIt "NeedPreempt should turn true once another thread has posted to the shard"
        Expect.isTrue ran "the posted callback ran once the queue yielded"
    }

let tests =
    testSequenced
    <| testList
        "scheduling"
        [
            sharesRatio
            sharesSetter
            dynamicShares
            yieldInterleaves
            needPreemptOnPost
        ]

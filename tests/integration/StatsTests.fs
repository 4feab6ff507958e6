/// Shard.Stats and TaskQueue.Stats after real work: counters move, the main ring's books balance, and the figures
/// are sane against the test's own clock.
module Scipio.Integration.Tests.StatsTests

open System
open System.Diagnostics
open System.IO
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.IO
open Scipio.Integration.Tests.Helpers

let private afterWork =
    test "after some work: TasksRun > 0, Submitted = Completed + InFlight, queues selected, delays sane" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "stats.bin")
            let started = Stopwatch.GetTimestamp()

            let stats, queueStats, mainQueue =
                runShard (fun () ->
                    task {
                        let q = Shard.CreateTaskQueue("worker", Shares.Static 200, Latency.NotImportant)

                        let! _ =
                            spawnInto q (fun () ->
                                task {
                                    let! file = BufferedFile.CreateAsync path

                                    for i in 0..31 do
                                        let block = ReadOnlyMemory(Array.create 256 (byte i))
                                        do! file.WriteAtAsync(block, int64 (i * 256))

                                    do! file.FlushAsync()
                                    let! _ = file.ReadAtAsync(Memory(Array.zeroCreate 4096), 0L)
                                    do! file.DisposeAsync()
                                    do! Shard.Sleep(TimeSpan.FromMilliseconds 2.0)
                                    do! Shard.Yield()
                                    return 0
                                })

                        let stats = Shard.Stats
                        return stats, q.Stats, Shard.CurrentTaskQueue.Stats
                    })

            let testDuration = Stopwatch.GetElapsedTime started
            Expect.isGreaterThan stats.TasksRun 0L "Stats.TasksRun"
            Expect.isGreaterThan stats.LoopTurns 0L "Stats.LoopTurns"
            Expect.isGreaterThan stats.Runtime TimeSpan.Zero "Stats.Runtime"
            Expect.isLessThan stats.Runtime testDuration "the shard's runtime fits in the test's own duration"

            Expect.isGreaterThanOrEqual
                stats.Main.Submitted
                4L
                "the main ring submitted at least the open, flush, read and close"

            Expect.equal stats.InlineWrites 32L "the 32 small writes were pwrites on the shard (InlineWriteLimit)"

            Expect.equal
                stats.Main.Submitted
                (stats.Main.Completed + int64 stats.Main.InFlight)
                $"Main.Submitted should equal Main.Completed + Main.InFlight ({stats.Main})"

            Expect.equal
                stats.Latency.Submitted
                (stats.Latency.Completed + int64 stats.Latency.InFlight)
                $"Latency.Submitted should equal Latency.Completed + Latency.InFlight ({stats.Latency})"

            let names = stats.TaskQueues |> Seq.map (fun q -> q.Name) |> Set.ofSeq
            Expect.equal names (set [ "default"; "worker" ]) "Stats.TaskQueues lists each queue"

            for q in [ queueStats; mainQueue ] do
                Expect.isGreaterThan q.QueueSelected 0L $"queue '%s{q.Name}': QueueSelected"
                Expect.isGreaterThan q.TasksRun 0L $"queue '%s{q.Name}': TasksRun"
                Expect.isGreaterThan q.Runtime TimeSpan.Zero $"queue '%s{q.Name}': Runtime"

                Expect.isLessThan
                    q.MaxQueueDelay
                    testDuration
                    $"queue '%s{q.Name}': MaxQueueDelay is within the test's duration"

                Expect.isGreaterThanOrEqual
                    q.MaxQueueDelay
                    TimeSpan.Zero
                    $"queue '%s{q.Name}': MaxQueueDelay is not negative"

            Expect.equal queueStats.Shares 200 "the worker queue's Stats.Shares"
            Expect.equal queueStats.Name "worker" "the worker queue's Stats.Name")
    }

let private snapshotsMove =
    test "Stats are snapshots that move forward: later TasksRun and Completed are not smaller" {
        let first, second =
            runShard (fun () ->
                task {
                    let first = Shard.Stats

                    for _ in 1..100 do
                        do! Shard.Yield()

                    do! Shard.Sleep(TimeSpan.FromMilliseconds 1.0)
                    return first, Shard.Stats
                })

        Expect.isGreaterThanOrEqual second.TasksRun (first.TasksRun + 100L) "100 yields ran 100 more work items"
        Expect.isGreaterThanOrEqual second.Main.Completed first.Main.Completed "Main.Completed never decreases"
        Expect.isGreaterThan second.Parks first.Parks "a 1 ms sleep on an idle shard parks it"
    }

let tests = testSequenced <| testList "stats" [ afterWork; snapshotsMove ]

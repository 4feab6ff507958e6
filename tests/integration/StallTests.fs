/// The stall detector: a work item that runs past ShardOptions.StallThreshold without yielding is reported with its
/// shard, task queue, duration and the async method's name; short items are not; off by default.
module Scipio.Integration.Tests.StallTests

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Diagnostics
open Scipio.Integration.Tests.Helpers

type Spinner =
    /// Yields once (so what runs next is this method's continuation), then spins 50 ms without yielding.
    static member SpinWithoutYielding() : Task<int> =
        task {
            do! Shard.Yield()
            let clock = Stopwatch.StartNew()

            while clock.ElapsedMilliseconds < 50L do
                ()

            return 1
        }

    /// Many short steps, each yielding: never a stall.
    static member YieldOften() : Task<int> =
        task {
            for _ in 1..200 do
                do! Shard.Yield()

            return 2
        }

let private reported =
    test "a 50 ms spin in SpinWithoutYielding is reported: shard, queue, duration and the method by name" {
        let reports = ConcurrentQueue<StallReport>()

        let options =
            ShardOptions(
                StallThreshold = Nullable(TimeSpan.FromMilliseconds 20.0),
                OnStall = Action<StallReport>(reports.Enqueue)
            )

        let stalls, shardId =
            runShardWith options (fun () ->
                task {
                    let queue =
                        Shard.CreateTaskQueue("spinner", Shares.Static 100, Latency.NotImportant)

                    let! _ = Shard.SpawnInto(queue, fun () -> Spinner.YieldOften())
                    let! _ = Shard.SpawnInto(queue, fun () -> Spinner.SpinWithoutYielding())
                    return Shard.Stats.Stalls, Shard.Id
                })

        let all = List.ofSeq reports
        Expect.equal all.Length 1 $"exactly the spin was reported: %A{all}"
        let report = all.Head
        Expect.equal report.Shard shardId "the shard"
        Expect.equal report.Queue "spinner" "the task queue, by name"
        Expect.isGreaterThanOrEqual report.Duration (TimeSpan.FromMilliseconds 50.0) "at least the 50 ms it spun"
        Expect.stringContains report.Method "SpinWithoutYielding" "the async method, by name"
        Expect.equal stalls 1L "Stats.Stalls counts it"
    }

let private spawnedFunction =
    test "a spawned function that spins before its first await is reported by the function's name" {
        let reports = ConcurrentQueue<StallReport>()

        let options =
            ShardOptions(
                StallThreshold = Nullable(TimeSpan.FromMilliseconds 10.0),
                OnStall = Action<StallReport>(reports.Enqueue)
            )

        runShardWith options (fun () ->
            task {
                let spin =
                    Func<Task<int>>(fun () ->
                        let clock = Stopwatch.StartNew()

                        while clock.ElapsedMilliseconds < 20L do
                            ()

                        Task.FromResult 3)

                let! _ = Shard.Spawn spin
                return ()
            })

        let all = List.ofSeq reports
        Expect.equal all.Length 1 $"one report: %A{all}"
        Expect.isFalse (String.IsNullOrEmpty all.Head.Method) "a method is named"
        Expect.equal all.Head.Queue "default" "the default queue"
    }

let private offByDefault =
    test "without a threshold nothing is timed or reported, and bad thresholds are refused" {
        let stalls =
            runShard (fun () ->
                task {
                    let! _ = Spinner.SpinWithoutYielding()
                    return Shard.Stats.Stalls
                })

        Expect.equal stalls 0L "off by default"

        let tooSmall =
            thrownBy (fun () -> ShardOptions(StallThreshold = Nullable(TimeSpan.FromMicroseconds 10.0)))

        expectExn<ArgumentOutOfRangeException> "a 10 µs threshold" tooSmall |> ignore
    }

let tests =
    testSequenced <| testList "stalls" [ reported; spawnedFunction; offByDefault ]

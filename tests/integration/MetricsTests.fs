/// The "Scipio" meter through a real MeterListener: every instrument, with its tags, values that match Shard.Stats,
/// both shards of a pool, and the I/O histograms.
module Scipio.Integration.Tests.MetricsTests

open System
open System.Collections.Concurrent
open System.Diagnostics.Metrics
open System.IO
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Diagnostics
open Scipio.IO
open Scipio.Runtime
open Scipio.Integration.Tests.Helpers

type private Seen =
    {
        Instrument: string
        Value: float
        Tags: Map<string, string>
    }

/// A listener on the Scipio meter that keeps every measurement it is given.
type private Recorder() =
    let seen = ConcurrentQueue<Seen>()
    let listener = new MeterListener()

    do
        listener.InstrumentPublished <-
            fun instrument l ->
                if instrument.Meter.Name = ScipioMetrics.MeterName then
                    l.EnableMeasurementEvents instrument

        let record
            (instrument: Instrument)
            (value: float)
            (tags: Collections.Generic.KeyValuePair<string, obj | null>[])
            =
            let mutable map = Map.empty

            for tag in tags do
                map <- map.Add(tag.Key, string tag.Value)

            seen.Enqueue
                {
                    Instrument = instrument.Name
                    Value = value
                    Tags = map
                }

        listener.SetMeasurementEventCallback<int64>(
            MeasurementCallback<int64>(fun i v tags _ -> record i (float v) (tags.ToArray()))
        )

        listener.SetMeasurementEventCallback<double>(
            MeasurementCallback<double>(fun i v tags _ -> record i v (tags.ToArray()))
        )

        listener.Start()

    member _.Collect() =
        seen.Clear()
        listener.RecordObservableInstruments()
        List.ofSeq seen

    member _.All = List.ofSeq seen
    member _.Clear() = seen.Clear()

    interface IDisposable with
        member _.Dispose() = listener.Dispose()

let private find (seen: Seen list) name (tags: (string * string) list) =
    seen
    |> List.filter (fun s ->
        s.Instrument = name
        && tags |> List.forall (fun (k, v) -> s.Tags.TryFind k = Some v))

let private instruments =
    test "a MeterListener sees every instrument, tagged shard / queue / ring, with the values Shard.Stats has" {
        use recorder = new Recorder()

        withTempDir (fun dir ->
            let seen, stats =
                runShard (fun () ->
                    task {
                        let queue =
                            Shard.CreateTaskQueue("metered", Shares.Static 200, Latency.NotImportant)

                        let! _ =
                            Shard.SpawnInto(
                                queue,
                                fun () ->
                                    task {
                                        let! file = BufferedFile.CreateAsync(Path.Combine(dir, "m.bin"))
                                        do! file.WriteAtAsync(ReadOnlyMemory(Array.zeroCreate 4096), 0L)
                                        let! _ = file.ReadAtAsync(Memory(Array.zeroCreate 4096), 0L)
                                        do! file.DisposeAsync()
                                        return 0
                                    }
                            )
                        // Publish and read the stats in one work item: nothing runs in between.
                        (nonNull ShardExecutor.Current).PublishStats()
                        let stats = Shard.Stats
                        return recorder.Collect(), stats
                    })

            let shard = string stats.Shard

            let one name tags =
                match find seen name (("shard", shard) :: tags) with
                | [ s ] -> s.Value
                | other -> failwithf "%s %A: expected one measurement, got %A" name tags other

            Expect.equal (one "scipio.shard.tasks" []) (float stats.TasksRun) "tasks = Stats.TasksRun"
            Expect.equal (one "scipio.shard.loop_turns" []) (float stats.LoopTurns) "loop turns"
            Expect.equal (one "scipio.shard.parks" []) (float stats.Parks) "parks"
            Expect.equal (one "scipio.shard.preemptions" []) (float stats.Preemptions) "preemptions"
            Expect.equal (one "scipio.shard.stalls" []) 0.0 "stalls"
            Expect.equal (one "scipio.shard.timers" []) (float stats.PendingTimers) "timers"
            Expect.equal (one "scipio.crossshard.messages" []) 0.0 "a lone shard sends nothing across"

            Expect.floatClose
                Accuracy.high
                (one "scipio.shard.runtime" [])
                stats.Runtime.TotalSeconds
                "runtime, in seconds"

            for ring, rs in [ "main", stats.Main; "latency", stats.Latency; "poll", stats.Poll ] do
                Expect.equal (one "scipio.ring.submitted" [ "ring", ring ]) (float rs.Submitted) $"{ring} submitted"
                Expect.equal (one "scipio.ring.completed" [ "ring", ring ]) (float rs.Completed) $"{ring} completed"
                Expect.equal (one "scipio.ring.in_flight" [ "ring", ring ]) (float rs.InFlight) $"{ring} in flight"
                Expect.equal (one "scipio.ring.backlogged" [ "ring", ring ]) (float rs.Backlogged) $"{ring} backlogged"

            let q = stats.TaskQueues |> Seq.find (fun q -> q.Name = "metered")
            Expect.equal (one "scipio.queue.tasks" [ "queue", "metered" ]) (float q.TasksRun) "the queue's tasks"
            Expect.equal (one "scipio.queue.selected" [ "queue", "metered" ]) (float q.QueueSelected) "times picked"
            Expect.equal (one "scipio.queue.shares" [ "queue", "metered" ]) 200.0 "its shares"

            Expect.floatClose
                Accuracy.high
                (one "scipio.queue.runtime" [ "queue", "metered" ])
                q.Runtime.TotalSeconds
                "its runtime"

            Expect.floatClose
                Accuracy.high
                (one "scipio.queue.delay" [ "queue", "metered" ])
                q.MaxQueueDelay.TotalSeconds
                "its longest delay"

            Expect.equal
                (one "scipio.queue.io.dispatched" [ "queue", "metered" ])
                (float q.IoDispatched)
                "its scheduled I/O"

            Expect.equal (one "scipio.queue.io.bytes" [ "queue", "metered" ]) (float q.IoBytes) "their bytes"

            Expect.floatClose
                Accuracy.high
                (one "scipio.queue.io.scheduler_wait" [ "queue", "metered" ])
                q.IoSchedulerWait.TotalSeconds
                "their wait"

            Expect.floatClose
                Accuracy.high
                (one "scipio.queue.io.device_time" [ "queue", "metered" ])
                q.IoDeviceTime.TotalSeconds
                "their device time"

            Expect.isGreaterThan
                (one "scipio.ring.submitted" [ "ring", "main" ])
                0.0
                "the file I/O went through the main ring")
    }

let private histograms =
    test "scipio.io.duration and scipio.io.resume_delay record each I/O, tagged shard / ring / queue" {
        use recorder = new Recorder()

        withTempDir (fun dir ->
            let shard =
                runShard (fun () ->
                    task {
                        recorder.Clear()
                        let! file = BufferedFile.CreateAsync(Path.Combine(dir, "h.bin"))
                        file.InlineWriteLimit <- 0

                        for i in 0..9 do
                            do! file.WriteAtAsync(ReadOnlyMemory(Array.zeroCreate 512), int64 (i * 512))

                        do! file.DisposeAsync()
                        return string Shard.Id
                    })

            let seen = recorder.All

            let durations =
                find seen "scipio.io.duration" [ "shard", shard; "ring", "main"; "queue", "default" ]

            let resumes =
                find seen "scipio.io.resume_delay" [ "shard", shard; "queue", "default" ]

            Expect.isGreaterThanOrEqual durations.Length 12 "create (open + statx), 10 writes and the close were timed"

            Expect.isTrue
                (durations |> List.forall (fun d -> d.Value > 0.0 && d.Value < 30.0))
                "durations are positive seconds"

            Expect.isGreaterThanOrEqual resumes.Length 10 "each awaited write's resumption was timed"
            Expect.isTrue (resumes |> List.forall (fun d -> d.Value >= 0.0)) "delays are not negative")
    }

let private poolOfTwo =
    test "a pool of 2 reports both shards, and the messages they sent each other" {
        use recorder = new Recorder()

        let pool =
            ShardPool.Start(ShardPoolOptions(Shards = 2, Placement = PoolPlacement.MaxSpread [ 0; 1 ]))

        let sent =
            pool.SubmitTo(
                0,
                Func<Task<int>>(fun () ->
                    task {
                        for _ in 1..10 do
                            let! _ = Shard.SubmitTo(1, Func<Task<int>>(fun () -> Task.FromResult 1))
                            ()

                        return 10
                    })
            )
            |> awaitBounded "calls from shard 0 to 1" shardTimeout

        pool.RunOnAll(
            Func<Task<int>>(fun () ->
                (nonNull ShardExecutor.Current).PublishStats()
                Task.FromResult 0)
        )
        |> awaitBounded "publish on both" shardTimeout
        |> ignore

        let seen = recorder.Collect()
        task { do! pool.DisposeAsync() } |> awaitBounded "the pool" shardTimeout

        let shards =
            find seen "scipio.shard.tasks" []
            |> List.map (fun s -> s.Tags["shard"])
            |> Set.ofList

        Expect.isTrue (shards.Contains "0" && shards.Contains "1") $"both shards report: %A{shards}"

        let fromZero =
            find seen "scipio.crossshard.messages" [ "shard", "0" ]
            |> List.map (fun s -> s.Value)

        Expect.isTrue
            (fromZero |> List.exists (fun v -> v >= float sent))
            $"shard 0 sent at least its 10 calls: %A{fromZero}"
    }

let tests =
    testSequenced <| testList "metrics" [ instruments; histograms; poolOfTwo ]

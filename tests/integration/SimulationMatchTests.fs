/// The public simulator against the real shard: the same scenario (three hogs and a bursty queue) run for a second on a
/// shard, with `shard { }` loops as the queues' work, and in Scipio.Simulation. Their CPU shares agree within 5
/// points: the simulator is built from the transitions the shell calls, so what it says about a configuration is
/// what the shard does with it. The assertion is a ratio, as in SchedulingTests; the figures are printed.
module Scipio.Integration.Tests.SimulationMatchTests

open System
open System.Diagnostics
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Core
open Scipio.Simulation
open Scipio.Integration.Tests.Helpers

/// Every task of the scenario: 50 µs of CPU between preemption points.
let private taskUs = 50

/// The bursty queue: 5 tasks, then a 2 ms sleep.
let private burst = 5
let private sleepMs = 2.0

/// The scenario, as the simulator takes it.
let private scenario =
    let tasks = Nanos.us (float taskUs)

    Scenario.create
        [
            QueueSpec.hog "hog-100" 100 |> QueueSpec.withTasks tasks tasks
            QueueSpec.hog "hog-200" 200 |> QueueSpec.withTasks tasks tasks
            QueueSpec.hog "hog-400" 400 |> QueueSpec.withTasks tasks tasks
            QueueSpec.bursty "bursty-300" 300 (burst, burst) (Nanos.ms sleepMs, Nanos.ms sleepMs)
            |> QueueSpec.withTasks tasks tasks
        ]

let private spin (us: int) =
    let until = Stopwatch.GetTimestamp() + int64 us * Stopwatch.Frequency / 1_000_000L

    while Stopwatch.GetTimestamp() < until do
        ()

/// The same scenario on a real shard for a second: each queue's CPU time.
let private onShard () : (string * TimeSpan) array =
    runShardWith (ShardOptions(Placement = Placement.Fixed 0)) (fun () ->
        task {
            let stop = { IsSet = false }

            let queues =
                scenario.Queues
                |> Array.map (fun q -> TaskQueue.create q.Name (Shares.Static q.Shares) Latency.NotImportant, q)

            let work =
                queues
                |> Array.map (fun (queue, spec) ->
                    queue
                    |> TaskQueue.spawn (fun () ->
                        shard {
                            match spec.Work with
                            | Work.Hog ->
                                // A naive CPU loop: shard { } gives it a preemption point per iteration.
                                while not stop.IsSet do
                                    spin taskUs
                            | Work.Bursty _ ->
                                while not stop.IsSet do
                                    for _ in 1..burst do
                                        spin taskUs

                                    do! Shard.sleep (ms sleepMs)
                        }))

            do! Shard.sleep (TimeSpan.FromSeconds 1.0)
            stop.IsSet <- true

            for w in work do
                do! w

            return queues |> Array.map (fun (queue, _) -> queue.Name, queue.Stats.Runtime)
        })

let tests =
    testSequenced
    <| testList
        "simulator"
        [
            test "the simulator's CPU shares match a real shard's for the same scenario, within 5 points" {
                let real = onShard ()
                let busy = real |> Array.sumBy (fun (_, t) -> t.TotalSeconds)
                let report = Simulation.run scenario
                printfn "The same scenario simulated and on a shard (1 s; CPU share of the busy time):"

                for name, runtime in real do
                    let simulated = (Report.queue name report).CpuShare
                    let actual = runtime.TotalSeconds / busy
                    printfn "  %-11s simulated %5.1f%%  shard %5.1f%%" name (simulated * 100.0) (actual * 100.0)

                for name, runtime in real do
                    let simulated = (Report.queue name report).CpuShare
                    let actual = runtime.TotalSeconds / busy

                    Expect.isLessThanOrEqual
                        (abs (actual - simulated))
                        0.05
                        $"{name}: {actual:P1} of the CPU on the shard, {simulated:P1} in the simulator\n\
                          {Report.format report}"
            }
        ]

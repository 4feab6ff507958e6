/// The public simulator's user surface: reports agree with the trace they summarize, scenarios are validated, the
/// shrinkers keep what they must, and a run replays from its seed.
module Scipio.Property.Tests.SimulationReportTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Scipio.Core
open Scipio.Simulation
open Scipio.Property.Tests.Generators

/// A request-handling queue with a 2 ms budget, as the README's example has it.
let private requests =
    QueueSpec.bursty "requests" 100 (1, 4) (Nanos.ms 1.0, Nanos.ms 5.0)
    |> QueueSpec.matters (Nanos.ms 2.0)

/// A latency-sensitive queue that stays within its shares: one task of 10 to 50 µs every 2 to 5 ms, at 1000 shares.
/// It starts once every background hog has had a slice: at the start hogs that have not run sit at vruntime 0,
/// below a queue that has run even once, and each takes its slice first (fair by vruntime, and found by this very
/// property when the queue started at 0: 2.6 ms behind five hogs).
let private urgent =
    QueueSpec.bursty "urgent" 1000 (1, 1) (Nanos.ms 2.0, Nanos.ms 5.0)
    |> QueueSpec.matters (Nanos.ms 1.0)
    |> QueueSpec.startingAt (Nanos.ms 50.0)

/// Throughput hogs of equal shares.
let private batch = ScenarioGen.hog "batch" 100 LatencyClass.NotImportant

let private reports =
    testList
        "reports"
        [
            testPropertyWithConfig simulations "CPU shares add up to the busy time, and each is the queue's runtime"
            <| Prop.forAll ScenarioArb.any (fun scenario ->
                let report = Simulation.run scenario
                let busy = report.Trace.Final |> Array.sumBy _.RuntimeNs
                Expect.equal (busy + report.IdleNs) report.EndNs "busy and idle time make up the run"

                if busy > 0L then
                    Expect.floatClose Accuracy.high (report.Queues |> Array.sumBy _.CpuShare) 1.0 "shares add up to 1"

                for i in 0 .. report.Queues.Length - 1 do
                    let q = report.Queues[i]
                    Expect.equal q.CpuNs report.Trace.Final[i].RuntimeNs $"{q.Name}: CPU is the core's runtime"
                    Expect.equal q.Name scenario.Queues[i].Name "queues in the scenario's order")

            testPropertyWithConfig simulations "every run and every wake is counted once, and no delay is negative"
            <| Prop.forAll ScenarioArb.any (fun scenario ->
                let report = Simulation.run scenario

                for i in 0 .. report.Queues.Length - 1 do
                    let q = report.Queues[i]
                    let runs = report.Trace.Runs |> Array.filter (fun r -> r.Queue = i)
                    let wakes = report.Trace.Wakes |> Array.filter (fun w -> w.Queue = i)
                    Expect.equal q.RunLength.Count runs.Length $"{q.Name}: one run length per run"
                    Expect.equal q.WakeToRun.Count wakes.Length $"{q.Name}: one delay per wake"

                    if runs.Length > 0 then
                        Expect.equal
                            q.RunLength.MaxNs
                            (runs |> Array.map (fun r -> r.EndNs - r.StartNs) |> Array.max)
                            "max"

                    Expect.isGreaterThanOrEqual q.WakeToRun.P50Ns 0L $"{q.Name}: wake-to-run is not negative"

                    match q.Latency with
                    | LatencyClass.Matters budget ->
                        Expect.equal
                            q.BudgetHeld
                            (q.WakeToRun.MaxNs <= budget)
                            $"{q.Name}: held iff every wake ran in time"
                    | LatencyClass.NotImportant -> Expect.isTrue q.BudgetHeld "no budget, nothing to miss")

            testPropertyWithConfig quick "a distribution's percentiles are values of the set, in order"
            <| fun (values: int64 list) ->
                let d = Distribution.ofSeq values

                if values.IsEmpty then
                    Expect.equal d Distribution.empty "nothing"
                else
                    Expect.equal d.Count values.Length "count"
                    Expect.equal d.MaxNs (List.max values) "max"
                    Expect.isTrue (List.contains d.P50Ns values && List.contains d.P99Ns values) "values of the set"
                    Expect.isTrue (d.P50Ns <= d.P99Ns && d.P99Ns <= d.MaxNs) "p50 <= p99 <= max"

            testCase "p50 and p99 by nearest rank"
            <| fun () ->
                let d = Distribution.ofSeq [ 1L .. 100L ]
                Expect.equal (d.P50Ns, d.P99Ns, d.MaxNs) (50L, 99L, 100L) "1..100"

            testPropertyWithConfig simulations "the same scenario gives the same report"
            <| Prop.forAll ScenarioArb.any (fun scenario ->
                let a = Simulation.run scenario
                let b = Simulation.run scenario
                Expect.equal a.Queues b.Queues "deterministic"
                Expect.equal a.Trace.Runs.Length b.Trace.Runs.Length "same runs")

            testCase "Report.queue names the queues there are when the name is not one of them"
            <| fun () ->
                let report =
                    Simulation.run (Scenario.create [ requests; QueueSpec.hog "batch" 100 ])

                Expect.equal (Report.queue "batch" report).Name "batch" "found"

                Expect.throwsT<Collections.Generic.KeyNotFoundException>
                    (fun () -> Report.queue "nope" report |> ignore)
                    "no such queue"

            testCase "the README's example: requests beside a hog hold a 2 ms budget, and the table says so"
            <| fun () ->
                let report =
                    Simulation.run (Scenario.create [ requests; QueueSpec.hog "batch" 100 ])

                let text = Report.format report
                Expect.isTrue (Report.queue "requests" report).BudgetHeld $"held:\n{text}"
                Expect.stringContains text "requests" "one line per queue"
                Expect.isGreaterThan (Report.queue "batch" report).CpuShare 0.5 "the hog gets the rest"
        ]

let private validation =
    testList
        "validation"
        [
            testCase "a scenario without queues, bad shares, tasks or bursts is an ArgumentException that says what"
            <| fun () ->
                let bad =
                    [
                        Scenario.create [], "at least one queue"
                        Scenario.create [ QueueSpec.hog "zero" 0 ], "shares 0"
                        Scenario.create [ QueueSpec.hog "t" 100 |> QueueSpec.withTasks 0L 10L ], "tasks of 0..10"
                        Scenario.create [ QueueSpec.bursty "b" 100 (3, 2) (0L, 1L) ], "bursts of 3..2"
                        Scenario.create [ QueueSpec.hog "m" 100 |> QueueSpec.matters 0L ], "budget must be positive"
                        Scenario.create [ QueueSpec.hog "q" 100 ] |> Scenario.withDuration 0L, "duration"
                    ]

                for scenario, says in bad do
                    try
                        Simulation.run scenario |> ignore
                        failtestf "%s: no exception" says
                    with :? ArgumentException as e ->
                        Expect.stringContains e.Message says "the message names the problem"

            testPropertyWithConfig simulations "generated scenarios are valid"
            <| Prop.forAll ScenarioArb.any (fun scenario -> Expect.isEmpty (Scenario.errors scenario) "valid")
        ]

let private shrinking =
    testList
        "shrinking"
        [
            testPropertyWithConfig models "shrinking keeps the scenario valid and your queues as they were"
            <| Prop.forAll (ScenarioArb.withBackground [ requests ] 8) (fun scenario ->
                for simpler in ScenarioShrink.scenario (fun q -> q.Name = "requests") scenario do
                    Expect.isEmpty (Scenario.errors simpler) "valid"
                    Expect.contains simpler.Queues requests "the kept queue stands"
                    Expect.isLessThanOrEqual simpler.Queues.Length scenario.Queues.Length "never more queues")

            testPropertyWithConfig quick "a queue shrinks to valid, simpler queues"
            <| Prop.forAll (Arb.fromGen (ScenarioGen.background "q")) (fun q ->
                for simpler in ScenarioShrink.queue q do
                    Expect.isEmpty (QueueSpec.errors simpler) "valid"
                    Expect.notEqual simpler q "a change"
                    Expect.isLessThanOrEqual simpler.TaskMaxNs q.TaskMaxNs "tasks no longer")

            testPropertyWithConfig
                simulations
                "beside up to 8 hogs of 100 shares (tasks under 150 µs), work with a 1 ms budget runs within 2 ms"
            <| Prop.forAll (ScenarioArb.withBackgroundOf batch [ urgent ] 8) (fun scenario ->
                // Its budget is the scheduler's target from when the shard notices the work, and the task in progress
                // runs to its end: so 1 ms, plus a task to notice, plus a task to stop. At most 50 µs of CPU per 2 ms
                // at 1000 shares never gets ahead of hogs of equal shares (8 × 100 shares move the watermark 2.5 ms in
                // 2 ms): no vruntime debt to wait out (KNOWN-BUGS.md 3: with debt the budget does not hold).
                let report = Simulation.run scenario
                let q = Report.queue "urgent" report
                Expect.isLessThanOrEqual q.WakeToRun.MaxNs (Nanos.ms 2.0) $"urgent:\n{Report.format report}")
        ]

let tests = testList "Simulation (public)" [ reports; validation; shrinking ]

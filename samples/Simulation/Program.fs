// Property-test a task-queue configuration before it ships: a latency-sensitive "requests" queue beside up to eight
// background batch queues, simulated from Scipio.Core's own scheduling transitions. FsCheck generates the background,
// the simulator runs each configuration for a simulated second, and the property says what must hold.
open Expecto
open FsCheck
open FsCheck.FSharp
open Scipio.Core
open Scipio.Simulation

// Woken every 1 to 5 ms with 1 to 4 tasks of 10 to 50 µs; a 1 ms latency budget; 1000 shares. It starts at 50 ms,
// once every batch queue has had its first slice (until then, a queue that has never run is owed one).
let requests =
    QueueSpec.bursty "requests" 1000 (1, 4) (Nanos.ms 1.0, Nanos.ms 5.0)
    |> QueueSpec.matters (Nanos.ms 1.0)
    |> QueueSpec.startingAt (Nanos.ms 50.0)

// What must hold: requests always run within 2 ms of their work falling due.
let runsWithin2ms (report: Report) =
    (Report.queue "requests" report).WakeToRun.MaxNs <= Nanos.ms 2.0

// Batch jobs written with preemption points (loops in shard { }, or YieldIfNeeded): tasks of 5 to 150 µs.
let wellBehaved = ScenarioGen.hog "batch" 100 LatencyClass.NotImportant

// Batch jobs with loops that never yield: the shard can take the CPU back only every 10 µs to 5 ms.
let naive =
    ScenarioGen.hogOf (ScenarioGen.tasksWithin (Nanos.us 10.0, Nanos.ms 5.0)) "batch" 100 LatencyClass.NotImportant

let config =
    { FsCheckConfig.defaultConfig with
        maxTest = 200
    }

let tests =
    testList
        "requests beside up to 8 batch queues"
        [
            testPropertyWithConfig config "batch queues with preemption points: requests run within 2 ms"
            <| Prop.forAll (ScenarioArb.withBackgroundOf wellBehaved [ requests ] 8) (Simulation.run >> runsWithin2ms)

            test "batch queues whose loops never yield: FsCheck finds a counterexample and shrinks it" {
                // FsCheck throws on the counterexample; the last report that failed is the shrunk one.
                let mutable shrunk = None

                let property scenario =
                    let report = Simulation.run scenario
                    let holds = runsWithin2ms report

                    if not holds then
                        shrunk <- Some report

                    holds

                let failure =
                    try
                        let arbitrary = ScenarioArb.withBackgroundOf naive [ requests ] 8
                        Check.One(Config.QuickThrowOnFailure.WithMaxTest 200, Prop.forAll arbitrary property)
                        None
                    with e ->
                        Some(e.Message.Split('\n')[0])

                match failure, shrunk with
                | Some falsifiable, Some report ->
                    printfn "%s\nShrunk to:\n%A\n%s" falsifiable report.Scenario.Queues (Report.format report)
                | _ -> failtest "expected FsCheck to find a configuration where requests wait more than 2 ms"
            }
        ]

[<EntryPoint>]
let main argv =
    printfn
        "One configuration, simulated:\n%s"
        (Report.format (Simulation.run (Scenario.create [ requests; QueueSpec.hog "batch" 100 ])))

    runTestsWithCLIArgs [] argv tests

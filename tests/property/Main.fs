module Scipio.Property.Tests.Main

open Expecto

let tests =
    testList
        "Scipio.Core"
        [
            SharesLatencyTests.tests
            TaskQueueTests.tests
            TimerTests.tests
            TimerTests.periodicTests
            RingBookTests.tests
            AffinityTests.tests
            PoolPlacementTests.tests
            ReadPlanTests.tests
            LoopTests.tests
            RoutingTests.tests
            SimulationTests.tests
            SimulationReportTests.tests
            SpscRingTests.tests
            IoSchedulerTests.tests
        ]

[<EntryPoint>]
let main argv = runTestsWithCLIArgs [] argv tests

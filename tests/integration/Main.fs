module Scipio.Integration.Tests.Main

open Expecto

let tests =
    testList
        "integration"
        [
            KernelAbiTests.tests
            ShardTests.tests
            SchedulingTests.tests
            TimerTests.tests
            PeriodicTimerTests.tests
            TimeoutTests.tests
            PinningTests.tests
            PoolPlacementTests.tests
            BufferedFileTests.tests
            InFlightTests.tests
            AllocationTests.tests
            ErrorTests.tests
            UnavailableTests.tests
            CrossThreadTests.tests
            StatsTests.tests
            ThreeRingTests.tests
            OperationKindTests.tests
            PoolTests.tests
            DmaFileTests.tests
            FixedBufferTests.tests
            ReadmeTests.tests
            DocsTests.tests
            DocsTests.examples
            DefectTests.tests
            ChannelTests.tests
            SyncTests.tests
            ModelTests.tests
            FileSystemTests.tests
            DmaStreamTests.tests
            NetTests.tests
            StallTests.tests
            MetricsTests.tests
            DiskSchedulerTests.tests
            DiskModelTests.tests
            PublicApiTests.tests
            XmlDocTests.tests
            KeyValueTests.tests
            ShardBuilderTests.tests
            SimulationMatchTests.tests
            HostingTests.tests
        ]

[<EntryPoint>]
let main argv =
    for reason in Helpers.pendingReasons do
        printfn "%s" reason

    runTestsWithCLIArgs [] argv tests

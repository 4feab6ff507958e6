/// The allocation budget of steady-state hot paths on the shard thread: after a warm-up, awaiting a file read or
/// write, Shard.Yield, Shard.YieldIfNeeded and Shard.Sleep(0) in a loop allocates nothing (DESIGN.md §3: every GC
/// stops every shard). These are counts (GC.GetAllocatedBytesForCurrentThread), not timings. The loops are written
/// directly in task { } with while loops (a `for .. in` range would allocate its enumerator once per loop, which is
/// the test's doing, not the runtime's).
module Scipio.Integration.Tests.AllocationTests

open System
open System.IO
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.IO
open Scipio.Integration.Tests.Helpers

let private warmup = 1_000
let private operations = 10_000

/// What a measured loop reports: bytes the shard thread allocated during it, and whether the whole loop stayed on
/// the thread it started on (else the thread's counter would not cover it).
type private Measured = { Bytes: int64; SameThread: bool }

let private check (what: string) (m: Measured) =
    Expect.isTrue m.SameThread $"%s{what}: the loop should stay on the shard thread"
    let perOp = float m.Bytes / float operations

    Expect.isLessThan
        perOp
        1.0
        $"%s{what} should allocate nothing in steady state: %d{m.Bytes} bytes over %d{operations} awaits (%.2f{perOp} B/op)"

let private yieldLoop =
    test "Shard.Yield allocates nothing per await" {
        runShard (fun () ->
            task {
                let mutable i = 0

                while i < warmup do
                    do! Shard.Yield()
                    i <- i + 1

                let thread = Environment.CurrentManagedThreadId
                let before = GC.GetAllocatedBytesForCurrentThread()
                i <- 0

                while i < operations do
                    do! Shard.Yield()
                    i <- i + 1

                let after = GC.GetAllocatedBytesForCurrentThread()

                return
                    {
                        Bytes = after - before
                        SameThread = thread = Environment.CurrentManagedThreadId
                    }
            })
        |> check "Shard.Yield"
    }

let private yieldIfNeededLoop =
    test "Shard.YieldIfNeeded allocates nothing per await (with real preemptions in the loop)" {
        let measured, preempted =
            runShard (fun () ->
                task {
                    // Enough work between preemption points that the 1 ms slice runs out now and then, so the
                    // suspending path is measured too, not only the synchronous one.
                    let mutable x = 1UL
                    let mutable j = 0
                    let mutable i = 0

                    while i < warmup do
                        j <- 0

                        while j < 2_000 do
                            x <- x * 6364136223846793005UL + 1UL
                            j <- j + 1

                        do! Shard.YieldIfNeeded()
                        i <- i + 1

                    let preemptionsBefore = Shard.Stats.Preemptions
                    let thread = Environment.CurrentManagedThreadId
                    let before = GC.GetAllocatedBytesForCurrentThread()
                    i <- 0

                    while i < operations do
                        j <- 0

                        while j < 2_000 do
                            x <- x * 6364136223846793005UL + 1UL
                            j <- j + 1

                        do! Shard.YieldIfNeeded()
                        i <- i + 1

                    let after = GC.GetAllocatedBytesForCurrentThread()
                    let preempted = Shard.Stats.Preemptions - preemptionsBefore

                    return
                        {
                            Bytes = after - before
                            SameThread = thread = Environment.CurrentManagedThreadId && x <> 0UL
                        },
                        preempted
                })

        check "Shard.YieldIfNeeded" measured
        Expect.isGreaterThan preempted 0L "the measured loop should have been preempted at least once"
    }

let private sleepZeroLoop =
    test "Shard.Sleep(TimeSpan.Zero) allocates nothing per await" {
        runShard (fun () ->
            task {
                let mutable i = 0

                while i < warmup do
                    do! Shard.Sleep TimeSpan.Zero
                    i <- i + 1

                let thread = Environment.CurrentManagedThreadId
                let before = GC.GetAllocatedBytesForCurrentThread()
                i <- 0

                while i < operations do
                    do! Shard.Sleep TimeSpan.Zero
                    i <- i + 1

                let after = GC.GetAllocatedBytesForCurrentThread()

                return
                    {
                        Bytes = after - before
                        SameThread = thread = Environment.CurrentManagedThreadId
                    }
            })
        |> check "Shard.Sleep(0)"
    }

let private fileLoops =
    test "BufferedFile.ReadAtAsync and WriteAtAsync allocate nothing per await" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "alloc.bin")

            let reads, writes =
                runShard (fun () ->
                    task {
                        let! file = BufferedFile.CreateAsync path
                        let data = Array.init 4096 byte
                        let source = ReadOnlyMemory data
                        let target = Memory(Array.zeroCreate<byte> 4096)
                        let mutable i = 0

                        while i < warmup do
                            do! file.WriteAtAsync(source, 0L)
                            let! _ = file.ReadAtAsync(target, 0L)
                            i <- i + 1

                        let thread = Environment.CurrentManagedThreadId
                        let beforeWrites = GC.GetAllocatedBytesForCurrentThread()
                        i <- 0

                        while i < operations do
                            do! file.WriteAtAsync(source, int64 ((i % 16) * 4096))
                            i <- i + 1

                        let afterWrites = GC.GetAllocatedBytesForCurrentThread()
                        let mutable total = 0L
                        i <- 0

                        while i < operations do
                            let! n = file.ReadAtAsync(target, int64 ((i % 16) * 4096))
                            total <- total + int64 n
                            i <- i + 1

                        let afterReads = GC.GetAllocatedBytesForCurrentThread()
                        let sameThread = thread = Environment.CurrentManagedThreadId
                        do! file.DisposeAsync()

                        return
                            {
                                Bytes = afterReads - afterWrites
                                SameThread = sameThread && total = int64 operations * 4096L
                            },
                            {
                                Bytes = afterWrites - beforeWrites
                                SameThread = sameThread
                            }
                    })

            check "BufferedFile.WriteAtAsync" writes
            check "BufferedFile.ReadAtAsync (every read full)" reads)
    }

let tests =
    testSequenced
    <| testList "allocations" [ yieldLoop; yieldIfNeededLoop; sleepZeroLoop; fileLoops ]

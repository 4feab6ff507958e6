/// The allocation budget of steady-state hot paths on the shard thread: after a warm-up, awaiting a file read or
/// write, Shard.Yield, Shard.YieldIfNeeded and Shard.Sleep(0) in a loop allocates nothing (DESIGN.md §3: every GC
/// stops every shard). These are counts (GC.GetAllocatedBytesForCurrentThread), not timings. The loops are written
/// directly in task { } with while loops (a `for .. in` range would allocate its enumerator once per loop, which is
/// the test's doing, not the runtime's). The F# task builder allocates nothing per await: its state machine is
/// boxed once, at the first suspension, during the warm-up pass; see below for mutable locals.
module Scipio.Integration.Tests.AllocationTests

open System
open System.IO
open System.Threading
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
        $"%s{what} should allocate nothing in steady state: %d{m.Bytes} bytes over %d{operations} awaits \
          (%.2f{perOp} B/op)"

// Each test runs its loop twice through the same await sites: a warm-up pass of `warmup` operations, then the
// measured pass of `operations`. Every `let mutable` is declared at the top of the task: the F# compiler turns a
// mutable local declared inside a loop that awaits (or after an await, in some positions) into a heap ref cell,
// 24 bytes each time the declaration runs; measured here as 24 B per iteration for a counter declared inside the
// loop, and 24 B once for one declared between two loops. That is the test's code, not the runtime, so the tests
// are written to avoid it.

let private yieldLoop =
    test "Shard.Yield allocates nothing per await" {
        runShard (fun () ->
            task {
                let thread = Environment.CurrentManagedThreadId
                let mutable measured = 0L
                let mutable before = 0L
                let mutable pass = 0
                let mutable i = 0

                while pass < 2 do
                    before <- GC.GetAllocatedBytesForCurrentThread()
                    i <- 0

                    while i < (if pass = 0 then warmup else operations) do
                        do! Shard.Yield()
                        i <- i + 1

                    measured <- GC.GetAllocatedBytesForCurrentThread() - before
                    pass <- pass + 1

                return
                    {
                        Bytes = measured
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
                    let thread = Environment.CurrentManagedThreadId
                    let mutable measured = 0L
                    let mutable before = 0L
                    let mutable preemptionsBefore = 0L
                    let mutable preempted = 0L
                    let mutable x = 1UL
                    let mutable pass = 0
                    let mutable i = 0
                    let mutable j = 0

                    // A pending timer: without one (or another runnable queue, or I/O in flight) a lone queue needs no
                    // preemption timer and would never be preempted; with it the slice runs out every 1 ms.
                    use pendingTimer = new CancellationTokenSource()
                    let pending = Shard.Sleep(TimeSpan.FromHours 1.0, pendingTimer.Token).AsTask()

                    while pass < 2 do
                        preemptionsBefore <- Shard.Stats.Preemptions
                        before <- GC.GetAllocatedBytesForCurrentThread()
                        i <- 0

                        while i < (if pass = 0 then warmup else operations) do
                            // Enough work between preemption points that the 1 ms slice runs out now and then, so
                            // the suspending path is measured too, not only the synchronous one.
                            j <- 0

                            while j < 2_000 do
                                x <- x * 6364136223846793005UL + 1UL
                                j <- j + 1

                            do! Shard.YieldIfNeeded()
                            i <- i + 1

                        measured <- GC.GetAllocatedBytesForCurrentThread() - before
                        preempted <- Shard.Stats.Preemptions - preemptionsBefore
                        pass <- pass + 1

                    pendingTimer.Cancel()

                    try
                        do! pending
                    with :? OperationCanceledException ->
                        ()

                    return
                        {
                            Bytes = measured
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
                let thread = Environment.CurrentManagedThreadId
                let mutable measured = 0L
                let mutable before = 0L
                let mutable pass = 0
                let mutable i = 0

                while pass < 2 do
                    before <- GC.GetAllocatedBytesForCurrentThread()
                    i <- 0

                    while i < (if pass = 0 then warmup else operations) do
                        do! Shard.Sleep TimeSpan.Zero
                        i <- i + 1

                    measured <- GC.GetAllocatedBytesForCurrentThread() - before
                    pass <- pass + 1

                return
                    {
                        Bytes = measured
                        SameThread = thread = Environment.CurrentManagedThreadId
                    }
            })
        |> check "Shard.Sleep(0)"
    }

let private periodicTimerLoop =
    test "ShardPeriodicTimer.WaitForNextTickAsync allocates nothing per tick (waits that park and waits due at once)" {
        let measured, waited =
            runShard (fun () ->
                task {
                    let thread = Environment.CurrentManagedThreadId
                    // 20 µs: most waits arm the heap and park until the tick; some find it due at once.
                    use timer = Shard.CreatePeriodicTimer(TimeSpan.FromMicroseconds 20.0)
                    let mutable measured = 0L
                    let mutable before = 0L
                    let mutable waited = 0
                    let mutable pass = 0
                    let mutable i = 0
                    let mutable ticked = true

                    while pass < 2 do
                        before <- GC.GetAllocatedBytesForCurrentThread()
                        i <- 0
                        waited <- 0

                        while i < (if pass = 0 then warmup else operations) do
                            let tick = timer.WaitForNextTickAsync()

                            if not tick.IsCompleted then
                                waited <- waited + 1

                            let! t = tick
                            ticked <- ticked && t
                            i <- i + 1

                        measured <- GC.GetAllocatedBytesForCurrentThread() - before
                        pass <- pass + 1

                    return
                        {
                            Bytes = measured
                            SameThread = thread = Environment.CurrentManagedThreadId && ticked
                        },
                        waited
                })

        check "ShardPeriodicTimer.WaitForNextTickAsync" measured
        Expect.isGreaterThan waited 100 "the measured loop should have waited for ticks, not only found them due"
    }

let private fileLoops =
    test "BufferedFile.ReadAtAsync and WriteAtAsync (inline and through the ring) allocate nothing per await" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "alloc.bin")

            let reads, inlineWrites, ringWrites, everyReadFull =
                runShard (fun () ->
                    task {
                        let source = ReadOnlyMemory(Array.init 4096 byte)
                        let target = Memory(Array.zeroCreate<byte> 4096)
                        let thread = Environment.CurrentManagedThreadId
                        let mutable before = 0L
                        let mutable inlineBytes = 0L
                        let mutable ringBytes = 0L
                        let mutable readBytes = 0L
                        let mutable short = 0
                        let mutable pass = 0
                        let mutable i = 0
                        let! file = BufferedFile.CreateAsync path

                        while pass < 2 do
                            let count = if pass = 0 then warmup else operations

                            for limit in [| BufferedFile.DefaultInlineWriteLimit; 0 |] do
                                file.InlineWriteLimit <- limit
                                before <- GC.GetAllocatedBytesForCurrentThread()
                                i <- 0

                                while i < count do
                                    do! file.WriteAtAsync(source, int64 ((i % 16) * 4096))
                                    i <- i + 1

                                let bytes = GC.GetAllocatedBytesForCurrentThread() - before

                                if limit = 0 then
                                    ringBytes <- bytes
                                else
                                    inlineBytes <- bytes

                            before <- GC.GetAllocatedBytesForCurrentThread()
                            i <- 0

                            while i < count do
                                let! n = file.ReadAtAsync(target, int64 ((i % 16) * 4096))

                                if n <> 4096 then
                                    short <- short + 1

                                i <- i + 1

                            readBytes <- GC.GetAllocatedBytesForCurrentThread() - before
                            pass <- pass + 1

                        let sameThread = thread = Environment.CurrentManagedThreadId
                        do! file.DisposeAsync()

                        return
                            {
                                Bytes = readBytes
                                SameThread = sameThread
                            },
                            {
                                Bytes = inlineBytes
                                SameThread = sameThread
                            },
                            {
                                Bytes = ringBytes
                                SameThread = sameThread
                            },
                            short = 0
                    })

            check "BufferedFile.WriteAtAsync (pwrite on the shard)" inlineWrites
            check "BufferedFile.WriteAtAsync (through the ring)" ringWrites
            check "BufferedFile.ReadAtAsync" reads
            Expect.isTrue everyReadFull "every 4 KiB read of a written 4 KiB block should read it all")
    }

let tests =
    testSequenced
    <| testList "allocations" [ yieldLoop; yieldIfNeededLoop; sleepZeroLoop; periodicTimerLoop; fileLoops ]

/// Defects found when the shard was tried as a new user would: one test each, through the public API only. Each
/// comment says what was wrong; until the runtime is fixed these tests fail (they are not pending: a red test is
/// the point). Every test is bounded: a hang guard fails it instead of hanging the suite.
module Scipio.Integration.Tests.DefectTests

open System
open System.Diagnostics
open System.IO
open System.Runtime.InteropServices
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.IO
open Scipio.Integration.Tests.Helpers

[<DllImport("libc", SetLastError = true, EntryPoint = "open")>]
extern int private openFd(string path, int flags, int mode)

[<DllImport("libc", SetLastError = true, EntryPoint = "write")>]
extern nativeint private writeFd(int fd, byte[] buffer, unativeint count)

[<DllImport("libc", SetLastError = true, EntryPoint = "close")>]
extern int private closeFd(int fd)

let private O_WRONLY = 0x1
let private O_NONBLOCK = 0x800

/// Starts a shard running `main` and waits for it at most `bound` (a hang guard, not a timing assertion).
let private runBoundedWith (what: string) (bound: TimeSpan) (options: ShardOptions) (main: unit -> Task<'T>) : 'T =
    Shard.Start(Func<Task<'T>>(main), options).Completion |> awaitBounded what bound

/// A mutable cell written by the shard and read by the test thread for failure messages only.
type private Progress = { mutable Step: string }

/// True for the exceptions an operation may end with once its file is disposed or its token canceled.
let private endedByDisposeOrCancel (thrown: exn option) =
    match thrown with
    | Some(:? OperationCanceledException)
    | Some(:? ObjectDisposedException) -> true
    | _ -> false

let private describe (thrown: exn option) =
    match thrown with
    | None -> "completed normally"
    | Some e -> $"{e.GetType().Name}: {e.Message}"

/// On a shard: waits for `t` to finish, at most `bound` (Shard.Sleep as a hang guard only); true if it finished.
let private finishesWithin (bound: TimeSpan) (t: Task) : Task<bool> =
    task {
        use guard = new CancellationTokenSource()
        let timeout = Shard.Sleep(bound, guard.Token).AsTask()
        let! first = Task.WhenAny(t, timeout)
        guard.Cancel()

        try
            do! timeout
        with :? OperationCanceledException ->
            ()

        return obj.ReferenceEquals(first, t)
    }

// ---- 1 ----------------------------------------------------------------------------------------------------------

/// Defect: 300 reads pending on an idle FIFO fill the 256-entry ring; the rest wait in the backlog, and every later
/// operation (an unrelated file's open, write, read, and the FIFO file's own close) queues behind them for good:
/// one idle peer stops all the shard's I/O. After DisposeAsync the pending reads must end (canceled, or
/// ObjectDisposedException), and the unrelated file I/O must complete meanwhile.
let private backlogBlocksOtherIo =
    testCase "300 reads pending on an idle FIFO do not block other I/O; DisposeAsync ends them"
    <| fun () ->
        withTempDir (fun dir ->
            let fifo = Path.Combine(dir, "fifo")
            Libc.makeFifo fifo
            let progress = { Step = "opening the FIFO" }

            let run () =
                runBoundedWith "the shard" (TimeSpan.FromSeconds 20.0) (ShardOptions()) (fun () ->
                    task {
                        // Read-write, so opening does not wait for a writer.
                        let! file = BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)
                        progress.Step <- "starting 300 reads"

                        let reads =
                            Array.init 300 (fun _ -> file.ReadAtAsync(Memory(Array.zeroCreate<byte> 16), 0L).AsTask())

                        progress.Step <- "creating an unrelated regular file"
                        let! other = BufferedFile.CreateAsync(Path.Combine(dir, "other.bin"))
                        progress.Step <- "writing the regular file"
                        do! other.WriteAtAsync(ReadOnlyMemory [| 1uy; 2uy; 3uy |], 0L)
                        progress.Step <- "reading the regular file"
                        let back = Array.zeroCreate<byte> 3
                        let! n = other.ReadAtAsync(Memory back, 0L)
                        progress.Step <- "closing the regular file"
                        do! other.DisposeAsync()
                        progress.Step <- "disposing the FIFO file (300 reads pending)"
                        do! file.DisposeAsync()
                        progress.Step <- "waiting for the 300 reads to end"
                        let outcomes = Array.zeroCreate reads.Length

                        for i in 0 .. reads.Length - 1 do
                            let! thrown = thrownByTask (fun () -> reads[i])
                            outcomes[i] <- thrown

                        return n, back, outcomes
                    })

            let result =
                try
                    Ok(run ())
                with e ->
                    Error e

            match result with
            | Error e -> failtestf "the shard did not get past: %s (%s: %s)" progress.Step (e.GetType().Name) e.Message
            | Ok(n, back, outcomes) ->
                Expect.equal n 3 "the regular file's read"
                Expect.sequenceEqual back [| 1uy; 2uy; 3uy |] "the regular file's bytes"

                outcomes
                |> Array.iteri (fun i thrown ->
                    Expect.isTrue
                        (endedByDisposeOrCancel thrown)
                        $"read %d{i} after DisposeAsync should end canceled or disposed, but %s{describe thrown}"))

// ---- 2 ----------------------------------------------------------------------------------------------------------

/// Defect: canceling an operation that waits in the backlog searches the backlog (a linear scan per cancel), so
/// canceling N backlogged reads costs O(N²): 80k reads on a 256-entry ring took ~35 s of a pinned CPU to cancel,
/// during which the shard ran nothing else. The 20 s bound is a hang guard, not a timing assertion: the fixed
/// runtime cancels them in well under a second. Reads on a FIFO may wait indefinitely, so they hold no
/// completion-queue room; what sends them to the backlog now is the bound on such operations (64 × the CQ: 65,536
/// on a 2-entry ring, whose CQ has 1024 entries), so 100k are started there.
let private backlogCancel =
    testCase "100k reads, 34k of them waiting in the backlog, cancel without stalling the shard (hang guard 20 s)"
    <| fun () ->
        withTempDir (fun dir ->
            let fifo = Path.Combine(dir, "fifo")
            Libc.makeFifo fifo
            let count = 100_000

            let canceled, other =
                runBoundedWith
                    "the shard canceling 100k reads, 34k of them backlogged"
                    (TimeSpan.FromSeconds 20.0)
                    (ShardOptions(RingEntries = 2))
                    (fun () ->
                        task {
                            let! file = BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)
                            use cts = new CancellationTokenSource()

                            let reads =
                                Array.init count (fun _ ->
                                    file.ReadAtAsync(Memory(Array.zeroCreate<byte> 1), 0L, cts.Token).AsTask())

                            do! Shard.Yield()
                            cts.Cancel()
                            let mutable canceled = 0

                            for read in reads do
                                let! thrown = thrownByTask (fun () -> read)

                                match thrown with
                                | Some(:? OperationCanceledException) -> canceled <- canceled + 1
                                | _ -> ()

                            do! file.DisposeAsync()
                            return canceled, Shard.Stats.Main.Backlogged
                        })

            Expect.equal canceled count "every read ended canceled"
            // On epoll there is no ring to back up: the reads wait for the FIFO's readiness, and canceling them is
            // the case under test.
            if not onEpoll then
                Expect.isGreaterThanOrEqual
                    other
                    34_000L
                    "the reads past the bound waited in the backlog (the case under test)")

// ---- 3 ----------------------------------------------------------------------------------------------------------

/// Defect: Shard.Sleep(TimeSpan.MaxValue) (and a 300-year sleep) completed at once — the deadline overflowed
/// into the past; and Latency.Matters(TimeSpan.MaxValue) silently made a NotImportant class (the budget in ns
/// overflowed to a negative number).
let private hugeDurations =
    testCase
        "Sleep(TimeSpan.MaxValue) and a 300-year Sleep wait (until canceled); Latency.Matters(MaxValue) is latency-sensitive"
    <| fun () ->
        let results =
            runShard (fun () ->
                task {
                    use cts = new CancellationTokenSource()

                    let start (delay: TimeSpan) =
                        try
                            Shard.Sleep(delay, cts.Token).AsTask()
                        with e ->
                            Task.FromException e

                    let sleeps =
                        [
                            "TimeSpan.MaxValue", start TimeSpan.MaxValue
                            "300 years", start (TimeSpan.FromDays(365.0 * 300.0))
                        ]

                    // Let the shard run other work: loop turns and short timers that fire.
                    for _ in 1..3 do
                        do! Shard.Yield()
                        do! Shard.Sleep(TimeSpan.FromMilliseconds 1.0)

                    let stillWaiting =
                        [
                            for name, s in sleeps ->
                                name, s.IsCompleted, (if s.IsFaulted then string s.Exception else "")
                        ]

                    cts.Cancel()
                    let outcomes = ResizeArray()

                    for name, s in sleeps do
                        let! thrown = thrownByTask (fun () -> task { do! s })
                        outcomes.Add(name, thrown)

                    return stillWaiting, List.ofSeq outcomes
                })

        let stillWaiting, outcomes = results

        for name, completed, error in stillWaiting do
            Expect.isFalse
                completed
                $"Sleep(%s{name}) completed before it was canceled, while the shard ran other work %s{error}"

        for name, thrown in outcomes do
            expectExn<OperationCanceledException> $"Sleep(%s{name}) canceled" thrown
            |> ignore

        match thrownBy (fun () -> Latency.Matters TimeSpan.MaxValue) with
        | Some(:? ArgumentOutOfRangeException) -> () // refusing the budget is acceptable too
        | Some e -> failtestf "Latency.Matters(MaxValue) threw %s: %s" (e.GetType().Name) e.Message
        | None ->
            let latency = Latency.Matters TimeSpan.MaxValue

            Expect.isTrue
                latency.IsLatencySensitive
                $"Latency.Matters(TimeSpan.MaxValue) is latency-sensitive (it is {latency})"

// ---- 4 ----------------------------------------------------------------------------------------------------------

/// Defect: TaskQueueStats.MaxQueueDelay counted the time the shard was parked. The run loop stamps "became
/// runnable" with its latest clock reading, taken before it parked, and completions reaped and posts drained just
/// after the park are stamped with it: a queue woken by a foreign timer (Task.Delay posts back through the inbox)
/// after a 300 ms park reported ~300 ms of "queue delay", though it ran at once. Shard.Sleep's own timer is stamped
/// after the clock is read again (it passes today) and is kept as the control. The bound (100 ms) is the
/// scheduler's own accounting, three orders of magnitude above the expected ~0.1 ms, and far below the park.
let private queueDelayExcludesPark =
    testCase "MaxQueueDelay does not count the time the shard was parked"
    <| fun () ->
        let shardTimer, foreignTimer, parks =
            runShardWith (ShardOptions(Placement = Placement.Fixed 0)) (fun () ->
                task {
                    let onShard =
                        Shard.CreateTaskQueue("shard-timer", Shares.Static 100, Latency.NotImportant)

                    let foreign =
                        Shard.CreateTaskQueue("foreign-timer", Shares.Static 100, Latency.NotImportant)

                    let parksBefore = Shard.Stats.Parks
                    // Nothing else runs while each queue sleeps: the shard parks until the timer fires. Task.Delay is
                    // the subject here (a wake-up from another thread), not a synchronization.
                    do! spawnInto onShard (fun () -> task { do! Shard.Sleep(TimeSpan.FromMilliseconds 300.0) })
                    do! spawnInto foreign (fun () -> task { do! Task.Delay 300 })
                    return onShard.Stats.MaxQueueDelay, foreign.Stats.MaxQueueDelay, Shard.Stats.Parks - parksBefore
                })

        Expect.isGreaterThan parks 0L "the shard parked while the queues slept (the case under test)"
        let bound = TimeSpan.FromMilliseconds 100.0

        Expect.isLessThan
            shardTimer
            bound
            "MaxQueueDelay of a queue woken by Shard.Sleep counts waiting while runnable, not the park"

        Expect.isLessThan
            foreignTimer
            bound
            "MaxQueueDelay of a queue woken by a foreign Task.Delay counts waiting while runnable, not the park"

// ---- 5 ----------------------------------------------------------------------------------------------------------

/// Defect: a canceled timer stayed in the timer heap, so a lone queue still "had a timer pending" and kept arming
/// the preemption timer: a lone CPU loop after canceling a 1-hour Sleep was preempted 43–82 times per 100 ms,
/// for nothing (nobody else could run). The loop runs ~100 ms by its own clock; the assertion is a count.
/// (It flaked once at 1 on the epoll backend: the slice's timer, armed before the cancel, fired in the loop.)
let private canceledTimerNoPreemption =
    testCase "after a long Sleep is canceled, a lone CPU loop is not preempted"
    <| fun () ->
        let preemptions, turns =
            runShardWith (ShardOptions(Placement = Placement.Fixed 0)) (fun () ->
                task {
                    use cts = new CancellationTokenSource()
                    let sleep = Shard.Sleep(TimeSpan.FromHours 1.0, cts.Token).AsTask()
                    cts.Cancel()
                    let! thrown = thrownByTask (fun () -> task { do! sleep })
                    expectExn<OperationCanceledException> "the canceled Sleep" thrown |> ignore
                    // A few loop turns reap whatever the cancel left in the rings.
                    for _ in 1..3 do
                        do! Shard.Yield()

                    let before = Shard.Stats.Preemptions
                    let until = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 10L
                    let mutable turns = 0L

                    while Stopwatch.GetTimestamp() < until do
                        turns <- turns + 1L
                        do! Shard.YieldIfNeeded()

                    return Shard.Stats.Preemptions - before, turns
                })

        Expect.isGreaterThan turns 0L "the loop ran"
        // The preemption timer armed while the Sleep was pending (one slice from the run's start) is not taken
        // back on cancel: it may still fire once, in the loop if what came before took less than a slice (a warm
        // JIT). The defect was the re-arming after that: tens of preemptions.
        Expect.isLessThanOrEqual
            preemptions
            1L
            "preemptions of a lone queue with no timer, I/O or other queue pending (the one already armed aside)"

// ---- 6 ----------------------------------------------------------------------------------------------------------

/// Defect: when a shard stops, the Tasks of spawned work it abandons stayed pending forever, so a caller off the
/// shard that awaits one (returned out of Shard.Run) hangs. They must end canceled.
let private abandonedWorkCanceled =
    testCase "Tasks of spawned work abandoned when the shard stops end canceled"
    <| fun () ->
        let sleeping, waiting =
            runShard (fun () ->
                task {
                    let sleeping =
                        spawn (fun () ->
                            task {
                                do! Shard.Sleep(Timeout.InfiniteTimeSpan)
                                return 1
                            })

                    let never = TaskCompletionSource<int>()
                    let waiting = spawn (fun () -> task { return! never.Task })
                    do! Shard.Yield()
                    return sleeping, waiting
                })

        for name, (t: Task<int>) in
            [
                "awaiting Sleep(Infinite)", sleeping
                "awaiting a TaskCompletionSource", waiting
            ] do
            let ended =
                try
                    t.Wait(TimeSpan.FromSeconds 5.0)
                with :? AggregateException ->
                    true

            Expect.isTrue ended $"the abandoned work %s{name} ended after Shard.Run returned (it is {t.Status})"
            Expect.isTrue t.IsCanceled $"the abandoned work %s{name} ended canceled (it is {t.Status})"

            expectExn<TaskCanceledException>
                $"awaiting the abandoned work %s{name}"
                (thrownBy (fun () -> t.GetAwaiter().GetResult()))
            |> ignore

// ---- 7 ----------------------------------------------------------------------------------------------------------

/// Defect: BufferedFile.DisposeAsync closed the fd but left reads in flight: the kernel holds the file open for
/// them, so the read stayed pending after DisposeAsync, and a later write to the FIFO from another handle
/// completed it with data — data delivered to a disposed file's reader and lost to the new one.
let private disposeEndsPendingRead =
    testCase "DisposeAsync ends a pending read; a later write to the FIFO does not complete it with data"
    <| fun () ->
        withTempDir (fun dir ->
            let fifo = Path.Combine(dir, "fifo")
            Libc.makeFifo fifo

            let endedAfterDispose, outcome, wrote =
                runBoundedWith "the shard" (TimeSpan.FromSeconds 20.0) (ShardOptions()) (fun () ->
                    task {
                        let! file = BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)
                        let buffer = Array.zeroCreate<byte> 16
                        let read = file.ReadAtAsync(Memory buffer, 0L).AsTask()
                        do! Shard.Yield()
                        do! file.DisposeAsync()
                        // Hang guard only: the fixed runtime ends the read within DisposeAsync.
                        let! ended = finishesWithin (TimeSpan.FromSeconds 3.0) read
                        // A writer from another handle; O_NONBLOCK fails with ENXIO when nobody reads any more.
                        let w = openFd (fifo, O_WRONLY ||| O_NONBLOCK, 0)

                        let wrote =
                            if w >= 0 then
                                let n = writeFd (w, [| 7uy; 7uy; 7uy |], 3un)
                                closeFd w |> ignore
                                int n
                            else
                                0

                        let! finished = finishesWithin (TimeSpan.FromSeconds 5.0) read

                        let! outcome =
                            if finished then
                                task {
                                    try
                                        let! n = read
                                        return Ok n
                                    with e ->
                                        return Error e
                                }
                            else
                                Task.FromResult(Error(TimeoutException "still pending" :> exn))

                        return ended, outcome, wrote
                    })

            match outcome with
            | Ok n ->
                failtestf
                    "the read of a disposed file completed with %d bytes of a later writer's data (wrote %d)"
                    n
                    wrote
            | Error e ->
                Expect.isTrue
                    (endedByDisposeOrCancel (Some e))
                    $"the read ends canceled or disposed, not {e.GetType().Name}: {e.Message}"

            Expect.isTrue endedAfterDispose "the pending read ended when the file was disposed")

// ---- 8 ----------------------------------------------------------------------------------------------------------

/// Defect: BufferedFile.OpenAsync of a directory succeeded (openat O_RDONLY opens a directory); File.Open throws
/// UnauthorizedAccessException there, and so must OpenAsync, also for read-write.
let private openDirectory =
    testCase "BufferedFile.OpenAsync of a directory throws UnauthorizedAccessException (read-only and read-write)"
    <| fun () ->
        withTempDir (fun dir ->
            let tryOpen (f: unit -> ValueTask<BufferedFile>) =
                task {
                    try
                        let! file = f ()
                        do! file.DisposeAsync()
                        return None
                    with e ->
                        return Some e
                }

            let readOnly, readWrite =
                runShard (fun () ->
                    task {
                        let! readOnly = tryOpen (fun () -> BufferedFile.OpenAsync dir)

                        let! readWrite =
                            tryOpen (fun () -> BufferedFile.OpenAsync(dir, FileMode.Open, FileAccess.ReadWrite))

                        return readOnly, readWrite
                    })

            let asFileOpen =
                thrownBy (fun () -> File.Open(dir, FileMode.Open, FileAccess.Read).Dispose())

            expectExn<UnauthorizedAccessException> "File.Open of a directory (the reference)" asFileOpen
            |> ignore

            expectExn<UnauthorizedAccessException> "BufferedFile.OpenAsync(directory)" readOnly
            |> ignore

            expectExn<UnauthorizedAccessException> "BufferedFile.OpenAsync(directory, Open, ReadWrite)" readWrite
            |> ignore)

// ---- 9 ----------------------------------------------------------------------------------------------------------

/// Good shares for its first calls, then throws: a user's controller that fails.
type private FailingController() =
    let mutable calls = 0
    member _.Calls = calls

    interface ISharesController with
        member _.Shares =
            calls <- calls + 1

            if calls <= 2 then
                200
            else
                raise (InvalidOperationException "the user's shares controller failed")

/// Defect: an ISharesController whose Shares getter throws stopped the whole shard (the exception escaped the
/// scheduler). Decided: the exception is contained, the queue keeps its last good shares, the shard runs on and
/// Shard.Run returns main's result.
let private throwingController =
    testCase "a Shares controller that throws does not stop the shard"
    <| fun () ->
        let controller = FailingController()

        let result =
            try
                Ok(
                    runShard (fun () ->
                        task {
                            let dynamic =
                                Shard.CreateTaskQueue("dynamic", Shares.Dynamic controller, Latency.NotImportant)

                            let other = Shard.CreateTaskQueue("other", Shares.Static 100, Latency.NotImportant)

                            let work () =
                                task {
                                    for _ in 1..50 do
                                        do! Shard.Yield()

                                    return 1
                                }

                            let a = spawnInto dynamic work
                            let b = spawnInto other work
                            let! a = a
                            let! b = b
                            return a + b
                        })
                )
            with e ->
                Error e

        match result with
        | Error e -> failtestf "the shard stopped: %s: %s" (e.GetType().Name) e.Message
        | Ok n -> Expect.equal n 2 "main's result, after both queues finished their work"

        Expect.isGreaterThan
            controller.Calls
            2
            "the controller was asked after it started throwing (the case under test)"

// ---- 10 ---------------------------------------------------------------------------------------------------------

/// Defect: TaskQueue.Send called on a shard for a queue of another shard blocked the calling shard until the
/// other ran the callback: two shards Send-ing to each other deadlock, and any Send stalls every queue of the
/// caller. On a shard it must throw InvalidOperationException saying to Post (and await) instead.
let private sendAcrossShards =
    testCase "TaskQueue.Send from a shard to another shard's queue throws InvalidOperationException"
    <| fun () ->
        let queueOfB = TaskCompletionSource<TaskQueue>()
        let stopB = TaskCompletionSource()

        let b =
            Shard.Start(
                Func<Task<int>>(fun () ->
                    task {
                        queueOfB.SetResult Shard.CurrentTaskQueue
                        do! stopB.Task
                        return 0
                    }),
                ShardOptions(Placement = Placement.Fixed 1)
            )

        let onB = awaitBounded "shard B's start" shardTimeout queueOfB.Task

        let thrown =
            try
                runShardWith (ShardOptions(Placement = Placement.Fixed 0)) (fun () ->
                    task { return thrownBy (fun () -> onB.Send((fun _ -> ()), null)) })
            finally
                stopB.TrySetResult() |> ignore
                awaitBounded "shard B" shardTimeout b.Completion |> ignore

        let e =
            expectExn<InvalidOperationException> "Send from shard A to a queue of shard B" thrown

        Expect.stringContains e.Message "Post" "the message says to Post (and await) instead"

// ---- 11 ---------------------------------------------------------------------------------------------------------

/// Defect: the shard's pools (timer operations, cancellation registrations, heap arrays) grew to their peak and never
/// shrank: after 100k concurrent Sleeps were canceled and the shard went idle, managed memory stayed retained for
/// good (~66 MB in the first report; 17.7 MB measured by this test here). Bound: less than 10 MB above the baseline
/// once idle.
let private poolsShrink =
    testCase "after 100k canceled Sleeps and an idle shard, retained managed memory falls back near the baseline"
    <| fun () ->
        let baseline, after, parks =
            runShardWith (ShardOptions(Placement = Placement.Fixed 0)) (fun () ->
                task {
                    let count = 100_000
                    let baseline = GC.GetTotalMemory true
                    let mutable sources = Array.init count (fun _ -> new CancellationTokenSource())

                    let mutable sleeps =
                        sources
                        |> Array.map (fun cts -> Shard.Sleep(TimeSpan.FromHours 1.0, cts.Token).AsTask())

                    for cts in sources do
                        cts.Cancel()

                    for s in sleeps do
                        let! _ = thrownByTask (fun () -> task { do! s })
                        ()

                    for cts in sources do
                        cts.Dispose()

                    sources <- [||]
                    sleeps <- [||]
                    // Let the shard go idle: loop until it has parked (a short timer lets it park; the loop waits for
                    // the count, bounded by the shard's hang guard).
                    let parksBefore = Shard.Stats.Parks

                    while Shard.Stats.Parks < parksBefore + 2L do
                        do! Shard.Sleep(TimeSpan.FromMilliseconds 1.0)

                    let after = GC.GetTotalMemory true
                    return baseline, after, Shard.Stats.Parks - parksBefore
                })

        let retainedMb = float (after - baseline) / 1048576.0
        Expect.isGreaterThan parks 0L "the shard went idle"

        Expect.isLessThan
            retainedMb
            10.0
            $"managed memory retained after the 100k cycle, MB (baseline {baseline / 1048576L} MB)"

// ---- 12 ---------------------------------------------------------------------------------------------------------

/// Regression guard (wake after close; passes on the code it was written against — no failure could be provoked
/// here): threads keep posting to a shard's queue while it stops. A post that
/// arrives after the shard closed its rings and eventfd must not crash, must not throw anything but
/// InvalidOperationException (posting to a stopped shard), and must not write its 8-byte wake-up to a closed fd
/// that a file opened right after the stop has reused.
let private wakeAfterClose =
    testCase "posts racing the shard's stop: no crash, no write to a reused fd"
    <| fun () ->
        withTempDir (fun dir ->
            let posters = 4
            let postsAfterStop = 200_000
            let queueReady = TaskCompletionSource<TaskQueue>()
            let received = ref 0L
            let posted = ref 0L
            let stopped = new ManualResetEventSlim(false)
            let errors = Collections.Concurrent.ConcurrentQueue<exn>()

            let shard =
                Shard.Start(
                    Func<Task<int>>(fun () ->
                        task {
                            queueReady.SetResult Shard.CurrentTaskQueue

                            // Run until the posters are busy, then stop with posts still arriving.
                            while Interlocked.Read &received.contents < 10_000L do
                                do! Shard.Yield()

                            return 0
                        })
                )

            let queue = awaitBounded "the shard's start" shardTimeout queueReady.Task

            let threads =
                Array.init posters (fun i ->
                    Thread(
                        (fun () ->
                            let callback =
                                SendOrPostCallback(fun _ -> Interlocked.Increment &received.contents |> ignore)

                            let mutable after = 0

                            while after < postsAfterStop do
                                // At most ~1k posts outstanding while the shard runs: four threads posting flat out
                                // outrun its inbox drain, which then never ends (a separate finding).
                                while not stopped.IsSet
                                      && Interlocked.Read &posted.contents - Interlocked.Read &received.contents >
                                          1024L do
                                    Thread.Yield() |> ignore

                                Interlocked.Increment &posted.contents |> ignore

                                try
                                    queue.Post(callback, null)
                                with
                                | :? InvalidOperationException -> ()
                                | e -> errors.Enqueue e

                                if stopped.IsSet then
                                    after <- after + 1),
                        IsBackground = true,
                        Name = $"poster {i}"
                    ))

            for t in threads do
                t.Start()

            awaitBounded "the shard" shardTimeout shard.Completion |> ignore
            // Files opened right after the stop take the lowest free fds: those the shard just closed.
            let files =
                Array.init 8 (fun i ->
                    new FileStream(
                        Path.Combine(dir, $"after-{i}.bin"),
                        FileMode.Create,
                        FileAccess.ReadWrite,
                        FileShare.ReadWrite,
                        1
                    ))

            try
                stopped.Set()

                for t in threads do
                    if not (t.Join shardTimeout) then
                        failtestf "poster %s did not finish" t.Name

                for e in errors do
                    failtestf "a post racing the stop threw %s: %s" (e.GetType().Name) e.Message

                for f in files do
                    Expect.equal
                        (FileInfo(f.Name).Length)
                        0L
                        $"{f.Name}, opened after the stop, was not written by a late wake-up"
            finally
                for f in files do
                    f.Dispose())

// ---- 13 ---------------------------------------------------------------------------------------------------------

/// Defect (found writing test 12): work posted from another thread raised NeedPreempt and ended the running
/// queue's run at once, so threads posting steadily cut every run short — one item per loop turn, a queue's slice
/// worth nothing. Posted work now joins its queue like a completion and gets the CPU when the scheduler says (here
/// at the hog's slice end: the preemption timer is armed as soon as the post makes another queue runnable). 100k
/// posts to a second queue while a hog runs in the first: all are run, and the hog is preempted about once per
/// slice (1 ms), not once per post.
let private postsDoNotCutRuns =
    testCase "posts from other threads join their queue without cutting the running queue's run each time"
    <| fun () ->
        let posts = 100_000L
        let ready = TaskCompletionSource<TaskQueue>()
        let received = ref 0L
        let posted = ref 0L

        let shard =
            Shard.Start(
                Func<Task<int64 * int64>>(fun () ->
                    task {
                        let inbox = Shard.CreateTaskQueue("inbox", Shares.Static 100, Latency.NotImportant)
                        let before = Shard.Stats.Preemptions
                        let started = Diagnostics.Stopwatch.StartNew()
                        ready.SetResult inbox

                        // The hog: runs until every post has run, yielding only when the shard says so.
                        while Interlocked.Read &received.contents < posts do
                            do! Shard.YieldIfNeeded()

                        return Shard.Stats.Preemptions - before, started.ElapsedMilliseconds
                    })
            )

        let inbox = awaitBounded "the shard's start" shardTimeout ready.Task

        let callback =
            SendOrPostCallback(fun _ -> Interlocked.Increment &received.contents |> ignore)

        let poster =
            Thread(
                (fun () ->
                    while Interlocked.Read &posted.contents < posts do
                        // At most 1024 outstanding: the test is about scheduling, not an unbounded inbox.
                        if Interlocked.Read &posted.contents - Interlocked.Read &received.contents < 1024L then
                            Interlocked.Increment &posted.contents |> ignore
                            inbox.Post(callback, null)
                        else
                            Thread.Yield() |> ignore),
                IsBackground = true,
                Name = "poster"
            )

        poster.Start()
        let preemptions, elapsedMs = awaitBounded "the shard" shardTimeout shard.Completion
        poster.Join shardTimeout |> ignore
        // About one preemption per 1 ms slice; a bound ten times that plus slack leaves room for a noisy machine
        // and is still far below one per post.
        Expect.isLessThan
            preemptions
            (10L * elapsedMs + 1000L)
            $"preemptions of the hog over {elapsedMs} ms and {posts} posts"

let tests =
    testSequenced
    <| testList
        "defects"
        [
            backlogBlocksOtherIo
            backlogCancel
            hugeDurations
            queueDelayExcludesPark
            canceledTimerNoPreemption
            abandonedWorkCanceled
            disposeEndsPendingRead
            openDirectory
            throwingController
            sendAcrossShards
            poolsShrink
            wakeAfterClose
            postsDoNotCutRuns
        ]

/// Operations that stay in flight in the kernel (reads of a FIFO nobody writes to; an open cannot be made to block,
/// since io_uring's first, non-blocking openat attempt opens a FIFO without waiting for a writer): canceling them
/// from the shard or from another thread ends them with OperationCanceledException, promptly; the shard works on;
/// a shard whose main returns with one still in flight shuts down.
module Scipio.Integration.Tests.InFlightTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.IO
open Scipio.Integration.Tests.Helpers

let private promptly = TimeSpan.FromSeconds 5.0

/// On a shard: opens `fifo` read-write (which does not block), starts a read that only a writer could complete,
/// lets `cancel` cancel it; returns what the read threw, how long it took, and whether the shard still does I/O.
let private cancelRead (fifo: string) (check: string) (cancel: CancellationTokenSource -> unit) =
    task {
        let! file = BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)
        use cts = new CancellationTokenSource()
        let buffer = Array.zeroCreate<byte> 64
        let started = Stopwatch.GetTimestamp()

        let! thrown =
            thrownByTask (fun () ->
                task {
                    let reading = file.ReadAtAsync(Memory buffer, 0L, cts.Token)
                    cancel cts
                    return! reading
                })

        let elapsed = Stopwatch.GetElapsedTime started
        do! file.DisposeAsync()
        // The next operation works: a regular file round-trips.
        let! other = BufferedFile.CreateAsync check
        do! other.WriteAtAsync(ReadOnlyMemory [| 1uy; 2uy; 3uy |], 0L)
        let back = Array.zeroCreate 3
        let! n = other.ReadAtAsync(Memory back, 0L)
        do! other.DisposeAsync()
        return thrown, elapsed, (n = 3 && back = [| 1uy; 2uy; 3uy |]), Shard.Stats.Main.InFlight
    }

let private canceledRead (how: string) (cancel: CancellationTokenSource -> unit) =
    test $"a read in flight canceled %s{how}: OperationCanceledException, promptly; the shard does I/O afterwards" {
        withTempDir (fun dir ->
            let fifo = Path.Combine(dir, "fifo")
            Libc.makeFifo fifo

            let thrown, elapsed, worksAfter, inFlight =
                runShard (fun () -> cancelRead fifo (Path.Combine(dir, "check.bin")) cancel)

            let e = expectExn<OperationCanceledException> $"ReadAtAsync canceled %s{how}" thrown
            Expect.isTrue e.CancellationToken.IsCancellationRequested "the exception carries the canceled token"
            Expect.isLessThan elapsed promptly "the canceled read should end promptly"
            Expect.isTrue worksAfter "after the cancellation a file round-trips on the same shard"

            Expect.isLessThanOrEqual
                inFlight
                2
                "nothing but the shard's own wake-up read and latency-ring poll is left in flight")
    }

let private shutdownWithReadInFlight =
    test "main returns while a spawned read waits on a FIFO: the shard still shuts down" {
        withTempDir (fun dir ->
            let fifo = Path.Combine(dir, "fifo")
            Libc.makeFifo fifo
            let started = Stopwatch.GetTimestamp()

            let result =
                runShard (fun () ->
                    task {
                        let! file = BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)

                        let _reader =
                            spawn (fun () -> task { return! file.ReadAtAsync(Memory(Array.zeroCreate 16), 0L) })

                        do! Shard.Yield() // let the reader submit
                        return 17
                    })

            Expect.equal result 17 "main's result"
            Expect.isLessThan (Stopwatch.GetElapsedTime started) promptly "shutting down with a read in flight")
    }

let private completedByWriter =
    test "a read waiting on a FIFO completes with the bytes another thread writes" {
        withTempDir (fun dir ->
            let fifo = Path.Combine(dir, "fifo")
            Libc.makeFifo fifo

            let n, bytes =
                runShard (fun () ->
                    task {
                        let! file = BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)
                        let buffer = Array.zeroCreate<byte> 16
                        let reading = file.ReadAtAsync(Memory buffer, 0L)

                        Thread(
                            (fun () ->
                                use w = new FileStream(fifo, FileMode.Open, FileAccess.Write)
                                w.Write([| 9uy; 8uy; 7uy |], 0, 3)),
                            IsBackground = true
                        )
                            .Start()

                        let! n = reading
                        do! file.DisposeAsync()
                        return n, buffer[.. n - 1]
                    })

            Expect.equal n 3 "bytes read"
            Expect.equal bytes [| 9uy; 8uy; 7uy |] "the bytes the other thread wrote")
    }

/// Runs `main` on a shard with the given options, failing with `what` if it has not finished within `bound`.
let private runBounded (what: string) (bound: TimeSpan) (options: ShardOptions) (main: unit -> Task<'T>) =
    Shard.Start(Func<Task<'T>>(main), options).Completion |> awaitBounded what bound

/// Starts `count` reads of `fifo` (opened read-write, so nobody else writes: they never complete on their own).
let private pendingReads (file: BufferedFile) (count: int) (token: CancellationToken) =
    Array.init count (fun _ ->
        spawn (fun () -> task { return! file.ReadAtAsync(Memory(Array.zeroCreate 16), 0L, token) }))

/// Regression: cancels used to wait for CQ room that only completions could free, and with the ring full of reads
/// that complete only on an outside event (a FIFO, later an idle socket) nothing completed: the shard parked for
/// good. The core's RingBook now keeps half the CQ for the shard's own operations (cancels, the wake-up read).
let private cancelWithFullRing =
    testCase "with more reads in flight than a small ring holds, canceling them all ends every one"
    <| fun () ->
        withTempDir (fun dir ->
            let fifo = Path.Combine(dir, "fifo")
            Libc.makeFifo fifo

            let outcomes =
                runBounded
                    "the shard canceling 8 reads on a 2-entry ring"
                    (TimeSpan.FromSeconds 10.0)
                    (ShardOptions(RingEntries = 2))
                    (fun () ->
                        task {
                            let! file = BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)
                            use cts = new CancellationTokenSource()
                            let readers = pendingReads file 8 cts.Token
                            do! Shard.Yield() // let the readers submit (some into the backlog)
                            cts.Cancel()
                            let outcomes = Array.zeroCreate readers.Length

                            for i in 0 .. readers.Length - 1 do
                                let! thrown = thrownByTask (fun () -> readers[i])
                                outcomes[i] <- thrown

                            do! file.DisposeAsync()
                            return outcomes
                        })

            outcomes
            |> Array.iteri (fun i thrown ->
                expectExn<OperationCanceledException> $"read %d{i} of 8 after the cancel" thrown
                |> ignore))

/// Regression: a shard whose ring was full could not be woken from another thread — the eventfd read was left
/// unarmed for lack of CQ room — so a post from the timer thread wrote an eventfd nobody read. With the default 256
/// entries that was 512 idle reads: a server's idle connections. Fixed with the same reserved room.
let private wakeWithFullRing =
    testCase "with the ring full of reads that never complete, a foreign Task still wakes the shard"
    <| fun () ->
        withTempDir (fun dir ->
            let fifo = Path.Combine(dir, "fifo")
            Libc.makeFifo fifo

            let resumedOnShard =
                runBounded
                    "the shard awaiting a foreign Task beside 8 pending reads on a 2-entry ring"
                    (TimeSpan.FromSeconds 10.0)
                    (ShardOptions(RingEntries = 2))
                    (fun () ->
                        task {
                            let! file = BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)
                            use cts = new CancellationTokenSource()
                            let readers = pendingReads file 8 cts.Token
                            do! Shard.Yield()
                            // A foreign Task, completed from another thread once the shard has parked (its thread
                            // blocked in io_uring_enter): only that thread's post can wake it.
                            let tid = Libc.gettid ()

                            let foreign =
                                Task.Run(fun () -> Libc.waitUntilParked "the shard with a full ring" tid)

                            do! foreign
                            let resumed = Shard.IsOnShard
                            cts.Cancel()

                            for reader in readers do
                                let! _ = thrownByTask (fun () -> reader)
                                ()

                            do! file.DisposeAsync()
                            return resumed
                        })

            Expect.isTrue resumedOnShard "resumed on the shard after the foreign Task")

let tests =
    testSequenced
    <| testList
        "in flight"
        [
            canceledRead "from the shard" (fun cts -> cts.Cancel())
            canceledRead "by CancelAfter (timer thread)" (fun cts -> cts.CancelAfter 20)
            canceledRead "from a plain Thread" (fun cts ->
                Thread((fun () -> cts.Cancel()), IsBackground = true).Start())
            shutdownWithReadInFlight
            completedByWriter
            cancelWithFullRing
            wakeWithFullRing
        ]

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
            Expect.isLessThanOrEqual inFlight 1 "nothing but the wake-up read is left in flight")
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

let tests =
    testSequenced
    <| testList "in flight" [
        canceledRead "from the shard" (fun cts -> cts.Cancel())
        canceledRead "by CancelAfter (timer thread)" (fun cts -> cts.CancelAfter 20)
        canceledRead "from a plain Thread" (fun cts -> Thread((fun () -> cts.Cancel()), IsBackground = true).Start())
        shutdownWithReadInFlight
        completedByWriter
    ]

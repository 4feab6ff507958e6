#nowarn "9" // native pointers: the aligned O_DIRECT buffer

/// The three rings of a shard on the real kernel: latency-sensitive I/O on the latency ring preempts hogs, a parked
/// shard wakes for it, O_DIRECT I/O is routed to the poll ring or falls back from it, blocking work runs off-shard.
module Scipio.Integration.Tests.ThreeRingTests

open System
open System.Diagnostics
open System.IO
open System.Runtime.InteropServices
open System.Threading
open System.Threading.Tasks
open Microsoft.FSharp.NativeInterop
open Expecto
open Scipio
open Scipio.IO
open Scipio.Integration.Tests.Helpers

[<DllImport("libc", SetLastError = true)>]
extern int ``open``(string path, int flags, int mode)

[<DllImport("libc", SetLastError = true)>]
extern int close(int fd)

let private ODirect = 0x4000

/// Iterations of a hog's slice: it yields by itself (Shard.Yield) after this many, whatever the clock says, so its
/// slices are counted in its own work rather than in time (a few ms here: the 20 rounds take well under the 1 s
/// preempt interval, which therefore never ends a slice).
let private sliceIterations = 1L <<< 22

/// Two hog queues run on CPU 0 while a third queue, of `latency`, reads `rounds` single bytes from a FIFO that a
/// helper thread writes to, one at a time, while the hogs run. The hogs end their slices only by themselves (every
/// `sliceIterations`, counted in `slicesEnded`; the preempt interval is the maximum, 1 s, so it does not end them)
/// or when NeedPreempt cuts them. For each round: the number of hog slices that had ended when the byte was written
/// and when the reader ran. Also the shard's preemptions during the rounds and its stats.
let private slicesUnderHogs (dir: string) (latency: Latency) (rounds: int) =
    let fifo = Path.Combine(dir, "fifo")
    Libc.makeFifo fifo
    let slicesEnded = ref 0L
    // Bumped by the hogs every 1024 iterations: a hog is running.
    let hogProgress = ref 0L
    let written = Array.zeroCreate<int64> rounds
    // Released by the reader once its read is issued; the writer then writes one byte while the hogs run.
    use readIssued = new SemaphoreSlim(0)
    let writerFailed = TaskCompletionSource()

    let writer =
        Thread(
            (fun () ->
                try
                    let mutable stream: FileStream | null = null

                    for round in 0 .. rounds - 1 do
                        if not (readIssued.Wait shardTimeout) then
                            failwith $"the reader did not issue read {round}"

                        if isNull stream then
                            stream <- new FileStream(fifo, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1)

                        // Write while a hog runs: once the hogs' progress moves, the reader's run has ended and its
                        // read was submitted (the shard submits before it picks the next queue).
                        let progressAtRelease = Volatile.Read &hogProgress.contents

                        let until =
                            Stopwatch.GetTimestamp() + int64 shardTimeout.TotalSeconds * Stopwatch.Frequency

                        while Volatile.Read &hogProgress.contents = progressAtRelease do
                            if Stopwatch.GetTimestamp() > until then
                                failwith "the hogs made no progress"

                            Thread.Yield() |> ignore

                        written[round] <- Volatile.Read &slicesEnded.contents

                        match stream with
                        | null -> ()
                        | w ->
                            w.Write([| byte round |], 0, 1)
                            w.Flush()

                    match stream with
                    | null -> ()
                    | w -> w.Dispose()
                with e ->
                    writerFailed.TrySetException e |> ignore),
            IsBackground = true,
            Name = "fifo writer"
        )

    let ran, preemptions, stats =
        runShardWith
            (ShardOptions(Placement = Placement.Fixed 0, PreemptInterval = TimeSpan.FromSeconds 1.0))
            (fun () ->
                task {
                    let stop = { IsSet = false }

                    let hog () =
                        task {
                            let mutable n = 0L

                            while not stop.IsSet do
                                n <- n + 1L

                                if n &&& (sliceIterations - 1L) = 0L then
                                    Interlocked.Increment &slicesEnded.contents |> ignore
                                    do! Shard.Yield()
                                elif n &&& 1023L = 0L then
                                    Volatile.Write(&hogProgress.contents, hogProgress.Value + 1L)
                                    do! Shard.YieldIfNeeded()

                            return n
                        }

                    let h1 =
                        spawnInto (Shard.CreateTaskQueue("hog1", Shares.Static 100, Latency.NotImportant)) hog

                    let h2 =
                        spawnInto (Shard.CreateTaskQueue("hog2", Shares.Static 100, Latency.NotImportant)) hog

                    let reader = Shard.CreateTaskQueue("reader", Shares.Static 100, latency)
                    // Read-write, so opening does not wait for the writer.
                    let! file = BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)
                    writer.Start()
                    let preemptionsBefore = Shard.Stats.Preemptions

                    let! ran =
                        spawnInto reader (fun () ->
                            task {
                                let ran = Array.zeroCreate<int64> rounds
                                let buffer = Array.zeroCreate<byte> 1

                                for round in 0 .. rounds - 1 do
                                    let read = file.ReadAtAsync(Memory buffer, 0L).AsTask()
                                    readIssued.Release() |> ignore
                                    let! first = Task.WhenAny(read, writerFailed.Task)

                                    if not (obj.ReferenceEquals(first, read)) then
                                        writerFailed.Task.GetAwaiter().GetResult()

                                    let! n = read
                                    ran[round] <- slicesEnded.Value
                                    Expect.equal n 1 "one byte per read"
                                    Expect.equal buffer[0] (byte round) "the bytes in order"

                                return ran
                            })

                    let preemptions = Shard.Stats.Preemptions - preemptionsBefore
                    stop.IsSet <- true
                    let! _ = h1
                    let! _ = h2
                    do! file.DisposeAsync()
                    return ran, preemptions, Shard.Stats
                })

    if not (writer.Join shardTimeout) then
        failtest "the FIFO writer did not finish"

    Array.zip written ran, preemptions, stats

/// On a shard: opens `path` with O_DIRECT and reads its first 4 KiB `times` times through the runtime's own
/// operation, marked O_DIRECT on the file's device so that routing may send it to the poll ring (what DmaFile will
/// do). Returns the bytes of the last read, the shard's stats and the device key.
let private directRead (path: string) (times: int) =
    task {
        let fd = ``open`` (path, ODirect, 0)

        if fd < 0 then
            failtestf "open O_DIRECT %s: errno %d" path (Marshal.GetLastPInvokeError())

        let buffer = NativeMemory.AlignedAlloc(4096un, 4096un)

        try
            let executor = Scipio.Runtime.ShardExecutor.Require "directRead"
            let device = Scipio.Interop.Files.DeviceKey fd

            for _ in 1..times do
                let op =
                    executor.Operations.RentReadWrite().Start("direct read", path, null, CancellationToken.None)

                op.PrepareRead(fd, NativePtr.toNativeInt (NativePtr.ofVoidPtr<byte> buffer), 4096, 0L)
                op.SetDirect device
                executor.Submit op
                let! n = ValueTask<int>(op :> Sources.IValueTaskSource<int>, op.Version)
                Expect.equal n 4096 "a whole block read"

            let bytes = Span<byte>(buffer, 4096).ToArray()
            return bytes, Shard.Stats, device
        finally
            NativeMemory.AlignedFree buffer
            close fd |> ignore
    }

/// sysfs's io_poll for a device key, as the runtime reads it (the disk's queue for a partition).
let private sysfsIoPoll (device: uint64) =
    let major, minor = device >>> 32, device &&& 0xFFFFFFFFUL

    [
        $"/sys/dev/block/{major}:{minor}/queue/io_poll"
        $"/sys/dev/block/{major}:{minor}/../queue/io_poll"
    ]
    |> List.tryFind File.Exists
    |> Option.map (fun p -> File.ReadAllText(p).Trim())

let tests =
    testSequenced
    <| testList
        "three rings"
        [
            test
                "under two hogs a latency-sensitive queue gets FIFO data before the hog's slice ends, a throughput queue after" {
                requireIoUring "the latency ring raises NeedPreempt on a completion"
                let rounds = 20
                // Allowed exceptions to the ordering, out of 20: a write that lands within the ~1024 iterations before
                // a hog's own slice end (odds ~1e-4), or a preempt interval (1 s) that expires on a VM that held the
                // shard's CPU back. The expected count of each is 0.
                let slack = 2

                let matters, mattersPreemptions, mattersStats =
                    withTempDir (fun dir -> slicesUnderHogs dir (Latency.Matters(TimeSpan.FromMilliseconds 2.0)) rounds)

                let throughput, _, throughputStats =
                    withTempDir (fun dir -> slicesUnderHogs dir Latency.NotImportant rounds)

                let show (rounds: (int64 * int64) array) =
                    rounds |> Array.map (fun (w, r) -> $"{w}->{r}") |> String.concat " "
                // The latency queue's reads complete on the latency ring, whose CQE makes NeedPreempt true: the hog
                // yields at its next YieldIfNeeded, and the reader runs before any hog's slice ends by itself.
                Expect.isGreaterThanOrEqual
                    mattersStats.Latency.Completed
                    (int64 rounds)
                    "the latency queue's reads went to the latency ring"

                let cutShort = matters |> Array.filter (fun (w, r) -> w = r) |> Array.length

                Expect.isGreaterThanOrEqual
                    cutShort
                    (rounds - slack)
                    $"the latency queue's reader ran within the hog slice its data arrived in (slices ended at write -> at read: {show matters})"

                Expect.isGreaterThanOrEqual
                    mattersPreemptions
                    (int64 (rounds - slack))
                    "each byte cut a hog's slice short (a preemption each)"
                // The throughput queue's reads complete on the main ring, reaped when the loop turns: when the hog's
                // run ends. Nothing cuts it for the reader, so it ends by itself (a slice ended). (With slices of
                // ~200 ms, the rounds once took ~6 s, and the 1 s preempt interval cut a run every few rounds.)
                Expect.isGreaterThanOrEqual
                    throughputStats.Main.Completed
                    (int64 rounds)
                    "the throughput queue's reads went to the main ring"

                let waited = throughput |> Array.filter (fun (w, r) -> r > w) |> Array.length

                Expect.isGreaterThanOrEqual
                    waited
                    (rounds - slack)
                    $"the throughput queue's reader mostly waited for the hog's slice to end (slices ended at write -> at read: {show throughput})"
            }

            test "a parked shard wakes for a latency-ring completion" {
                requireIoUring "the latency ring"

                withTempDir (fun dir ->
                    let fifo = Path.Combine(dir, "fifo")
                    Libc.makeFifo fifo
                    let reading = TaskCompletionSource<int>()

                    let writer =
                        Task.Run(fun () ->
                            task {
                                let! tid = reading.Task
                                // Wait until the shard has parked (its thread blocked in io_uring_enter): nothing else
                                // is runnable and no timer is pending, so only the latency ring's fd, polled from the
                                // main ring, can wake it.
                                Libc.waitUntilParked "the shard with a latency read in flight" tid

                                use w =
                                    new FileStream(fifo, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1)

                                w.Write([| 42uy |], 0, 1)
                            }
                            :> Task)

                    let got, stats =
                        runShard (fun () ->
                            task {
                                let q =
                                    Shard.CreateTaskQueue(
                                        "latency",
                                        Shares.Static 100,
                                        Latency.Matters(TimeSpan.FromMilliseconds 1.0)
                                    )

                                return!
                                    spawnInto q (fun () ->
                                        task {
                                            let! file =
                                                BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)

                                            let buffer = Array.zeroCreate<byte> 1
                                            let read = file.ReadAtAsync(Memory buffer, 0L)
                                            reading.SetResult(Libc.gettid ())
                                            let! _ = read
                                            do! file.DisposeAsync()
                                            return buffer[0], Shard.Stats
                                        })
                            })

                    writer.Wait(shardTimeout) |> ignore
                    Expect.equal got 42uy "the byte written"
                    Expect.isGreaterThanOrEqual stats.Parks 1L "the shard parked while the read was in flight"
                    Expect.isGreaterThanOrEqual stats.Latency.Completed 1L "the read completed on the latency ring")
            }

            test "O_DIRECT I/O on ext4 goes where sysfs io_poll says, and reads the right bytes" {
                requireIoUring "the poll ring"

                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "direct.bin")
                    let data = Array.init 4096 byte
                    File.WriteAllBytes(path, data)
                    let read, stats, device = runShard (fun () -> directRead path 2)
                    Expect.sequenceEqual read data "the bytes read through the ring"

                    let ioPoll = sysfsIoPoll device

                    if ioPoll = Some "1" then
                        Expect.equal stats.Poll.Submitted 2L "a polling device's O_DIRECT reads go to the poll ring"
                    else
                        // The case here: virtio disks do not poll (io_poll = 0), decided once from sysfs.
                        Expect.equal
                            stats.Poll.Submitted
                            0L
                            $"a device with io_poll = {ioPoll} is never tried on the poll ring"

                        Expect.equal stats.PollFallbacks 1L "the device was routed to the main ring once, and counted")
            }

            test "O_DIRECT I/O that the poll ring refuses (tmpfs: EOPNOTSUPP) falls back to the main ring for good" {
                requireIoUring "the poll ring"
                let shm = "/dev/shm"
                let dir = Path.Combine(shm, $"scipio-{Guid.NewGuid():N}")

                if not (Directory.Exists shm) then
                    skiptest "no /dev/shm here"

                Directory.CreateDirectory dir |> ignore

                try
                    let path = Path.Combine(dir, "direct.bin")
                    let data = Array.init 4096 (fun i -> byte (i * 7))
                    File.WriteAllBytes(path, data)
                    let probe = ``open`` (path, ODirect, 0)

                    if probe < 0 then
                        skiptest $"tmpfs here refuses O_DIRECT (errno {Marshal.GetLastPInvokeError()})"

                    close probe |> ignore
                    let read, stats, _ = runShard (fun () -> directRead path 2)
                    Expect.sequenceEqual read data "the bytes, read after the fallback"
                    Expect.equal stats.Poll.Submitted 1L "only the first read was tried on the poll ring"
                    Expect.equal stats.PollFallbacks 1L "one operation sent again, to the main ring"
                    Expect.equal stats.Poll.Completed 1L "the poll ring's EOPNOTSUPP was reaped"
                finally
                    Directory.Delete(dir, true)
            }

            test "a queue that the running one wakes gets the CPU while it loops on YieldIfNeeded" {
                // Picked alone, with no timer and no I/O pending, the hog needs no preemption timer; spawning into
                // another queue makes it need one at once.
                let ran =
                    runShard (fun () ->
                        task {
                            let other = Shard.CreateTaskQueue("other", Shares.Static 100, Latency.NotImportant)
                            let hog = Shard.CreateTaskQueue("hog", Shares.Static 100, Latency.NotImportant)

                            return!
                                spawnInto hog (fun () ->
                                    task {
                                        let flag = { IsSet = false }

                                        spawnInto other (fun () ->
                                            task {
                                                flag.IsSet <- true
                                                return 0
                                            })
                                        |> ignore

                                        let until = Stopwatch.GetTimestamp() + Stopwatch.Frequency // 1 s at most
                                        let mutable n = 0L

                                        while not flag.IsSet && Stopwatch.GetTimestamp() < until do
                                            n <- n + 1L

                                            if n % 1024L = 0L then
                                                do! Shard.YieldIfNeeded()

                                        return flag.IsSet
                                    })
                        })

                Expect.isTrue ran "the other queue ran before the hog gave up after a second"
            }

            test "two shards wake each other (IORING_OP_MSG_RING) for 5,000 round trips, parked between messages" {
                requireIoUring "IORING_OP_MSG_RING"
                let queueOfB = TaskCompletionSource<TaskQueue>()
                let stopB = TaskCompletionSource()

                let b =
                    Shard.Start(
                        Func<Task<int64 * int64>>(fun () ->
                            task {
                                queueOfB.SetResult Shard.CurrentTaskQueue
                                do! stopB.Task
                                return Shard.Stats.Wakeups, Shard.Stats.MsgRingWakeups
                            }),
                        ShardOptions(Placement = Placement.Fixed 1)
                    )

                let onB = awaitBounded "shard B's start" shardTimeout queueOfB.Task
                let rounds = 5_000

                let wakeupsOfA =
                    runShardWith (ShardOptions(Placement = Placement.Fixed 0)) (fun () ->
                        task {
                            let onA = Shard.CurrentTaskQueue

                            for _ in 1..rounds do
                                let back = TaskCompletionSource()
                                onB.Post((fun _ -> onA.Post((fun _ -> back.SetResult()), null)), null)
                                do! back.Task

                            return Shard.Stats.Wakeups, Shard.Stats.MsgRingWakeups
                        })

                stopB.SetResult()
                let wakeupsOfB = awaitBounded "shard B" shardTimeout b.Completion
                let wakeupsOfA, msgRingWakeupsOfA = wakeupsOfA
                let wakeupsOfB, msgRingWakeupsOfB = wakeupsOfB
                // Both sides park between messages most of the time; each of those parks ends in a counted wake-up,
                // and a wake from another shard goes by IORING_OP_MSG_RING (a CQE on the parked shard's ring), not by
                // its eventfd.
                Expect.isGreaterThan wakeupsOfA 0L "shard A was woken by shard B"
                Expect.isGreaterThan wakeupsOfB 0L "shard B was woken by shard A"

                Expect.isGreaterThan
                    msgRingWakeupsOfA
                    0L
                    $"shard B's wakes of shard A went by MSG_RING ({msgRingWakeupsOfA} of {wakeupsOfA})"

                Expect.isGreaterThan
                    msgRingWakeupsOfB
                    0L
                    $"shard A's wakes of shard B went by MSG_RING ({msgRingWakeupsOfB} of {wakeupsOfB})"
            }

            test "SpawnBlocking runs off the shard, unpinned, and resumes in the calling queue" {
                let onShard, queue, helperCpus, error =
                    runShardWith (ShardOptions(Placement = Placement.Fixed 1)) (fun () ->
                        task {
                            let q = Shard.CreateTaskQueue("caller", Shares.Static 100, Latency.NotImportant)

                            return!
                                spawnInto q (fun () ->
                                    task {
                                        let! cpus = Shard.SpawnBlocking(fun () -> Libc.affinityOf 0)
                                        let onShard = Shard.IsOnShard
                                        let queue = Shard.CurrentTaskQueue.Name

                                        let! error =
                                            thrownByTask (fun () ->
                                                Shard.SpawnBlocking(fun () ->
                                                    raise (TimeoutException "from the helper")))

                                        return onShard, queue, cpus, error
                                    })
                        })

                Expect.isTrue onShard "the await resumed on the shard"
                Expect.equal queue "caller" "in the queue that called"
                Expect.equal helperCpus (Libc.processCpus ()) "the helper thread is not pinned to the shard's CPU"
                expectExn<TimeoutException> "the blocking work's exception" error |> ignore
            }
        ]

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

/// Writes an 8-byte timestamp to `fifo` every `period`, `count` times, from ThreadPool timer ticks (the shard's
/// CPU is left alone).
let private writeTimestamps (fifo: string) (count: int) (period: TimeSpan) =
    task {
        use timer = new PeriodicTimer(period)
        use writer = new FileStream(fifo, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1)

        for _ in 1..count do
            let! _ = timer.WaitForNextTickAsync()
            writer.Write(BitConverter.GetBytes(Stopwatch.GetTimestamp()), 0, 8)
            writer.Flush()
    }

/// Median and 90th percentile of `delays`, in ms.
let private percentiles (delays: float array) =
    let sorted = Array.sort delays
    sorted[sorted.Length / 2], sorted[sorted.Length * 9 / 10]

/// Two hog queues run on CPU 0 with 10 ms slices while a third queue, of `latency`, reads timestamps from a FIFO:
/// the delays between each write and the reader running, in ms.
let private delaysUnderHogs (dir: string) (latency: Latency) =
    let fifo = Path.Combine(dir, "fifo")
    Libc.makeFifo fifo
    let count = 60

    runShardWith
        (ShardOptions(Placement = Placement.Fixed 0, PreemptInterval = TimeSpan.FromMilliseconds 10.0))
        (fun () ->
            task {
                let stop = { IsSet = false }

                let hog () =
                    task {
                        let mutable n = 0L

                        while not stop.IsSet do
                            n <- n + 1L

                            if n % 1024L = 0L then
                                do! Shard.YieldIfNeeded()

                        return n
                    }

                let h1 = spawnInto (Shard.CreateTaskQueue("hog1", Shares.Static 100, Latency.NotImportant)) hog
                let h2 = spawnInto (Shard.CreateTaskQueue("hog2", Shares.Static 100, Latency.NotImportant)) hog
                let reader = Shard.CreateTaskQueue("reader", Shares.Static 100, latency)
                // Read-write, so opening does not wait for the writer.
                let! file = BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)
                let writing = Task.Run(fun () -> writeTimestamps fifo count (TimeSpan.FromMilliseconds 3.0) :> Task)

                let! delays =
                    spawnInto reader (fun () ->
                        task {
                            let delays = ResizeArray()
                            let buffer = Array.zeroCreate<byte> 8

                            while delays.Count < count do
                                let! n = file.ReadAtAsync(Memory buffer, 0L)
                                Expect.equal n 8 "one whole timestamp per read"
                                let written = BitConverter.ToInt64(buffer, 0)
                                delays.Add (Stopwatch.GetElapsedTime(written).TotalMilliseconds)

                            return delays.ToArray()
                        })

                stop.IsSet <- true
                let! _ = h1
                let! _ = h2
                do! writing
                do! file.DisposeAsync()
                return delays, Shard.Stats
            })

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
                let op = executor.Operations.RentReadWrite().Start("direct read", path, null, CancellationToken.None)
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

    [ $"/sys/dev/block/{major}:{minor}/queue/io_poll"; $"/sys/dev/block/{major}:{minor}/../queue/io_poll" ]
    |> List.tryFind File.Exists
    |> Option.map (fun p -> File.ReadAllText(p).Trim())

let tests =
    testSequenced
    <| testList
        "three rings"
        [ test "under two hogs a latency-sensitive queue gets FIFO data within its budget, a throughput queue later" {
              let budget = 2.0
              let matters, mattersStats = withTempDir (fun dir -> delaysUnderHogs dir (Latency.Matters(TimeSpan.FromMilliseconds budget)))
              let throughput, throughputStats = withTempDir (fun dir -> delaysUnderHogs dir Latency.NotImportant)
              let mattersMedian, matters90 = percentiles matters
              let throughputMedian, _ = percentiles throughput
              let report = $"Matters: median {mattersMedian:F2} ms, p90 {matters90:F2} ms; NotImportant: median {throughputMedian:F2} ms"
              // The latency queue's reads complete on the latency ring, whose CQE makes NeedPreempt true: the hog
              // yields at once. The throughput queue's complete on the main ring, seen when the 10 ms slice ends.
              Expect.isGreaterThanOrEqual mattersStats.Latency.Completed 60L "the latency queue's reads went to the latency ring"
              Expect.isGreaterThanOrEqual throughputStats.Main.Completed 60L "the throughput queue's reads went to the main ring"
              Expect.isLessThanOrEqual matters90 budget $"90%% of the latency queue's wake-ups within its budget ({report})"
              Expect.isLessThan mattersMedian throughputMedian $"the latency ring serves sooner than the main ring ({report})"
          }

          test "a parked shard wakes for a latency-ring completion" {
              withTempDir (fun dir ->
                  let fifo = Path.Combine(dir, "fifo")
                  Libc.makeFifo fifo
                  let reading = TaskCompletionSource()

                  let writer =
                      Task.Run(fun () ->
                          task {
                              do! reading.Task
                              // Let the shard park: nothing else is runnable and no timer is pending, so only the
                              // latency ring's fd, polled from the main ring, can wake it.
                              do! Task.Delay 20
                              use w = new FileStream(fifo, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1)
                              w.Write([| 42uy |], 0, 1)
                          }
                          :> Task)

                  let got, stats =
                      runShard (fun () ->
                          task {
                              let q = Shard.CreateTaskQueue("latency", Shares.Static 100, Latency.Matters(TimeSpan.FromMilliseconds 1.0))

                              return!
                                  spawnInto q (fun () ->
                                      task {
                                          let! file = BufferedFile.OpenAsync(fifo, FileMode.Open, FileAccess.ReadWrite)
                                          let buffer = Array.zeroCreate<byte> 1
                                          let read = file.ReadAtAsync(Memory buffer, 0L)
                                          reading.SetResult()
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
                      Expect.equal stats.Poll.Submitted 0L $"a device with io_poll = {ioPoll} is never tried on the poll ring"
                      Expect.equal stats.PollFallbacks 1L "the device was routed to the main ring once, and counted")
          }

          test "O_DIRECT I/O that the poll ring refuses (tmpfs: EOPNOTSUPP) falls back to the main ring for good" {
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

                                      spawnInto other (fun () -> task { flag.IsSet <- true; return 0 }) |> ignore
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
              let queueOfB = TaskCompletionSource<TaskQueue>()
              let stopB = TaskCompletionSource()

              let b =
                  Shard.Start(
                      Func<Task<int64>>(fun () ->
                          task {
                              queueOfB.SetResult Shard.CurrentTaskQueue
                              do! stopB.Task
                              return Shard.Stats.Wakeups
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

                          return Shard.Stats.Wakeups
                      })

              stopB.SetResult()
              let wakeupsOfB = awaitBounded "shard B" shardTimeout b.Completion
              // Both sides park between messages most of the time; each of those parks ends in a counted wake-up.
              Expect.isGreaterThan wakeupsOfA 0L "shard A was woken by shard B"
              Expect.isGreaterThan wakeupsOfB 0L "shard B was woken by shard A"
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
                                          thrownByTask (fun () -> Shard.SpawnBlocking(fun () -> raise (TimeoutException "from the helper")))

                                      return onShard, queue, cpus, error
                                  })
                      })

              Expect.isTrue onShard "the await resumed on the shard"
              Expect.equal queue "caller" "in the queue that called"
              Expect.equal helperCpus (Libc.processCpus ()) "the helper thread is not pinned to the shard's CPU"
              expectExn<TimeoutException> "the blocking work's exception" error |> ignore
          } ]

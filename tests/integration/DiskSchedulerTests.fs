/// The I/O scheduler on this machine's disk: task queues share O_DIRECT reads by their I/O shares when the shard has
/// a DiskModel, and I/O goes straight to the rings without one.
module Scipio.Integration.Tests.DiskSchedulerTests

open System
open System.Diagnostics
open System.IO
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.IO
open Scipio.Integration.Tests.Helpers

/// A model slower than the device, so that the scheduler's bucket, not the disk, sets the pace: the ratio then
/// depends on the shares alone.
let private slowModel =
    DiskModel(20_000.0, 20_000.0, 200e6, 200e6, TimeSpan.FromMicroseconds 100.0)

/// Two queues at I/O shares 100 and 400 (CPU shares equal), each with 64 readers of 4 KiB at random offsets for
/// `seconds`: the reads each completed, and what the queues' stats say was dispatched.
let private race (path: string) (model: DiskModel option) (seconds: float) =
    let options = ShardOptions()
    model |> Option.iter (fun m -> options.DiskModel <- m)

    runShardWith options (fun () ->
        task {
            let! file = DmaFile.OpenAsync path
            let! length = file.GetLengthAsync()
            let blocks = int (length / 4096L)
            let low = Shard.CreateTaskQueue("low", Shares.Static 100, Latency.NotImportant)
            let high = Shard.CreateTaskQueue("high", Shares.Static 100, Latency.NotImportant)
            low.IoShares <- Shares.Static 100
            high.IoShares <- Shares.Static 400

            let deadline =
                Stopwatch.GetTimestamp() + int64 (seconds * float Stopwatch.Frequency)

            let reader (seed: int) =
                task {
                    use buffer = file.AllocateBuffer 4096
                    let random = Random seed
                    let mutable reads = 0L

                    while Stopwatch.GetTimestamp() < deadline do
                        let! _ = file.ReadAtAsync(buffer, int64 (random.Next blocks) * 4096L)
                        reads <- reads + 1L

                    return reads
                }

            let readers (queue: TaskQueue) offset =
                Array.init 64 (fun i -> Shard.SpawnInto(queue, fun () -> reader (offset + i)))

            let lows = readers low 0
            let highs = readers high 1000
            let! l = Task.WhenAll lows
            let! h = Task.WhenAll highs
            do! file.DisposeAsync()
            return Array.sum l, Array.sum h, low.Stats, high.Stats
        })

/// A scratch file of 1 GiB of written data (not holes, which ext4 reads without touching the device).
let private scratchFile (dir: string) =
    let path = Path.Combine(dir, "scheduled.bin")

    use stream =
        new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 <<< 20)

    let chunk = Array.init (1 <<< 20) byte

    for _ in 1..1024 do
        stream.Write chunk

    path

let private sharesRatio =
    test
        "I/O shares 100:400, 64 reads in flight each: completed reads 1:4 within 20% with a model; without, whatever the device gives" {
        withTempDir (fun dir ->
            let path = scratchFile dir

            let low, high, lowStats, highStats = race path (Some slowModel) 3.0
            let ratio = float high / float low
            Expect.isTrue (ratio >= 3.2 && ratio <= 4.8) $"with the model: %d{low} : %d{high} reads = 1 : %.2f{ratio}"
            Expect.isGreaterThan lowStats.IoDispatched 0L "the low queue's dispatched I/O is counted"
            Expect.isGreaterThan highStats.IoDispatched lowStats.IoDispatched "and the high queue's, more"
            Expect.equal highStats.IoBytes (highStats.IoDispatched * 4096L) "4 KiB each"
            Expect.isGreaterThan highStats.IoSchedulerWait TimeSpan.Zero "reads waited in the scheduler"

            let low', high', lowStats', _ = race path None 1.0
            printfn $"I/O shares 100:400 with the model: %d{low} : %d{high} reads = 1 : %.2f{ratio}"

            printfn
                $"I/O shares 100:400 without a model: %d{low'} : %d{high'} reads = 1 : %.2f{float high' / float low'}"

            Expect.isGreaterThan (low' + high') 0L "without a model reads go straight to the rings"
            Expect.equal lowStats'.IoDispatched 0L "and nothing is dispatched by a scheduler")
    }

/// A Latency.Matters queue reading one 4 KiB block at a time beside a NotImportant queue with 128 reads in flight,
/// for `seconds`: the reader's latencies (µs), and both queues' stats.
let private besideSaturation (path: string) (model: DiskModel option) (seconds: float) =
    let options = ShardOptions()
    model |> Option.iter (fun m -> options.DiskModel <- m)

    runShardWith options (fun () ->
        task {
            let! file = DmaFile.OpenAsync path
            let! length = file.GetLengthAsync()
            let blocks = int (length / 4096L)
            let bulk = Shard.CreateTaskQueue("bulk", Shares.Static 100, Latency.NotImportant)

            let interactive =
                Shard.CreateTaskQueue("interactive", Shares.Static 100, Latency.Matters(TimeSpan.FromMilliseconds 1.0))

            let deadline =
                Stopwatch.GetTimestamp() + int64 (seconds * float Stopwatch.Frequency)

            let hog (seed: int) =
                Shard.SpawnInto(
                    bulk,
                    fun () ->
                        task {
                            use buffer = file.AllocateBuffer 4096
                            let random = Random seed

                            while Stopwatch.GetTimestamp() < deadline do
                                let! _ = file.ReadAtAsync(buffer, int64 (random.Next blocks) * 4096L)
                                ()
                        }
                )

            let hogs = Array.init 128 hog

            let reader =
                Shard.SpawnInto(
                    interactive,
                    fun () ->
                        task {
                            use buffer = file.AllocateBuffer 4096
                            let random = Random 7
                            let latencies = ResizeArray<float>()

                            while Stopwatch.GetTimestamp() < deadline do
                                let start = Stopwatch.GetTimestamp()
                                let! _ = file.ReadAtAsync(buffer, int64 (random.Next blocks) * 4096L)
                                latencies.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds)

                            return latencies.ToArray()
                        }
                )

            let! latencies = reader
            let! _ = Task.WhenAll hogs
            do! file.DisposeAsync()
            return latencies, interactive.Stats, bulk.Stats
        })

let private p99 (latencies: float[]) =
    let sorted = Array.sort latencies
    sorted[min (sorted.Length - 1) (int (0.99 * float sorted.Length))]

let private latencyBesideSaturation =
    test
        "a Matters QD1 reader beside 128 reads in flight: its p99 with the scheduler and without (printed); the others wait, it does not" {
        withTempDir (fun dir ->
            let path = scratchFile dir
            // This machine's disk, measured briefly: the scheduler needs the device's real latency and capacity.
            let model = DiskModel.MeasureAsync(dir).GetAwaiter().GetResult()
            let scheduled, readerStats, bulkStats = besideSaturation path (Some model) 3.0
            let unscheduled, _, bulkStats' = besideSaturation path None 3.0

            printfn
                $"QD1 reader beside 128 in flight, {model}: p99 %.0f{p99 scheduled} µs with the scheduler (%d{scheduled.Length} reads), %.0f{p99 unscheduled} µs without (%d{unscheduled.Length} reads)"

            Expect.isGreaterThan scheduled.Length 0 "the reader read"
            Expect.isGreaterThan unscheduled.Length 0 "and without the scheduler too"

            Expect.equal
                readerStats.IoDispatched
                (int64 scheduled.Length)
                "each of its reads went through the scheduler"

            Expect.isGreaterThan bulkStats.IoSchedulerWait TimeSpan.Zero "the saturating queue was held back"
            // The reader's reads go past the cap (its headroom): they wait only for tokens, far less in total than
            // the saturating queue's requests. A count of reads, not a time, decides: the average wait per read.
            let readerWait =
                readerStats.IoSchedulerWait.TotalMicroseconds / float readerStats.IoDispatched

            let bulkWait =
                bulkStats.IoSchedulerWait.TotalMicroseconds / float bulkStats.IoDispatched

            Expect.isLessThan
                readerWait
                bulkWait
                $"the reader waits less per read (%.1f{readerWait} µs) than the others (%.1f{bulkWait} µs)"

            Expect.equal bulkStats'.IoDispatched 0L "without a model nothing passes a scheduler")
    }

let private ioShares =
    test "TaskQueue.IoShares follows the CPU shares until set, and again after null; set off its shard throws" {
        let result =
            runShard (fun () ->
                task {
                    let q = Shard.CreateTaskQueue("q", Shares.Static 300, Latency.NotImportant)
                    let before = q.IoShares.Current
                    q.IoShares <- Shares.Static 50
                    let set = q.IoShares.Current
                    q.IoShares <- Unchecked.defaultof<Shares> // null: follow the CPU shares again
                    let after = q.IoShares.Current

                    let! offShard =
                        Task.Run(fun () -> thrownBy (fun () -> q.IoShares <- Shares.Static 10))

                    return before, set, after, offShard
                })

        let before, set, after, offShard = result
        Expect.equal (before, set, after) (300, 50, 300) "CPU shares, then its own, then the CPU shares again"

        expectExn<InvalidOperationException> "IoShares set off the shard" offShard
        |> ignore
    }

let tests =
    testSequenced
    <| testList "disk scheduler" [ sharesRatio; latencyBesideSaturation; ioShares ]

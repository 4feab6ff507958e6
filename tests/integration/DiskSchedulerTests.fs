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
let private slowModel = DiskModel(20_000.0, 20_000.0, 200e6, 200e6, TimeSpan.FromMicroseconds 100.0)

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
            let deadline = Stopwatch.GetTimestamp() + int64 (seconds * float Stopwatch.Frequency)

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

let private sharesRatio =
    test "I/O shares 100:400, 64 reads in flight each: completed reads 1:4 within 20% with a model; without, whatever the device gives" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "scheduled.bin")
            File.WriteAllBytes(path, Array.init (16 <<< 20) byte)

            let low, high, lowStats, highStats = race path (Some slowModel) 2.0
            let ratio = float high / float low
            Expect.isTrue (ratio >= 3.2 && ratio <= 4.8) $"with the model: %d{low} : %d{high} reads = 1 : %.2f{ratio}"
            Expect.isGreaterThan lowStats.IoDispatched 0L "the low queue's dispatched I/O is counted"
            Expect.isGreaterThan highStats.IoDispatched lowStats.IoDispatched "and the high queue's, more"
            Expect.equal highStats.IoBytes (highStats.IoDispatched * 4096L) "4 KiB each"
            Expect.isGreaterThan highStats.IoSchedulerWait TimeSpan.Zero "reads waited in the scheduler"

            let low', high', lowStats', _ = race path None 1.0
            printfn $"I/O shares 100:400 with the model: %d{low} : %d{high} reads = 1 : %.2f{ratio}"
            printfn $"I/O shares 100:400 without a model: %d{low'} : %d{high'} reads = 1 : %.2f{float high' / float low'}"
            Expect.isGreaterThan (low' + high') 0L "without a model reads go straight to the rings"
            Expect.equal lowStats'.IoDispatched 0L "and nothing is dispatched by a scheduler")
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
                    let! offShard = Task.Run(fun () -> thrownBy (fun () -> q.IoShares <- Shares.Static 10))
                    return before, set, after, offShard
                })

        let before, set, after, offShard = result
        Expect.equal (before, set, after) (300, 50, 300) "CPU shares, then its own, then the CPU shares again"
        expectExn<InvalidOperationException> "IoShares set off the shard" offShard |> ignore
    }

let tests = testSequenced <| testList "disk scheduler" [ sharesRatio; ioShares ]

// The pool sample in F#: one shard per CPU, calls between shards, and a channel from one shard to another.
open System.Threading.Tasks
open Scipio
open Scipio.Channels

let pool = ShardPool.Start(ShardPoolOptions(Placement = PoolPlacement.MaxSpread()))
printfn "%d shards on CPUs %A" pool.Count (List.ofSeq pool.Cpus)

// Every shard counts its part, then asks shard 0, which owns the total, to add it.
let mutable total = 0L

let seen =
    pool
        .RunOnAll(fun () ->
            task {
                let mutable mine = 0L

                for i in Shard.Id .. pool.Count .. 9_999_999 do
                    mine <- mine + int64 (i % 7)

                return!
                    Shard.SubmitTo(
                        0,
                        fun () ->
                            Task.FromResult(
                                total <- total + mine
                                total
                            )
                    )
            })
        .Result

printfn "total %d (shard 0 saw %A)" total (Array.sort seen)

// A channel from the last shard to shard 0.
let channel = SharedChannel.CreateBounded<int> 1024
let last = pool.Count - 1

let producer =
    pool.SubmitTo(
        last,
        fun () ->
            task {
                for i in 1..1_000_000 do
                    do! channel.Writer.WriteAsync i

                channel.Writer.Complete()
            }
            :> Task
    )

let sum =
    pool
        .SubmitTo(
            0,
            fun () ->
                task {
                    let mutable s = 0L
                    let reader = channel.Reader.ReadAllAsync().GetAsyncEnumerator()

                    while! reader.MoveNextAsync() do
                        s <- s + int64 reader.Current

                    return s
                }
        )
        .Result

producer.Wait()
printfn "shard %d sent 1,000,000 numbers to shard 0, which added them up to %d" last sum
pool.DisposeAsync().AsTask().Wait()

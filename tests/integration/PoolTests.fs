/// Shard pools on the real kernel: two shards pinned to CPUs 0 and 1, calls between them through the pool's rings,
/// exceptions that cross back with their type, disposal with work in flight, a faulted shard that stops the pool
/// without hanging anyone, and no thread or fd left behind after 100 pools.
module Scipio.Integration.Tests.PoolTests

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Integration.Tests.Helpers

/// A pool of two shards on CPUs 0 and 1. They spin briefly before parking: a call's reply comes back within
/// microseconds, and waking a parked shard on the other CPU costs tens of them on this VM.
let private twoShards () =
    ShardPool.Start(
        ShardPoolOptions(
            Shards = 2,
            Placement = PoolPlacement.MaxSpread [ 0; 1 ],
            PerShard = ShardOptions(SpinBeforePark = TimeSpan.FromMicroseconds 200.0)
        )
    )

/// Waits (bounded) for a Task without a result; rethrows its exception.
let private awaitDone (what: string) (t: Task) =
    task { do! t } |> awaitBounded what shardTimeout

let private dispose (pool: ShardPool) =
    pool.DisposeAsync().AsTask() |> awaitDone "the pool's disposal"

/// Never completes: awaits an infinite Shard.Sleep.
let private forever () =
    task {
        do! Shard.Sleep Timeout.InfiniteTimeSpan
        return 1
    }

/// The process's thread count and open fds, from /proc.
let private threadsAndFds () =
    let threads =
        File.ReadLines "/proc/self/status"
        |> Seq.find (fun l -> l.StartsWith "Threads:")
        |> fun l -> int (l.Substring(8).Trim())

    threads, Directory.GetFiles("/proc/self/fd").Length

exception private Marker of string

let tests =
    testSequenced
    <| testList
        "shard pool"
        [
            test "each shard knows its index and its pool; a lone shard is 0 with no pool" {
                let pool = twoShards ()

                try
                    Expect.equal pool.Count 2 "two shards"
                    Expect.sequenceEqual pool.Cpus [ 0; 1 ] "pinned to CPUs 0 and 1"

                    let ids =
                        pool.RunOnAll(fun () ->
                            task { return Shard.Id, Libc.sched_getcpu (), obj.ReferenceEquals(Shard.Pool, pool) })
                        |> awaitBounded "RunOnAll" shardTimeout

                    Expect.equal
                        ids
                        [| (0, 0, true); (1, 1, true) |]
                        "results by shard index, each on its CPU, each knowing its pool"
                finally
                    dispose pool

                let id, hasPool, thrown =
                    runShard (fun () ->
                        task {
                            let thrown =
                                thrownBy (fun () -> Shard.SubmitTo(0, Func<Task<int>>(fun () -> Task.FromResult 1)))

                            return Shard.Id, not (isNull Shard.Pool), thrown
                        })

                Expect.equal (id, hasPool) (0, false) "a lone shard's Id is 0 and it has no pool"
                let e = expectExn<InvalidOperationException> "Shard.SubmitTo on a lone shard" thrown
                Expect.stringContains e.Message "ShardPool" "the message says a pool is needed"
            }

            test "100k calls each way between two shards, through the rings, with their results" {
                let pool = twoShards ()

                try
                    let pingPong (target: int) =
                        task {
                            let mutable sum = 0L

                            for i in 1..100_000 do
                                let! v = Shard.SubmitTo(target, fun () -> Task.FromResult(int64 i + int64 Shard.Id))
                                sum <- sum + v

                            return sum, Shard.IsOnShard
                        }

                    let a = pool.SubmitTo(0, fun () -> pingPong 1)
                    let b = pool.SubmitTo(1, fun () -> pingPong 0)

                    let (sumA, onA), (sumB, onB) =
                        awaitBounded "shard 0's calls" shardTimeout a, awaitBounded "shard 1's calls" shardTimeout b

                    let expected = 100_000L * 100_001L / 2L
                    Expect.equal sumA (expected + 100_000L) "shard 0's calls ran on shard 1 (Id 1 added each time)"
                    Expect.equal sumB expected "shard 1's calls ran on shard 0"
                    Expect.isTrue (onA && onB) "each caller resumed on its own shard"
                finally
                    dispose pool
            }

            test "an exception crosses back with its type, to the caller's shard and task queue" {
                let pool = twoShards ()

                try
                    let thrown, sameQueue =
                        submit pool 0 (fun () ->
                            task {
                                let q = Shard.CreateTaskQueue("caller", Shares.Static 100, Latency.NotImportant)

                                return!
                                    spawnInto q (fun () ->
                                        task {
                                            let! thrown =
                                                thrownByTask (fun () ->
                                                    Shard.SubmitTo(
                                                        1,
                                                        fun () ->
                                                            task {
                                                                return
                                                                    raise (TimeZoneNotFoundException "from shard 1")
                                                            }
                                                    ))

                                            return
                                                thrown, obj.ReferenceEquals(Shard.CurrentTaskQueue, q) && Shard.Id = 0
                                        })
                            })

                    let e = expectExactExn<TimeZoneNotFoundException> "the remote exception" thrown
                    Expect.equal e.Message "from shard 1" "its own message"
                    Expect.isTrue sameQueue "the caller resumed on shard 0, in its own task queue"

                    let fromThread =
                        thrownBy (fun () -> submit pool 1 (fun () -> task { return raise (Marker "plain") }))

                    expectExn<Marker> "from a plain thread too" fromThread |> ignore
                finally
                    dispose pool
            }

            test "a call from a plain thread runs on the target and resumes off it" {
                let pool = twoShards ()

                try
                    let result =
                        task {
                            let! v = pool.SubmitTo(1, fun () -> task { return Shard.Id, Libc.sched_getcpu () })
                            return v, Shard.IsOnShard
                        }
                        |> awaitBounded "the call" shardTimeout

                    Expect.equal
                        result
                        ((1, 1), false)
                        "ran on shard 1 (CPU 1); the caller's continuation did not run on the shard"
                finally
                    dispose pool
            }

            test "DisposeAsync lets submitted work finish, refuses new work, and cancels what work spawned and left" {
                let pool = twoShards ()
                let abandoned = ref (Task.FromResult 0)

                let slow =
                    pool.SubmitTo(
                        1,
                        fun () ->
                            task {
                                abandoned.Value <- Shard.Spawn(Func<Task<int>> forever)
                                do! Shard.Sleep(TimeSpan.FromMilliseconds 50.0)
                                return 42
                            }
                    )

                let disposing = pool.DisposeAsync().AsTask()
                let refused = thrownBy (fun () -> pool.SubmitTo(0, fun () -> Task.FromResult 1))

                expectExn<ObjectDisposedException> "work submitted after disposal began" refused
                |> ignore

                awaitDone "the disposal" disposing

                Expect.equal
                    (awaitBounded "the slow call" shardTimeout slow)
                    42
                    "the call submitted before disposal finished"

                let e =
                    thrownBy (fun () -> awaitBounded "the abandoned work" shardTimeout abandoned.Value)

                expectExn<TaskCanceledException> "spawned work left running ends canceled" e
                |> ignore
            }

            test
                "DisposeAsync(ct): once the token is canceled the shards stop, and submitted work still running ends canceled" {
                let pool = twoShards ()

                let started =
                    TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

                let stuck =
                    pool.SubmitTo(
                        1,
                        fun () ->
                            task {
                                started.TrySetResult() |> ignore
                                return! forever ()
                            }
                    )

                awaitDone "the stuck call's start" started.Task
                use giveUp = new CancellationTokenSource()
                let disposing = pool.DisposeAsync(giveUp.Token).AsTask()
                Expect.isFalse disposing.IsCompleted "it waits for the submitted work while the token is not canceled"
                giveUp.Cancel()
                awaitDone "the disposal after the cancel" disposing
                let e = thrownBy (fun () -> awaitBounded "the stuck call" shardTimeout stuck)

                expectExn<TaskCanceledException> "submitted work still running when the shards stopped ends canceled" e
                |> ignore

                dispose pool // again: nothing
            }

            test "a fault in one shard's loop stops the pool: pending calls and DisposeAsync end with it" {
                let pool = twoShards ()
                let pending = pool.SubmitTo(0, Func<Task<int>> forever)
                let queue = submit pool 1 (fun () -> task { return Shard.CurrentTaskQueue })
                // An exception out of a posted callback (not an async method's) stops its shard.
                queue.Post((fun _ -> raise (Marker "shard 1 broke")), null)

                let fromPending =
                    thrownBy (fun () -> awaitBounded "the pending call" shardTimeout pending)

                expectExn<Marker> "the pending call on the other shard ends with the fault" fromPending
                |> ignore

                let fromDispose = thrownBy (fun () -> dispose pool)
                expectExn<Marker> "DisposeAsync rethrows it" fromDispose |> ignore
                let later = thrownBy (fun () -> pool.SubmitTo(0, fun () -> Task.FromResult 1))

                expectExn<ObjectDisposedException> "a stopped pool takes no work" later
                |> ignore
            }

            test "more pinned shards than allowed CPUs is refused, saying how many are allowed" {
                let allowed = Environment.ProcessorCount

                let thrown =
                    thrownBy (fun () -> ShardPool.Start(ShardPoolOptions(Shards = allowed + 1)))

                let e = expectExn<ArgumentException> "one shard per CPU, one too many" thrown
                Expect.stringContains e.Message (string allowed) "the message names the allowed count"
            }

            test "100 pools started and disposed leave no thread and no fd behind" {
                dispose (twoShards ()) // the first pool's one-time costs (JIT, the blocking pool)
                let threadsBefore, fdsBefore = threadsAndFds ()

                for _ in 1..100 do
                    let pool = twoShards ()
                    submit pool 1 (fun () -> Task.FromResult 0) |> ignore
                    dispose pool

                let threadsAfter, fdsAfter = threadsAndFds ()
                Expect.isLessThanOrEqual fdsAfter fdsBefore $"open fds: {fdsBefore} before, {fdsAfter} after"

                Expect.isLessThanOrEqual
                    threadsAfter
                    (threadsBefore + 2)
                    $"threads: {threadsBefore} before, {threadsAfter} after (the ThreadPool may grow by one or two)"
            }
        ]

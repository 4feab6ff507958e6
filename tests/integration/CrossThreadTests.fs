/// Work that crosses threads comes back to the shard: a foreign Task completed on a timer thread resumes in the
/// same task queue (the queue is the SynchronizationContext), also when the shard was parked, and TaskQueue.Post
/// from another thread runs its callback on the shard.
module Scipio.Integration.Tests.CrossThreadTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Integration.Tests.Helpers

/// Where code is running: on a shard? which queue? which thread? the queue as SynchronizationContext?
type private Where =
    {
        OnShard: bool
        Queue: string
        Thread: int
        ContextIsQueue: bool
    }

let private here () =
    {
        OnShard = Shard.IsOnShard
        Queue =
            if Shard.IsOnShard then
                Shard.CurrentTaskQueue.Name
            else
                "(off the shard)"
        Thread = Environment.CurrentManagedThreadId
        ContextIsQueue =
            Shard.IsOnShard
            && obj.ReferenceEquals(SynchronizationContext.Current, Shard.CurrentTaskQueue)
    }

let private foreignTask =
    test "awaiting Task.Delay (completed on a timer thread) resumes on the shard, same queue, also after a park" {
        let before, afterDelay, after, parks =
            runShard (fun () ->
                task {
                    let q = Shard.CreateTaskQueue("custom", Shares.Static 100, Latency.NotImportant)

                    return!
                        spawnInto q (fun () ->
                            task {
                                let before = here ()
                                // The subject: a foreign Task completed on the runtime's timer thread (whether the
                                // shard parked meanwhile depends on timing: nothing is asserted about it).
                                do! Task.Delay 20
                                let afterDelay = here ()
                                let parksBefore = Shard.Stats.Parks
                                // A foreign Task completed from another thread only once the shard has parked (its
                                // thread blocked in io_uring_enter): the post must wake it.
                                let tid = Libc.gettid ()
                                do! Task.Run(fun () -> Libc.waitUntilParked "the shard awaiting a foreign Task" tid)
                                let after = here ()
                                return before, afterDelay, after, Shard.Stats.Parks - parksBefore
                            })
                })

        Expect.isTrue before.OnShard "before the await, on the shard"
        Expect.equal before.Queue "custom" "before the await, in the queue the work was spawned into"
        Expect.isTrue before.ContextIsQueue "SynchronizationContext.Current is the running TaskQueue"

        for what, where in [ "Task.Delay", afterDelay; "a Task completed after the shard parked", after ] do
            Expect.isTrue where.OnShard $"after awaiting %s{what}, Shard.IsOnShard should still be true"
            Expect.equal where.Queue "custom" $"after awaiting %s{what}, the same task queue"
            Expect.equal where.Thread before.Thread $"after awaiting %s{what}, the same (shard) thread"

            Expect.isTrue
                where.ContextIsQueue
                $"after awaiting %s{what}, SynchronizationContext.Current is still the TaskQueue"

        Expect.isGreaterThan parks 0L "the shard parked while waiting for the other thread"
    }

let private spinning =
    test "with SpinBeforePark, a foreign Task still resumes on the shard and a sleep is not early" {
        let after, slept =
            runShardWith (ShardOptions(SpinBeforePark = TimeSpan.FromMilliseconds 2.0)) (fun () ->
                task {
                    do! Task.Delay 5
                    let after = here ()
                    let started = Diagnostics.Stopwatch.GetTimestamp()
                    do! Shard.Sleep(TimeSpan.FromMilliseconds 3.0)
                    return after, Diagnostics.Stopwatch.GetElapsedTime started
                })

        Expect.isTrue after.OnShard "after Task.Delay on a spinning shard, still on the shard"
        Expect.equal after.Queue "default" "in the default queue"

        Expect.isGreaterThanOrEqual
            slept
            (TimeSpan.FromMilliseconds 3.0)
            "a 3 ms sleep on a spinning shard is not early"
    }

let private manyForeignTasks =
    test "100 foreign tasks completed from ThreadPool threads all resume on the shard" {
        let wrong =
            runShard (fun () ->
                task {
                    let shardThread = Environment.CurrentManagedThreadId

                    let waiters =
                        Array.init 100 (fun i ->
                            spawn (fun () ->
                                task {
                                    let! _ = Task.Run(Func<int>(fun () -> i))

                                    let onShardThread =
                                        Environment.CurrentManagedThreadId = shardThread && Shard.IsOnShard

                                    return if onShardThread then 0 else 1
                                }))

                    let! results = Task.WhenAll waiters
                    return Array.sum results
                })

        Expect.equal wrong 0 "continuations that resumed off the shard thread"
    }

let private postFromThread =
    test "TaskQueue.Post from a plain Thread runs the callback on the shard, in that queue" {
        let shardThread, ranAt, poster =
            runShard (fun () ->
                task {
                    let q = Shard.CreateTaskQueue("posted-to", Shares.Static 100, Latency.NotImportant)
                    let ran = TaskCompletionSource<Where>()

                    let posterThread =
                        Thread((fun () -> q.Post((fun _ -> ran.SetResult(here ())), null)), IsBackground = true)

                    posterThread.Start()
                    let! ranAt = ran.Task
                    return Environment.CurrentManagedThreadId, ranAt, posterThread.ManagedThreadId
                })

        Expect.isTrue ranAt.OnShard "the posted callback should run on a shard"
        Expect.equal ranAt.Thread shardThread "the posted callback should run on the shard's thread"
        Expect.notEqual ranAt.Thread poster "not on the posting thread"
        Expect.equal ranAt.Queue "posted-to" "the posted callback runs in the queue it was posted to"
        Expect.isTrue ranAt.ContextIsQueue "during the callback SynchronizationContext.Current is that queue"
    }

let private sendFromThread =
    test "TaskQueue.Send from a plain Thread runs the callback on the shard and waits for it" {
        let shardThread, ranOn =
            runShard (fun () ->
                task {
                    let q = Shard.CurrentTaskQueue
                    let shardThread = Environment.CurrentManagedThreadId
                    let sent = TaskCompletionSource<int>()

                    Thread(
                        (fun () ->
                            let ranOn = { IsSet = false }
                            q.Send((fun _ -> ranOn.IsSet <- Environment.CurrentManagedThreadId = shardThread), null)
                            // Send returned: the callback has run.
                            sent.SetResult(if ranOn.IsSet then shardThread else -1)),
                        IsBackground = true
                    )
                        .Start()

                    let! ranOn = sent.Task
                    return Environment.CurrentManagedThreadId, ranOn
                })

        Expect.equal ranOn shardThread "Send's callback ran on the shard thread before Send returned"
    }

/// A value handed between the shard and a helper thread; the semaphore between them orders the accesses.
type private Cell<'T> = { mutable Value: 'T }

/// Regression (a bug this suite found, now fixed): a post from another thread can be lost while the shard parks, and the shard then sleeps
/// in io_uring_enter for good. ShardExecutor.PostFromAnotherThread (Runtime/ShardExecutor.cs) stores _inboxSignal
/// with Volatile.Write and ShardReactor.Wake (Runtime/ShardReactor.cs) then loads _parked with Volatile.Read; x86
/// may let that load pass the store (store-load reordering, the Dekker pattern), so the poster sees _parked = 0 and
/// writes no eventfd while the shard, between its own `_parked = 1; MemoryBarrier()` and hasWork(), still sees
/// _inboxSignal = 0 and parks. Seen here as: _inboxSignal = 1, one item in the inbox, _parked = 1, _wakePending = 0,
/// typically within a few hundred round trips. A copy of src/ with Interlocked.Exchange for the _inboxSignal stores
/// (in PostFromAnotherThread and in DrainInbox, which has the mirror race) ran 40 x 20k round trips without a hang.
let private pingPong =
    testCase "20k cross-thread round trips: each post from another thread wakes the parked shard (no lost wake-up)"
    <| fun () ->
        let rounds = 20_000
        let progress = { Value = 0 }
        let shardTid = { Value = 0 }

        let shard =
            Shard.Start(
                Func<Task<int * int64>>(fun () ->
                    task {
                        shardTid.Value <- Libc.gettid ()
                        let queue = Shard.CurrentTaskQueue
                        use turn = new SemaphoreSlim(0)
                        let current = { Value = TaskCompletionSource() }
                        let parksBefore = Shard.Stats.Parks

                        let helper =
                            Thread(
                                (fun () ->
                                    for _ in 1..rounds do
                                        turn.Wait()
                                        let answer = current.Value
                                        queue.Post((fun _ -> answer.SetResult()), null)),
                                IsBackground = true
                            )

                        helper.Start()

                        // No timer is pending while the shard waits: a lost wake-up hangs it instead of being hidden
                        // by a timer's park timeout.
                        while progress.Value < rounds do
                            current.Value <- TaskCompletionSource()
                            turn.Release() |> ignore
                            do! current.Value.Task
                            progress.Value <- progress.Value + 1

                        return progress.Value, Shard.Stats.Parks - parksBefore
                    })
            )

        let bound = TimeSpan.FromSeconds 10.0

        let finished =
            try
                shard.Completion.Wait bound
            with :? AggregateException ->
                true

        if not finished then
            // A lost wake-up shows as the shard thread blocked in io_uring_enter with a post in its inbox.
            failtestf
                "the shard hung after %d of %d round trips (no progress for %O); its thread blocked in io_uring_enter: %b"
                progress.Value
                rounds
                bound
                (Libc.isInIoUringEnter shardTid.Value)

        let completed, parks = shard.Completion.Result
        Expect.equal completed rounds "every round trip completed"
        Expect.isGreaterThan parks 0L "the shard parked between round trips (the wake-up path was exercised)"

let tests =
    testSequenced
    <| testList
        "cross-thread"
        [
            foreignTask
            spinning
            manyForeignTasks
            postFromThread
            sendFromThread
            pingPong
        ]

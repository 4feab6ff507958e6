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
        Queue = if Shard.IsOnShard then Shard.CurrentTaskQueue.Name else "(off the shard)"
        Thread = Environment.CurrentManagedThreadId
        ContextIsQueue = Shard.IsOnShard && obj.ReferenceEquals(SynchronizationContext.Current, Shard.CurrentTaskQueue)
    }

let private foreignTask =
    test "awaiting Task.Delay (completed on a timer thread) resumes on the shard, same queue, after a park" {
        let before, after, parks =
            runShard (fun () ->
                task {
                    let q = Shard.CreateTaskQueue("custom", Shares.Static 100, Latency.NotImportant)

                    return!
                        spawnInto q (fun () ->
                            task {
                                let before = here ()
                                let parksBefore = Shard.Stats.Parks
                                // Nothing else to do: the shard parks in io_uring until the timer thread posts back.
                                do! Task.Delay 20
                                let after = here ()
                                return before, after, Shard.Stats.Parks - parksBefore
                            })
                })

        Expect.isTrue before.OnShard "before the await, on the shard"
        Expect.equal before.Queue "custom" "before the await, in the queue the work was spawned into"
        Expect.isTrue before.ContextIsQueue "SynchronizationContext.Current is the running TaskQueue"
        Expect.isTrue after.OnShard "after awaiting a foreign Task, Shard.IsOnShard should still be true"
        Expect.equal after.Queue "custom" "after awaiting a foreign Task, the same task queue"
        Expect.equal after.Thread before.Thread "after awaiting a foreign Task, the same (shard) thread"
        Expect.isTrue after.ContextIsQueue "after the await, SynchronizationContext.Current is still the TaskQueue"
        Expect.isGreaterThan parks 0L "the shard should have parked while waiting for the timer thread"
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
                                    return if Environment.CurrentManagedThreadId = shardThread && Shard.IsOnShard then 0 else 1
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
                        Thread(
                            (fun () -> q.Post((fun _ -> ran.SetResult(here ())), null)),
                            IsBackground = true
                        )

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

let tests =
    testSequenced
    <| testList "cross-thread" [ foreignTask; manyForeignTasks; postFromThread; sendFromThread ]

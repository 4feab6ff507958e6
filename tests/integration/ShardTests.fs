/// Shards: Run and Start return main's result, spawned work runs on the shard and completes, in bulk too.
module Scipio.Integration.Tests.ShardTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Integration.Tests.Helpers

let private spawnMany =
    test "200k spawned tasks all complete in one shard" {
        let count = 200_000

        let sum, tasksRun =
            runShard (fun () ->
                task {
                    let spawned =
                        Array.init count (fun i ->
                            if i % 2 = 0 then
                                spawn (fun () -> Task.FromResult 1)
                            else
                                // Half of them suspend once, so their continuations go through the queue too.
                                spawn (fun () ->
                                    task {
                                        do! Shard.Yield()
                                        return 1
                                    }))

                    let! results = Task.WhenAll spawned
                    return Array.sum results, Shard.Stats.TasksRun
                })

        Expect.equal sum count "every spawned task should complete with its result (sum of results)"

        Expect.isGreaterThanOrEqual
            tasksRun
            (int64 count)
            "Stats.TasksRun should count at least one work item per spawned task"
    }

let private spawnedRunsLaterOnShard =
    test "spawned work runs on the same shard thread, after the spawner yields, in spawn order" {
        let order, sameThread, onShard =
            runShard (fun () ->
                task {
                    let order = Collections.Generic.List<int>()
                    let shardThread = Thread.CurrentThread.ManagedThreadId
                    let sameThread = { IsSet = true }
                    let onShard = { IsSet = true }

                    let spawned =
                        [|
                            for i in 1..5 ->
                                spawn (fun () ->
                                    if Thread.CurrentThread.ManagedThreadId <> shardThread then
                                        sameThread.IsSet <- false

                                    if not Shard.IsOnShard then
                                        onShard.IsSet <- false

                                    order.Add i
                                    Task.FromResult i)
                        |]

                    order.Add 0 // the spawner runs on until it awaits: spawning is not inline
                    let! _ = Task.WhenAll spawned
                    return List.ofSeq order, sameThread.IsSet, onShard.IsSet
                })

        Expect.equal
            order
            [ 0; 1; 2; 3; 4; 5 ]
            "spawned work runs after the spawner gives up the CPU, first spawned first"

        Expect.isTrue sameThread "spawned work should run on the shard's own thread"
        Expect.isTrue onShard "Shard.IsOnShard should be true in spawned work"
    }

let private runAndStart =
    test "Shard.Run returns main's result; Start's handle completes with it; a lone shard's Id is 0" {
        let fromRun =
            onNewThread "Shard.Run caller" (fun () -> Shard.Run(Func<Task<string>>(fun () -> task { return "hello" })))

        Expect.equal fromRun "hello" "Shard.Run returns what main returned"

        let a = Shard.Start(Func<Task<int>>(fun () -> task { return Shard.Id }))
        let b = Shard.Start(Func<Task<int>>(fun () -> task { return Shard.Id }))
        let idA = awaitBounded "shard a" shardTimeout a.Completion
        let idB = awaitBounded "shard b" shardTimeout b.Completion
        Expect.equal (idA, idB) (0, 0) "Id is a shard's index in its pool: every lone shard is 0"
        Expect.isFalse Shard.IsOnShard "the test runner's thread is not a shard"
    }

let private nonGenericMain =
    test "Shard.Run(Func<Task>) runs a main without a result" {
        let flag = { IsSet = false }

        onNewThread "Shard.Run caller" (fun () ->
            Shard.Run(Func<Task>(fun () -> task { flag.IsSet <- Shard.IsOnShard } :> Task)))

        Expect.isTrue flag.IsSet "main ran, on a shard"
    }

let private shardThreadName =
    test "ShardOptions.Name names the shard's thread" {
        let name =
            runShardWith (ShardOptions(Name = "scipio-test-shard")) (fun () ->
                task { return Thread.CurrentThread.Name })

        Expect.equal name "scipio-test-shard" "the shard thread's name"
    }

let tests =
    testSequenced
    <| testList
        "shard"
        [
            spawnMany
            spawnedRunsLaterOnShard
            runAndStart
            nonGenericMain
            shardThreadName
        ]

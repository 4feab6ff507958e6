/// Errors a user meets: shard APIs off a shard, exceptions from spawned work and from main, bad arguments to
/// queues, shares and options. Each says what was wrong, and the shard survives what it can survive.
module Scipio.Integration.Tests.ErrorTests

open System
open System.IO
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Integration.Tests.Helpers

/// A type no one else throws, so "rethrown with its own type" cannot pass by accident.
type SpawnedWorkFailed(message: string) =
    inherit Exception(message)

type MainFailed(message: string) =
    inherit Exception(message)

/// A cancellation of the user's own, with its own message: "rethrown with its own type" must keep it too.
type ShutdownRequested(message: string) =
    inherit OperationCanceledException(message)

let private offShard =
    let call (name: string) (f: unit -> 'T) =
        test $"%s{name} off a shard throws InvalidOperationException saying it must be called on a shard" {
            let e =
                expectExn<InvalidOperationException> $"%s{name} on the test runner's thread" (thrownBy f)

            Expect.stringContains e.Message "must be called on a shard" $"the message of %s{name}'s exception"
            Expect.stringContains e.Message name "the message names the member"
        }

    testList
        "off a shard"
        [
            call "Shard.Spawn" (fun () -> Shard.Spawn(Func<Task<int>>(fun () -> Task.FromResult 1)))
            call "Shard.Sleep" (fun () -> Shard.Sleep(TimeSpan.FromMilliseconds 1.0))
            call "Shard.Yield" (fun () -> Shard.Yield())
            call "Shard.YieldIfNeeded" (fun () -> Shard.YieldIfNeeded())
            call "Shard.CreateTaskQueue" (fun () -> Shard.CreateTaskQueue("q", Shares.Static 100, Latency.NotImportant))
            call "Shard.CurrentTaskQueue" (fun () -> Shard.CurrentTaskQueue)
            call "Shard.Stats" (fun () -> Shard.Stats)
            test "Shard.IsOnShard off a shard is false and does not throw" {
                Expect.isFalse Shard.IsOnShard "the test runner's thread is not a shard"
            }
            test "ShardHandle.Join on a shard throws InvalidOperationException (it would block the shard)" {
                let thrown =
                    runShard (fun () ->
                        task {
                            let inner = Shard.Start(Func<Task<int>>(fun () -> Task.FromResult 1))
                            let thrown = thrownBy (fun () -> inner.Join())
                            let! _ = inner.Completion
                            return thrown
                        })

                expectExn<InvalidOperationException> "Join on a shard" thrown |> ignore
            }
        ]

let private runOnShardThrows =
    test "Shard.Run on a shard throws InvalidOperationException (it would block the shard)" {
        let thrown =
            runShard (fun () ->
                task {
                    let started = Shard.Start(Func<Task<int>>(fun () -> Task.FromResult 0))
                    let! _ = started.Completion
                    return thrownBy (fun () -> Shard.Run(Func<Task<int>>(fun () -> Task.FromResult 1)))
                })

        let e = expectExn<InvalidOperationException> "Shard.Run on a shard" thrown
        Expect.stringContains e.Message "cannot be called on a shard" "the message says why"
    }

/// Regression (a bug this suite found, now fixed): Shard.Run is Start(main, options).Join() (Runtime/Shard.cs), so on a shard it starts a
/// new shard running main and only then throws from Join: the caller gets InvalidOperationException while main
/// runs anyway, unobserved (its result and exceptions are lost). Run should refuse before starting
/// (ShardExecutor.ThrowIfOnShard("Shard.Run") first).
let private runOnShard =
    testCase "Shard.Run on a shard refuses without starting a shard (main does not run)"
    <| fun () ->
        let gate = TaskCompletionSource<int>()

        let thrown, startedThreads =
            runShard (fun () ->
                task {
                    // A shard Run started would run main on a thread of this name until the gate opens.
                    let thrown =
                        thrownBy (fun () ->
                            Shard.Run(Func<Task<int>>(fun () -> gate.Task), ShardOptions(Name = "refused-run")))

                    let named =
                        Directory.GetDirectories "/proc/self/task"
                        |> Array.filter (fun t ->
                            try
                                File.ReadAllText(Path.Combine(t, "comm")).Trim() = "refused-run"
                            with _ ->
                                false)

                    return thrown, named.Length
                })

        gate.TrySetResult 0 |> ignore
        let e = expectExn<InvalidOperationException> "Shard.Run on a shard" thrown
        Expect.stringContains e.Message "cannot be called on a shard" "the message says why"
        Expect.equal startedThreads 0 "Shard.Run on a shard must not start a shard before refusing"

let private spawnedFailure =
    test "an exception in spawned work faults its Task with that exception; the shard continues" {
        let asyncThrow, syncThrow, afterwards =
            runShard (fun () ->
                task {
                    let! asyncThrow =
                        thrownByTask (fun () ->
                            spawn (fun () ->
                                task {
                                    do! Shard.Yield()
                                    return raise (SpawnedWorkFailed "async boom")
                                }))

                    // Throws before returning a Task at all.
                    let! syncThrow =
                        thrownByTask (fun () -> spawn (fun () -> raise (SpawnedWorkFailed "sync boom")))

                    let! afterwards = spawn (fun () -> task { return 7 })
                    return asyncThrow, syncThrow, afterwards
                })

        let e1 =
            expectExactExn<SpawnedWorkFailed> "awaiting spawned work that threw after a yield" asyncThrow

        Expect.equal e1.Message "async boom" "the spawned work's own exception"

        let e2 =
            expectExactExn<SpawnedWorkFailed> "awaiting spawned work that threw synchronously" syncThrow

        Expect.equal e2.Message "sync boom" "the spawned work's own exception"
        Expect.equal afterwards 7 "work spawned after the failures runs normally"
    }

let private mainFailure =
    test "an exception out of main is rethrown by Shard.Run with its own type" {
        let thrown =
            thrownBy (fun () ->
                onNewThread "Shard.Run caller" (fun () ->
                    Shard.Run(
                        Func<Task<int>>(fun () ->
                            task {
                                do! Shard.Sleep(TimeSpan.FromMilliseconds 1.0)
                                return raise (MainFailed "main failed")
                            })
                    )))

        let e = expectExactExn<MainFailed> "Shard.Run of a main that throws" thrown
        Expect.equal e.Message "main failed" "main's own exception, not a wrapper"

        let thrownNonGeneric =
            thrownBy (fun () ->
                onNewThread "Shard.Run caller" (fun () ->
                    Shard.Run(Func<Task>(fun () -> task { return raise (MainFailed "no result") } :> Task))))

        expectExactExn<MainFailed> "Shard.Run(Func<Task>) of a main that throws" thrownNonGeneric
        |> ignore
    }

let private mainCanceledIsOce =
    test "an OperationCanceledException out of main makes Shard.Run throw an OperationCanceledException" {
        let thrown =
            thrownBy (fun () ->
                onNewThread "Shard.Run caller" (fun () ->
                    Shard.Run(Func<Task<int>>(fun () -> task { return raise (ShutdownRequested "stopped") }))))

        expectExn<OperationCanceledException> "Shard.Run of a main that was canceled" thrown
        |> ignore
    }

/// Regression (a bug this suite found, now fixed): a canceled main loses its exception. SpawnedWork<T>.Finish (Runtime/SpawnedWork.cs) turns
/// a canceled inner Task into TrySetCanceled(token), dropping the OperationCanceledException itself, and
/// Shard.ShardThread (Runtime/Shard.cs) then calls done.SetCanceled() without even the token: Shard.Run throws a
/// bare TaskCanceledException("A task was canceled."). Awaiting the F# task directly, or Task.Run of it, rethrows
/// the original ShutdownRequested.
let private mainCanceled =
    testCase
        "an OperationCanceledException (subtype) out of main is rethrown by Shard.Run with its own type and message"
    <| fun () ->
        let thrown =
            thrownBy (fun () ->
                onNewThread "Shard.Run caller" (fun () ->
                    Shard.Run(
                        Func<Task<int>>(fun () -> task { return raise (ShutdownRequested "stopped by the operator") })
                    )))

        let e =
            expectExactExn<ShutdownRequested> "Shard.Run of a main that throws ShutdownRequested" thrown

        Expect.equal e.Message "stopped by the operator" "main's own message"

/// Regression (a bug this suite found, now fixed): the same loss for spawned work: SpawnedWork<T>.Finish completes the spawned Task with
/// TrySetCanceled(token), so its awaiter gets TaskCanceledException("A task was canceled.") instead of the
/// exception the work threw (e.g. Shard.Sleep's own "Shard.Sleep was canceled.").
let private spawnedCanceled =
    testCase
        "an OperationCanceledException (subtype) out of spawned work reaches its awaiter with its own type and message"
    <| fun () ->
        let thrown =
            runShard (fun () ->
                thrownByTask (fun () ->
                    spawn (fun () -> task { return raise (ShutdownRequested "spawned work stopped") })))

        let e =
            expectExactExn<ShutdownRequested> "awaiting spawned work that threw ShutdownRequested" thrown

        Expect.equal e.Message "spawned work stopped" "the spawned work's own message"

let private foreignQueue =
    test "SpawnInto a queue of another shard throws ArgumentException; null work throws ArgumentNullException" {
        let foreign, nullWork =
            runShard (fun () ->
                task {
                    let other =
                        Shard.Start(
                            Func<Task<TaskQueue>>(fun () ->
                                Task.FromResult(
                                    Shard.CreateTaskQueue("elsewhere", Shares.Static 100, Latency.NotImportant)
                                ))
                        )

                    let! elsewhere = other.Completion
                    let foreign = thrownBy (fun () -> spawnInto elsewhere (fun () -> Task.FromResult 1))

                    let nullWork =
                        thrownBy (fun () -> Shard.Spawn(Unchecked.defaultof<Func<Task<int>>>))

                    return foreign, nullWork
                })

        let e = expectExn<ArgumentException> "SpawnInto another shard's queue" foreign
        Expect.stringContains e.Message "another shard" "the message says the queue belongs elsewhere"
        expectExn<ArgumentNullException> "Spawn(null)" nullWork |> ignore
    }

let private queueArguments =
    test "CreateTaskQueue with a duplicate or empty name throws ArgumentException" {
        let duplicate, defaultName, empty, queueStillUsable =
            runShard (fun () ->
                task {
                    let q = Shard.CreateTaskQueue("twice", Shares.Static 100, Latency.NotImportant)

                    let create (name: string) () =
                        Shard.CreateTaskQueue(name, Shares.Static 100, Latency.NotImportant)

                    let duplicate = thrownBy (create "twice")
                    let defaultName = thrownBy (create "default")

                    let empty =
                        thrownBy (fun () -> Shard.CreateTaskQueue("", Shares.Static 100, Latency.NotImportant))

                    let! n = spawnInto q (fun () -> Task.FromResult 3)
                    return duplicate, defaultName, empty, n = 3
                })

        let e =
            expectExn<ArgumentException> "CreateTaskQueue with a name already used" duplicate

        Expect.stringContains e.Message "twice" "the message names the duplicate"

        expectExn<ArgumentException> "CreateTaskQueue named like the shard's default queue" defaultName
        |> ignore

        expectExn<ArgumentException> "CreateTaskQueue with an empty name" empty
        |> ignore

        Expect.isTrue queueStillUsable "the first queue named 'twice' still runs work"
    }

let private sharesAndLatency =
    test "Shares.Static outside 1..1000 and a non-positive latency budget throw ArgumentOutOfRangeException" {
        expectExn<ArgumentOutOfRangeException> "Shares.Static 0" (thrownBy (fun () -> Shares.Static 0))
        |> ignore

        expectExn<ArgumentOutOfRangeException> "Shares.Static 1001" (thrownBy (fun () -> Shares.Static 1001))
        |> ignore

        Expect.equal (Shares.Static 1).Current 1 "1 is the least valid share"
        Expect.equal (Shares.Static 1000).Current 1000 "1000 is the most"

        expectExn<ArgumentOutOfRangeException>
            "Latency.Matters TimeSpan.Zero"
            (thrownBy (fun () -> Latency.Matters TimeSpan.Zero))
        |> ignore
    }

let private options =
    test "ShardOptions setters reject bad values" {
        let rejects (what: string) (set: ShardOptions -> unit) =
            expectExn<ArgumentOutOfRangeException> what (thrownBy (fun () -> set (ShardOptions())))
            |> ignore

        rejects "RingEntries = 3 (not a power of two)" (fun o -> o.RingEntries <- 3)
        rejects "RingEntries = 0" (fun o -> o.RingEntries <- 0)
        rejects "RingEntries = 65536 (too many)" (fun o -> o.RingEntries <- 65536)
        rejects "PreemptInterval = 0" (fun o -> o.PreemptInterval <- TimeSpan.Zero)
        rejects "PreemptInterval = 2 s" (fun o -> o.PreemptInterval <- TimeSpan.FromSeconds 2.0)
        rejects "SpinBeforePark = -1 ms" (fun o -> o.SpinBeforePark <- TimeSpan.FromMilliseconds -1.0)

        expectExn<ArgumentException> "Name = \"\"" (thrownBy (fun () -> ShardOptions(Name = "")))
        |> ignore

        expectExn<ArgumentNullException>
            "Placement = null"
            (thrownBy (fun () -> ShardOptions(Placement = Unchecked.defaultof<Placement>)))
        |> ignore

        let o =
            ShardOptions(RingEntries = 2, PreemptInterval = TimeSpan.FromMicroseconds 50.0)

        Expect.equal o.RingEntries 2 "2 is a valid ring size"
        Expect.equal o.PreemptInterval (TimeSpan.FromMicroseconds 50.0) "50 µs is the shortest preempt interval"
    }

let tests =
    testSequenced
    <| testList
        "errors"
        [
            offShard
            runOnShardThrows
            runOnShard
            spawnedFailure
            mainFailure
            mainCanceledIsOce
            mainCanceled
            spawnedCanceled
            foreignQueue
            queueArguments
            sharesAndLatency
            options
        ]

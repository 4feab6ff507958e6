/// Shard.Sleep: never early (idle or beside a hog), canceled promptly from the shard or from another thread, and
/// the shard keeps working afterwards.
module Scipio.Integration.Tests.TimerTests

open System
open System.Diagnostics
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Integration.Tests.Helpers

/// How long a canceled sleep may take to return: a generous bound on "promptly" (the sleeps are 10 minutes long).
let private promptly = TimeSpan.FromSeconds 5.0

/// A sleep long enough that only its cancellation can end it within the shard's timeout.
let private forever = TimeSpan.FromMinutes 10.0

/// Sleeps `count` random delays of 0..20 ms; returns the ones that returned early as (requested, elapsed).
let private sleepRandomly (rng: Random) (count: int) =
    task {
        let early = Collections.Generic.List<TimeSpan * TimeSpan>()

        for _ in 1..count do
            let requested =
                TimeSpan.FromTicks(rng.NextInt64(0L, TimeSpan.FromMilliseconds(20.0).Ticks + 1L))

            let started = Stopwatch.GetTimestamp()
            do! Shard.Sleep requested
            let elapsed = Stopwatch.GetElapsedTime started

            if elapsed < requested then
                early.Add((requested, elapsed))

        return List.ofSeq early
    }

let private describeEarly (early: (TimeSpan * TimeSpan) list) =
    early
    |> List.truncate 5
    |> List.map (fun (r, e) -> $"asked {r.TotalMilliseconds:F3} ms, returned after {e.TotalMilliseconds:F3} ms")
    |> String.concat "; "

let private neverEarly =
    test "Sleep never returns early, idle and while a hog queue runs" {
        let seed = Random.Shared.Next()

        let idleEarly, busyEarly =
            runShard (fun () ->
                task {
                    let rng = Random seed
                    let! idleEarly = sleepRandomly rng 60
                    let q = Shard.CreateTaskQueue("hog", Shares.Static 100, Latency.NotImportant)
                    let stop = { IsSet = false }
                    let hog = spawnInto q (SchedulingTests.hog stop)
                    let! busyEarly = sleepRandomly rng 40
                    stop.IsSet <- true
                    let! _ = hog
                    return idleEarly, busyEarly
                })

        if not idleEarly.IsEmpty then
            failtestf
                "idle shard: %d sleeps returned early (seed %d): %s"
                idleEarly.Length
                seed
                (describeEarly idleEarly)

        if not busyEarly.IsEmpty then
            failtestf
                "beside a hog: %d sleeps returned early (seed %d): %s"
                busyEarly.Length
                seed
                (describeEarly busyEarly)
    }

/// Checks that the shard still sleeps and spawns after a cancellation; returns true when it does.
let private shardStillWorks () =
    task {
        let started = Stopwatch.GetTimestamp()
        do! Shard.Sleep(TimeSpan.FromMilliseconds 2.0)
        let slept = Stopwatch.GetElapsedTime started
        let! spawned = spawn (fun () -> Task.FromResult 42)
        return slept >= TimeSpan.FromMilliseconds 2.0 && spawned = 42
    }

/// Runs `sleepAndCancel` (which starts a long sleep and arranges its cancellation) on a shard; checks that the
/// sleep ended with OperationCanceledException, promptly, and that the shard works afterwards.
let private cancelsPromptly (how: string) (sleepAndCancel: CancellationTokenSource -> Task<unit>) =
    test $"a long Sleep canceled %s{how} ends with OperationCanceledException, promptly, and the shard works on" {
        let thrown, elapsed, worksAfter =
            runShard (fun () ->
                task {
                    use cts = new CancellationTokenSource()
                    let started = Stopwatch.GetTimestamp()
                    let! thrown = thrownByTask (fun () -> sleepAndCancel cts)
                    let elapsed = Stopwatch.GetElapsedTime started
                    let! worksAfter = shardStillWorks ()
                    return thrown, elapsed, worksAfter
                })

        let e = expectExn<OperationCanceledException> $"Sleep canceled %s{how}" thrown
        Expect.isTrue e.CancellationToken.IsCancellationRequested "the exception carries the canceled token"
        Expect.isLessThan elapsed promptly "the canceled sleep should return promptly, not at its deadline"
        Expect.isTrue worksAfter "after the cancellation the shard should still sleep and run spawned work"
    }

let private cancellation =
    testList
        "cancellation"
        [
            test "Sleep with an already canceled token throws OperationCanceledException" {
                let thrown =
                    runShard (fun () ->
                        task {
                            use cts = new CancellationTokenSource()
                            cts.Cancel()

                            return!
                                thrownByTask (fun () -> task { do! Shard.Sleep(TimeSpan.FromSeconds 1.0, cts.Token) })
                        })

                expectExn<OperationCanceledException> "Sleep with a canceled token" thrown
                |> ignore
            }

            cancelsPromptly "by CancelAfter (the token's timer thread)" (fun cts ->
                task {
                    cts.CancelAfter(TimeSpan.FromMilliseconds 20.0)
                    do! Shard.Sleep(forever, cts.Token)
                })

            cancelsPromptly "by a spawned task on the shard" (fun cts ->
                task {
                    let _canceler =
                        spawn (fun () ->
                            task {
                                // After a turn of the loop: main has armed its sleep by then.
                                do! Shard.Yield()
                                cts.Cancel()
                            })

                    do! Shard.Sleep(forever, cts.Token)
                })

            cancelsPromptly "from a plain Thread" (fun cts ->
                task {
                    // The sleep is armed before the other thread exists, so its cancellation takes the cross-thread path.
                    let sleeping = Shard.Sleep(forever, cts.Token)
                    Thread((fun () -> cts.Cancel()), IsBackground = true).Start()
                    do! sleeping
                })

            cancelsPromptly "with an infinite delay" (fun cts ->
                task {
                    let _canceler = spawn (fun () -> task { cts.Cancel() })
                    do! Shard.Sleep(Timeout.InfiniteTimeSpan, cts.Token)
                })

            test "canceling the token after the sleep completed does nothing; the next sleep is not affected" {
                let ok =
                    runShard (fun () ->
                        task {
                            use cts = new CancellationTokenSource()
                            do! Shard.Sleep(TimeSpan.FromMilliseconds 1.0, cts.Token)
                            cts.Cancel()
                            let started = Stopwatch.GetTimestamp()
                            do! Shard.Sleep(TimeSpan.FromMilliseconds 3.0)
                            return Stopwatch.GetElapsedTime started >= TimeSpan.FromMilliseconds 3.0
                        })

                Expect.isTrue ok "a sleep after a late cancel of another token should run its full time"
            }
        ]

let private arguments =
    // -1 ms is Timeout.InfiniteTimeSpan, which Sleep documents as "wait for cancellation": not tested as negative.
    test "a negative delay throws ArgumentOutOfRangeException; zero completes" {
        let thrown, oneTick, zeroDone =
            runShard (fun () ->
                task {
                    let thrown = thrownBy (fun () -> Shard.Sleep(TimeSpan.FromMilliseconds -2.0))
                    let oneTick = thrownBy (fun () -> Shard.Sleep(TimeSpan.FromTicks -1L))
                    do! Shard.Sleep TimeSpan.Zero
                    return thrown, oneTick, true
                })

        expectExn<ArgumentOutOfRangeException> "Sleep(-2 ms)" thrown |> ignore
        expectExn<ArgumentOutOfRangeException> "Sleep(-1 tick)" oneTick |> ignore
        Expect.isTrue zeroDone "Sleep(0) completes"
    }

/// The heap holds live timers only: a canceled sleep leaves it at once (not at its deadline, an hour away), and
/// once the shard parks, the heap gives back what the peak made it grow to.
let private canceledLeaveTheHeap =
    test "100,000 canceled hour-long sleeps leave the heap empty at once, and the heap shrinks when the shard parks" {
        let armed, afterCancel, peakCapacity, capacityAfterPark =
            runShard (fun () ->
                task {
                    use cts = new CancellationTokenSource()

                    let sleeps =
                        Array.init 100_000 (fun _ -> Shard.Sleep(TimeSpan.FromHours 1.0, cts.Token).AsTask())

                    let armed = Shard.Stats.PendingTimers
                    let peakCapacity = Scipio.Runtime.ShardExecutor.Require("test").TimerCapacity
                    cts.Cancel() // on the shard: each sleep's callback takes it out of the heap right here
                    let afterCancel = Shard.Stats.PendingTimers

                    for s in sleeps do
                        try
                            do! s
                        with :? OperationCanceledException ->
                            ()

                    // Idle until the shard has parked (it trims what the peak left behind then). A sleep may end
                    // without a park when the loop's own turn outlasts it (the first idle turn may still be JIT-compiling).
                    let parks = Shard.Stats.Parks

                    while Shard.Stats.Parks = parks do
                        do! Shard.Sleep(TimeSpan.FromMilliseconds 1.0)

                    return armed, afterCancel, peakCapacity, Scipio.Runtime.ShardExecutor.Require("test").TimerCapacity
                })

        Expect.equal armed 100_000 "all armed"
        Expect.equal afterCancel 0 "all gone the moment they were canceled"
        Expect.isGreaterThanOrEqual peakCapacity 100_000 "the heap grew for the peak"
        Expect.isLessThanOrEqual capacityAfterPark 1024 "and shrank back once the shard parked"
    }

let tests =
    testSequenced
    <| testList "timers" [ neverEarly; cancellation; arguments; canceledLeaveTheHeap ]

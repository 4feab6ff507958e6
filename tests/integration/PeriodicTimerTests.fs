/// ShardPeriodicTimer and the timer actions (Shard.RunAfter, RunAt, RunEvery): ticks never early and on their grid,
/// PeriodicTimer's shape (a missed tick completes the next wait at once, Dispose ends a wait with false, one wait at a
/// time), actions in the queue they were given, cancel that stops them and frees their heap entry at once, and the
/// argument and shard checks. Bounds on lateness here are generous ("before the deadline plus a period"), never a
/// measurement: the bench measures.
module Scipio.Integration.Tests.PeriodicTimerTests

open System
open System.Diagnostics
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Integration.Tests.Helpers

/// A count shared by work on one shard (one thread: no synchronization needed).
type Counter = { mutable N: int }

/// A value shared by work on one shard and the closures it creates (a `let mutable` cannot be captured).
type Cell<'T> = { mutable V: 'T }

/// The Stopwatch timestamp `span` after `t`.
let private plus (t: int64) (span: TimeSpan) =
    t + int64 (span.TotalSeconds * float Stopwatch.Frequency)

let private toMs (ticks: int64) =
    float ticks * 1000.0 / float Stopwatch.Frequency

let private action (f: unit -> unit) = Action f

let private asyncAction (f: unit -> Task<unit>) = Func<Task>(fun () -> f () :> Task)

// ---- ShardPeriodicTimer ----

let private noDrift =
    test
        "100 ticks of 10 ms with 3 ms of work each: never early, and no drift (the last ticks within a period of their grid points)" {
        let period = ms 10.0

        let before, after, ticks =
            runShard (fun () ->
                task {
                    let before = Stopwatch.GetTimestamp()
                    use timer = Shard.CreatePeriodicTimer period
                    let after = Stopwatch.GetTimestamp()
                    let ticks = Collections.Generic.List<int64>()

                    while ticks.Count < 100 do
                        // Work between ticks: a timer that re-armed itself "one period from the wake" would drift by
                        // this much every tick (300 ms over the run).
                        spin (ms 3.0)
                        let! ticked = timer.WaitForNextTickAsync()

                        if not ticked then
                            failtest "the timer stopped ticking"

                        ticks.Add(Stopwatch.GetTimestamp())

                    return before, after, ticks
                })

        for i in 0 .. ticks.Count - 1 do
            let grid = plus before (TimeSpan.FromTicks(period.Ticks * int64 (i + 1)))

            if ticks[i] < grid then
                failtestf "tick %d came %.3f ms early" (i + 1) (toMs (grid - ticks[i]))

        // Drift is systematic: it shows in every late tick alike, where one slow wake shows in one. So the least
        // lateness over the last ten ticks must stay under a period (a timer that re-armed one period after each
        // wake would be ~270 ms late by then).
        let lateness =
            [
                for i in 90..99 -> ticks[i] - plus after (TimeSpan.FromTicks(period.Ticks * int64 (i + 1)))
            ]
            |> List.min

        Expect.isLessThan
            (toMs lateness)
            period.TotalMilliseconds
            "ticks 91 to 100 should come within a period of their grid points (no drift)"
    }

let private missedTicks =
    test "a tick nobody waited for completes the next wait at once; three missed ticks count as one" {
        let period = ms 20.0

        let firstAtOnce, secondAtOnce, second, before =
            runShard (fun () ->
                task {
                    let before = Stopwatch.GetTimestamp()
                    use timer = Shard.CreatePeriodicTimer period
                    spin (ms 70.0) // 3.5 periods: ticks at 20, 40 and 60 ms pass unwatched
                    let first = timer.WaitForNextTickAsync()
                    let firstAtOnce = first.IsCompleted
                    let! _ = first
                    let next = timer.WaitForNextTickAsync()
                    let secondAtOnce = next.IsCompleted
                    let! _ = next
                    return firstAtOnce, secondAtOnce, Stopwatch.GetTimestamp(), before
                })

        Expect.isTrue firstAtOnce "the first wait should complete at once: ticks came while nobody waited"
        Expect.isFalse secondAtOnce "the missed ticks count as one: the second wait should wait for the 80 ms point"

        Expect.isGreaterThanOrEqual
            second
            (plus before (ms 80.0))
            "the second tick is the 80 ms grid point, not earlier"
    }

let private disposeEndsWait =
    test
        "Dispose ends a pending wait with false (on the shard and from another thread); later waits return false; no timer left" {
        let onShard, fromThread, later, timersAfter =
            runShard (fun () ->
                task {
                    let timer = Shard.CreatePeriodicTimer(TimeSpan.FromHours 1.0)
                    let pending = timer.WaitForNextTickAsync()
                    let _disposer = spawn (fun () -> task { timer.Dispose() })
                    let! onShard = pending

                    let other = Shard.CreatePeriodicTimer(TimeSpan.FromHours 1.0)
                    let pending = other.WaitForNextTickAsync()
                    Thread((fun () -> other.Dispose()), IsBackground = true).Start()
                    let! fromThread = pending

                    let! later = timer.WaitForNextTickAsync()
                    timer.Dispose() // twice: nothing happens
                    return onShard, fromThread, later, pendingTimers ()
                })

        Expect.isFalse onShard "Dispose on the shard should end the pending wait with false"
        Expect.isFalse fromThread "Dispose from another thread should end the pending wait with false"
        Expect.isFalse later "a wait after Dispose should return false"
        Expect.equal timersAfter 0 "disposed timers leave the heap"
    }

let private canceledWait =
    test "a canceled wait throws OperationCanceledException and leaves no timer; the timer keeps ticking" {
        let thrown, timersAfterCancel, tickedAfter, alreadyCanceled =
            runShard (fun () ->
                task {
                    use timer = Shard.CreatePeriodicTimer(ms 50.0)
                    use cts = new CancellationTokenSource()
                    let pending = timer.WaitForNextTickAsync cts.Token
                    let _canceler = spawn (fun () -> task { cts.Cancel() })
                    let! thrown = thrownByTask (fun () -> pending.AsTask())
                    let timersAfterCancel = pendingTimers ()
                    let! tickedAfter = timer.WaitForNextTickAsync()

                    let! alreadyCanceled =
                        thrownByTask (fun () -> timer.WaitForNextTickAsync(cts.Token).AsTask())

                    return thrown, timersAfterCancel, tickedAfter, alreadyCanceled
                })

        expectExn<OperationCanceledException> "a canceled WaitForNextTickAsync" thrown
        |> ignore

        Expect.equal timersAfterCancel 0 "the canceled wait's heap entry is gone at once"
        Expect.isTrue tickedAfter "the timer still ticks after a canceled wait"

        expectExn<OperationCanceledException> "a wait with a canceled token" alreadyCanceled
        |> ignore
    }

let private oneWaitAtATime =
    test "a second wait while one is pending throws InvalidOperationException" {
        let thrown =
            runShard (fun () ->
                task {
                    use timer = Shard.CreatePeriodicTimer(ms 5.0)
                    let pending = timer.WaitForNextTickAsync()
                    let thrown = thrownBy (fun () -> timer.WaitForNextTickAsync())
                    let! _ = pending
                    return thrown
                })

        expectExn<InvalidOperationException> "a concurrent WaitForNextTickAsync" thrown
        |> ignore
    }

let private periodSetter =
    test "setting Period restarts the grid: the pending wait waits one new period from then" {
        let set, ticked, period =
            runShard (fun () ->
                task {
                    use timer = Shard.CreatePeriodicTimer(TimeSpan.FromHours 1.0)
                    let pending = timer.WaitForNextTickAsync()
                    let set = Stopwatch.GetTimestamp()
                    timer.Period <- ms 5.0
                    let! _ = pending
                    return set, Stopwatch.GetTimestamp(), timer.Period
                })

        Expect.equal period (ms 5.0) "Period reads back"

        Expect.isGreaterThanOrEqual
            ticked
            (plus set (ms 5.0))
            "the tick comes one new period after the change, not before"

        Expect.isLessThan (toMs (ticked - set)) 5_000.0 "and not an hour later"
    }

// ---- timer actions ----

let private runAfterInQueue =
    test "RunAfter runs once, not before its time, in the queue given (or the calling one); Completion succeeds" {
        let queueName, defaultName, late, runs, timersAfter =
            runShard (fun () ->
                task {
                    let q = Shard.CreateTaskQueue("timed", Shares.Static 100, Latency.NotImportant)
                    let seen = { V = "" }
                    let started = Stopwatch.GetTimestamp()
                    let ranAt = { V = 0L }

                    let timer =
                        Shard.RunAfter(
                            ms 5.0,
                            action (fun () ->
                                seen.V <- Shard.CurrentTaskQueue.Name
                                ranAt.V <- Stopwatch.GetTimestamp()),
                            q
                        )

                    do! timer.Completion

                    // Created from work in another queue, without naming one: it runs there.
                    let other = Shard.CreateTaskQueue("caller", Shares.Static 100, Latency.NotImportant)
                    let seenDefault = { V = "" }

                    let! inner =
                        spawnInto other (fun () ->
                            task {
                                return
                                    Shard.RunAfter(
                                        TimeSpan.Zero,
                                        action (fun () -> seenDefault.V <- Shard.CurrentTaskQueue.Name)
                                    )
                            })

                    do! inner.Completion
                    return seen.V, seenDefault.V, ranAt.V - plus started (ms 5.0), timer.RunCount, pendingTimers ()
                })

        Expect.equal queueName "timed" "the action runs in the queue given"
        Expect.equal defaultName "caller" "without a queue, it runs in the calling one"
        Expect.isGreaterThanOrEqual late 0L "never before its time"
        Expect.equal runs 1L "once"
        Expect.equal timersAfter 0 "no timer left"
    }

let private runAt =
    test "RunAt: a time already passed runs at once; a time 5 ms ahead runs no earlier" {
        let pastRan, aheadLate =
            runShard (fun () ->
                task {
                    let past = Shard.RunAt(DateTimeOffset.UtcNow.AddHours(-1.0), action ignore)
                    do! past.Completion
                    let target = DateTimeOffset.UtcNow.AddMilliseconds 5.0
                    let ranAt = { V = DateTimeOffset.MinValue }
                    let ahead = Shard.RunAt(target, action (fun () -> ranAt.V <- DateTimeOffset.UtcNow))
                    do! ahead.Completion
                    return past.RunCount, ranAt.V - target
                })

        Expect.equal pastRan 1L "ran"
        // The wall clock is read once, when the timer is set; allow for its resolution and a clock step.
        Expect.isGreaterThan aheadLate (ms -1.0) "not (noticeably) before the time asked"
    }

let private runEveryCancelFromInside =
    test
        "RunEvery runs N times in its queue, then a Cancel from the action stops it: N runs, Completion canceled, no timer" {
        let runs, queues, completion, timersAfter, activeAfter =
            runShard (fun () ->
                task {
                    let q = Shard.CreateTaskQueue("repeat", Shares.Static 100, Latency.NotImportant)
                    let count = { N = 0 }
                    let queues = Collections.Generic.HashSet<string>()

                    let timer =
                        {
                            V = Unchecked.defaultof<ShardTimerAction>
                        }

                    timer.V <-
                        Shard.RunEvery(
                            ms 2.0,
                            action (fun () ->
                                count.N <- count.N + 1
                                queues.Add Shard.CurrentTaskQueue.Name |> ignore

                                if count.N = 10 then
                                    timer.V.Cancel()),
                            q
                        )

                    let! completion = thrownByTask (fun () -> task { do! timer.V.Completion })
                    return count.N, List.ofSeq queues, completion, pendingTimers (), timer.V.IsActive
                })

        Expect.equal runs 10 "exactly the runs before the cancel"
        Expect.equal queues [ "repeat" ] "every run in the queue given"

        expectExn<OperationCanceledException> "Completion after Cancel" completion
        |> ignore

        Expect.equal timersAfter 0 "no timer left"
        Expect.isFalse activeAfter "not active"
    }

let private runEveryCancelFromOutside =
    test "RunEvery canceled from the caller: no run after Cancel, the heap entry gone at once" {
        let atCancel, afterWindow, timersAfterCancel =
            runShard (fun () ->
                task {
                    let count = { N = 0 }
                    let timer = Shard.RunEvery(ms 1.0, action (fun () -> count.N <- count.N + 1))

                    while count.N < 5 do
                        do! Shard.Sleep(ms 1.0)

                    timer.Cancel()
                    let timersAfterCancel = pendingTimers ()
                    let atCancel = count.N
                    // Twenty periods of watching: a run after Cancel would show here.
                    do! Shard.Sleep(ms 20.0)
                    return atCancel, count.N, timersAfterCancel
                })

        Expect.isGreaterThanOrEqual atCancel 5 "it ran"
        Expect.equal afterWindow atCancel "no run after Cancel"
        Expect.equal timersAfterCancel 0 "the heap entry is removed at Cancel"
    }

let private asyncRunsDoNotOverlap =
    test "RunEvery with an async action that outlasts its period: runs never overlap, and the ticks stay on the grid" {
        let maxConcurrent, runs, firstStarts, created =
            runShard (fun () ->
                task {
                    let running = { N = 0 }
                    let most = { N = 0 }
                    let starts = Collections.Generic.List<int64>()
                    let created = Stopwatch.GetTimestamp()

                    let timer =
                        {
                            V = Unchecked.defaultof<ShardTimerAction>
                        }

                    timer.V <-
                        Shard.RunEvery(
                            ms 2.0,
                            asyncAction (fun () ->
                                task {
                                    starts.Add(Stopwatch.GetTimestamp())
                                    running.N <- running.N + 1
                                    most.N <- max most.N running.N
                                    do! Shard.Sleep(ms 5.0) // two and a half periods
                                    running.N <- running.N - 1

                                    if starts.Count = 6 then
                                        timer.V.Cancel()
                                })
                        )

                    let! _ = thrownByTask (fun () -> task { do! timer.V.Completion })
                    return most.N, timer.V.RunCount, List.ofSeq starts, created
                })

        Expect.equal maxConcurrent 1 "one run at a time"
        Expect.equal runs 6L "six runs, then the cancel from the sixth"

        for i, start in List.indexed firstStarts do
            Expect.isGreaterThanOrEqual
                start
                (plus created (TimeSpan.FromTicks((ms 2.0).Ticks * int64 (i + 1))))
                $"run {i + 1} never before its grid point"
    }

let private actionThrows =
    test "an action that throws faults Completion with its exception and stops repeating" {
        let thrown, runs, timersAfter =
            runShard (fun () ->
                task {
                    let timer =
                        Shard.RunEvery(ms 1.0, action (fun () -> raise (FormatException "boom")))

                    let! thrown = thrownByTask (fun () -> task { do! timer.Completion })
                    do! Shard.Sleep(ms 5.0)
                    return thrown, timer.RunCount, pendingTimers ()
                })

        let e = expectExn<FormatException> "Completion of an action that threw" thrown
        Expect.equal e.Message "boom" "its own exception"
        Expect.equal runs 1L "no run after the exception"
        Expect.equal timersAfter 0 "no timer left"
    }

let private cancelBeforeTime =
    test
        "Cancel before the time (on the shard, or from another thread): the action never runs, Completion canceled, no timer" {
        let ran, onShard, fromThread, timersAfter =
            runShard (fun () ->
                task {
                    let ran = { N = 0 }

                    let a =
                        Shard.RunAfter(TimeSpan.FromHours 1.0, action (fun () -> ran.N <- ran.N + 1))

                    let b =
                        Shard.RunAfter(TimeSpan.FromHours 1.0, action (fun () -> ran.N <- ran.N + 1))

                    a.Cancel()
                    a.Cancel() // twice: nothing more
                    Thread((fun () -> b.Dispose()), IsBackground = true).Start()
                    let! onShard = thrownByTask (fun () -> task { do! a.Completion })
                    let! fromThread = thrownByTask (fun () -> task { do! b.Completion })
                    return ran.N, onShard, fromThread, pendingTimers ()
                })

        Expect.equal ran 0 "never ran"

        expectExn<OperationCanceledException> "Completion canceled on the shard" onShard
        |> ignore

        expectExn<OperationCanceledException> "Completion canceled from another thread" fromThread
        |> ignore

        Expect.equal timersAfter 0 "no timer left"
    }

let private manyCanceled =
    test "100,000 hour-long timer actions and periodic timers, canceled and disposed, leave the heap empty" {
        let armed, afterCancel =
            runShard (fun () ->
                task {
                    let actions =
                        Array.init 50_000 (fun _ -> Shard.RunAfter(TimeSpan.FromHours 1.0, action ignore))

                    let timers =
                        Array.init 50_000 (fun _ -> Shard.CreatePeriodicTimer(TimeSpan.FromHours 1.0))

                    let waits = timers |> Array.map (fun t -> t.WaitForNextTickAsync().AsTask())
                    let armed = pendingTimers ()

                    for a in actions do
                        a.Cancel()

                    for t in timers do
                        t.Dispose()

                    let afterCancel = pendingTimers ()
                    let! _ = Task.WhenAll waits
                    return armed, afterCancel
                })

        Expect.equal armed 100_000 "all armed"
        Expect.equal afterCancel 0 "all gone at once"
    }

// ---- arguments and shards ----

let private badArguments =
    test "a zero, negative or infinite period, a negative or infinite delay: ArgumentOutOfRangeException" {
        let thrown =
            runShard (fun () ->
                task {
                    use timer = Shard.CreatePeriodicTimer(ms 5.0)

                    return
                        [
                            "CreatePeriodicTimer(0)", thrownBy (fun () -> Shard.CreatePeriodicTimer TimeSpan.Zero)
                            "CreatePeriodicTimer(-1 tick)",
                            thrownBy (fun () -> Shard.CreatePeriodicTimer(TimeSpan.FromTicks -1L))
                            "CreatePeriodicTimer(infinite)",
                            thrownBy (fun () -> Shard.CreatePeriodicTimer Timeout.InfiniteTimeSpan)
                            "Period <- 0", thrownBy (fun () -> timer.Period <- TimeSpan.Zero)
                            "Period <- infinite", thrownBy (fun () -> timer.Period <- Timeout.InfiniteTimeSpan)
                            "RunEvery(0)", thrownBy (fun () -> Shard.RunEvery(TimeSpan.Zero, action ignore))
                            "RunEvery(-5 ms)", thrownBy (fun () -> Shard.RunEvery(ms -5.0, action ignore))
                            "RunEvery(infinite)",
                            thrownBy (fun () -> Shard.RunEvery(Timeout.InfiniteTimeSpan, action ignore))
                            "RunAfter(-5 ms)", thrownBy (fun () -> Shard.RunAfter(ms -5.0, action ignore))
                            "RunAfter(infinite)",
                            thrownBy (fun () -> Shard.RunAfter(Timeout.InfiniteTimeSpan, action ignore))
                        ]
                        |> List.map (fun (what, e) -> what, e, pendingTimers ())
                })

        for what, e, timers in thrown do
            expectExn<ArgumentOutOfRangeException> what e |> ignore
            Expect.equal timers 0 $"%s{what} leaves no timer"
    }

let private offShard =
    test "off a shard, or on another shard: InvalidOperationException; a queue of another shard: ArgumentException" {
        let timer, queueOfA =
            runShard (fun () -> task { return Shard.CreatePeriodicTimer(ms 5.0), Shard.CurrentTaskQueue })

        let offShard =
            [
                "CreatePeriodicTimer", thrownBy (fun () -> Shard.CreatePeriodicTimer(ms 5.0))
                "RunAfter", thrownBy (fun () -> Shard.RunAfter(ms 5.0, action ignore))
                "RunEvery", thrownBy (fun () -> Shard.RunEvery(ms 5.0, action ignore))
                "RunAt", thrownBy (fun () -> Shard.RunAt(DateTimeOffset.UtcNow, action ignore))
                "WaitForNextTickAsync off the shard", thrownBy (fun () -> timer.WaitForNextTickAsync())
            ]

        for what, e in offShard do
            expectExn<InvalidOperationException> what e |> ignore

        let otherShard, otherQueue =
            runShard (fun () ->
                task {
                    return
                        thrownBy (fun () -> timer.WaitForNextTickAsync()),
                        thrownBy (fun () -> Shard.RunAfter(ms 5.0, action ignore, queueOfA))
                })

        let e =
            expectExn<InvalidOperationException> "WaitForNextTickAsync on another shard" otherShard

        Expect.stringContains e.Message "belongs to the shard that created it" "the message says whose timer it is"

        expectExn<ArgumentException> "RunAfter into another shard's queue" otherQueue
        |> ignore
    }

let tests =
    testSequenced
    <| testList
        "periodic timers and timer actions"
        [
            noDrift
            missedTicks
            disposeEndsWait
            canceledWait
            oneWaitAtATime
            periodSetter
            runAfterInQueue
            runAt
            runEveryCancelFromInside
            runEveryCancelFromOutside
            asyncRunsDoNotOverlap
            actionThrows
            cancelBeforeTime
            manyCanceled
            badArguments
            offShard
        ]

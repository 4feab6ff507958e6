/// Shard.WithTimeout: the work's outcome when it ends in time, TimeoutException at the deadline (not before) with
/// the token canceled, and no timer left behind either way (the shard's PendingTimers).
module Scipio.Integration.Tests.TimeoutTests

open System
open System.Diagnostics
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Integration.Tests.Helpers

/// A generous bound on "at the deadline": the work would otherwise run for minutes.
let private promptly = TimeSpan.FromSeconds 5.0

/// A token as the work saw it, kept for checks after the call.
type private Seen = { mutable Token: CancellationToken }

let private inTime =
    test "work that completes in time returns its value, its token never canceled, and leaves no timer" {
        let value, canceled, timersAfter, syncValue, syncTimers =
            runShard (fun () ->
                task {
                    let seen = { Token = CancellationToken.None }

                    let! value =
                        Shard.WithTimeout(
                            TimeSpan.FromMinutes 10.0,
                            fun ct ->
                                task {
                                    seen.Token <- ct
                                    do! Shard.Sleep(ms 2.0, ct)
                                    return 42
                                }
                        )

                    let timersAfter = pendingTimers ()
                    // Completed synchronously: the deadline is disarmed before the call returns.
                    let! syncValue =
                        Shard.WithTimeout(TimeSpan.FromMinutes 10.0, fun _ -> Task.FromResult 7)

                    return value, seen.Token.IsCancellationRequested, timersAfter, syncValue, pendingTimers ()
                })

        Expect.equal value 42 "the work's value"
        Expect.isFalse canceled "the token was not canceled"
        Expect.equal timersAfter 0 "no timer left after an async work"
        Expect.equal syncValue 7 "a synchronous work's value"
        Expect.equal syncTimers 0 "no timer left after a synchronous work"
    }

let private atDeadline =
    test
        "work that outlasts its timeout: TimeoutException at the deadline, not before; the token canceled; no timer left" {
        let thrown, elapsed, canceled, workOutcome, timersAfter =
            runShard (fun () ->
                task {
                    let seen = { Token = CancellationToken.None }
                    let workDone = TaskCompletionSource<exn option>()
                    let started = Stopwatch.GetTimestamp()

                    let! thrown =
                        thrownByTask (fun () ->
                            Shard.WithTimeout(
                                ms 20.0,
                                fun ct ->
                                    task {
                                        seen.Token <- ct

                                        let! outcome =
                                            thrownByTask (fun () ->
                                                task { do! Shard.Sleep(TimeSpan.FromMinutes 10.0, ct) })

                                        workDone.SetResult outcome
                                        return 1
                                    }
                            ))

                    let elapsed = Stopwatch.GetElapsedTime started
                    let! workOutcome = workDone.Task
                    return thrown, elapsed, seen.Token.IsCancellationRequested, workOutcome, pendingTimers ()
                })

        let e = expectExn<TimeoutException> "WithTimeout past its deadline" thrown
        Expect.stringContains e.Message "did not complete within" "the message says what happened"
        Expect.isGreaterThanOrEqual elapsed (ms 20.0) "not before the deadline"
        Expect.isLessThan elapsed promptly "at the deadline, not when the work would have ended"
        Expect.isTrue canceled "the work's token was canceled at the deadline"

        expectExn<OperationCanceledException> "the work's sleep, its token canceled" workOutcome
        |> ignore

        Expect.equal timersAfter 0 "no timer left: neither the deadline nor the work's canceled sleep"
    }

let private ignoresToken =
    test "work that ignores its token: the TimeoutException still comes at the deadline" {
        let thrown, elapsed, workResult =
            runShard (fun () ->
                task {
                    let work =
                        task {
                            do! Shard.Sleep(ms 300.0)
                            return 5
                        }

                    let started = Stopwatch.GetTimestamp()
                    let! thrown = thrownByTask (fun () -> Shard.WithTimeout(ms 10.0, fun _ -> work))
                    let elapsed = Stopwatch.GetElapsedTime started
                    let! workResult = work
                    return thrown, elapsed, workResult
                })

        expectExn<TimeoutException> "WithTimeout around work that ignores its token" thrown
        |> ignore

        Expect.isLessThan elapsed (ms 300.0) "the caller does not wait for the work"
        Expect.equal workResult 5 "the work itself ran on and finished"
    }

let private failsInTime =
    test "work that fails in time: its own exception (thrown at once or later), and no timer left" {
        let later, atOnce, timers =
            runShard (fun () ->
                task {
                    let! later =
                        thrownByTask (fun () ->
                            Shard.WithTimeout(
                                TimeSpan.FromMinutes 10.0,
                                fun _ ->
                                    task {
                                        do! Shard.Yield()
                                        return raise (FormatException "later")
                                    }
                            ))

                    let! atOnce =
                        thrownByTask (fun () ->
                            Shard.WithTimeout(
                                TimeSpan.FromMinutes 10.0,
                                Func<CancellationToken, Task<int>>(fun _ -> raise (FormatException "at once"))
                            ))

                    return later, atOnce, pendingTimers ()
                })

        Expect.equal (expectExn<FormatException> "a failure after an await" later).Message "later" "its exception"
        Expect.equal (expectExn<FormatException> "a synchronous failure" atOnce).Message "at once" "its exception"
        Expect.equal timers 0 "no timer left"
    }

let private nonGeneric =
    test "the non-generic overload: completes in time, or throws TimeoutException at the deadline" {
        let done', thrown, timers =
            runShard (fun () ->
                task {
                    let ran = { Token = CancellationToken.None }

                    do!
                        Shard.WithTimeout(
                            TimeSpan.FromMinutes 10.0,
                            Func<CancellationToken, Task>(fun ct ->
                                task {
                                    ran.Token <- ct
                                    do! Shard.Sleep(ms 1.0, ct)
                                })
                        )

                    let! thrown =
                        thrownByTask (fun () ->
                            task {
                                do!
                                    Shard.WithTimeout(
                                        ms 5.0,
                                        Func<CancellationToken, Task>(fun ct ->
                                            Shard.Sleep(TimeSpan.FromMinutes 10.0, ct).AsTask())
                                    )
                            })

                    return ran.Token.CanBeCanceled, thrown, pendingTimers ()
                })

        Expect.isTrue done' "the work ran with a cancelable token"

        expectExn<TimeoutException> "the non-generic overload past its deadline" thrown
        |> ignore

        Expect.equal timers 0 "no timer left"
    }

let private completedBeforeDeadlineWins =
    test "work that completed before the deadline wins, even when the deadline passes before its continuation runs" {
        let result, timers =
            runShard (fun () ->
                task {
                    let answer = TaskCompletionSource<int>()
                    let other = Shard.CreateTaskQueue("other", Shares.Static 100, Latency.NotImportant)

                    // Another queue completes the work's Task, then holds the shard past the deadline: the caller's
                    // continuation is queued, the deadline comes due, and the run loop sees both at once.
                    let _completer =
                        spawnInto other (fun () ->
                            task {
                                answer.SetResult 99
                                spin (ms 20.0)
                            })

                    let! result = Shard.WithTimeout(ms 5.0, fun _ -> answer.Task)
                    return result, pendingTimers ()
                })

        Expect.equal result 99 "the work's value, not a TimeoutException"
        Expect.equal timers 0 "no timer left"
    }

let private argumentsAndShard =
    test
        "a negative timeout: ArgumentOutOfRangeException; null work: ArgumentNullException; infinite: no deadline; off a shard: InvalidOperationException" {
        let negative, nullWork, infinite, timers =
            runShard (fun () ->
                task {
                    let negative =
                        thrownBy (fun () -> Shard.WithTimeout(ms -1.5, fun _ -> Task.FromResult 1))

                    let nullWork =
                        thrownBy (fun () ->
                            Shard.WithTimeout(ms 5.0, Unchecked.defaultof<Func<CancellationToken, Task<int>>>))

                    let! infinite =
                        Shard.WithTimeout(Timeout.InfiniteTimeSpan, fun ct -> Task.FromResult ct.CanBeCanceled)

                    return negative, nullWork, infinite, pendingTimers ()
                })

        expectExn<ArgumentOutOfRangeException> "WithTimeout(-1.5 ms)" negative |> ignore
        expectExn<ArgumentNullException> "WithTimeout(null)" nullWork |> ignore
        Expect.isFalse infinite "an infinite timeout passes a token that is never canceled"
        Expect.equal timers 0 "no timer for an infinite timeout"

        expectExn<InvalidOperationException>
            "WithTimeout off a shard"
            (thrownBy (fun () -> Shard.WithTimeout(ms 5.0, fun _ -> Task.FromResult 1)))
        |> ignore
    }

let tests =
    testSequenced
    <| testList
        "WithTimeout"
        [
            inTime
            atDeadline
            ignoresToken
            failsInTime
            nonGeneric
            completedBeforeDeadlineWins
            argumentsAndShard
        ]

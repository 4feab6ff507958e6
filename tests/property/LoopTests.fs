/// Properties of the run loop's transitions (Loop), each over arbitrary queue and loop states, and over random
/// sequences of them. How they add up over simulated seconds is SimulationTests' business.
module Scipio.Property.Tests.LoopTests

open System
open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

let private runnableCount (queues: QueueState array) =
    queues |> Array.sumBy (fun q -> if q.Runnable then 1 else 0)

/// A loop state between runs that agrees with the queues (RunnableCount), with any preemption timer and watermark.
let private loopBetweenRuns (queues: QueueState array) =
    gen {
        let! watermark =
            Gen.frequency [ 1, Gen.constant 0L; 3, Gen.choose64 (0L, 1_000L * Second) ]

        let! armed = Gen.frequency [ 1, Gen.constant Time.Never; 1, instant ]

        return
            { Loop.initial with
                Watermark = watermark
                RunnableCount = runnableCount queues
                PreemptTimerNs = armed
            }
    }

/// 1..8 queues, at least one runnable, one of those running (beginRun done), with a loop state that agrees.
let private duringRun =
    gen {
        let! queues = queueStates |> Gen.filter (Array.exists _.Runnable)

        let runnable =
            queues
            |> Array.indexed
            |> Array.filter (fun (_, q) -> q.Runnable)
            |> Array.map fst

        let! running = Gen.elements runnable
        let! loop = loopBetweenRuns queues
        let! now = instant
        let loop = Loop.beginRun (Span queues) running queues[running].Shares now loop
        return queues, loop, now
    }

/// The situation of a run loop that has just looked for work: (hasRunnable, now, idleSince, spin, nextTimer).
let private idleSituation =
    gen {
        let! hasRunnable = Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]
        let! now = instant

        let! idleFor =
            Gen.frequency [ 3, Gen.choose64 (0L, 2L * Milli); 1, Gen.elements [ 0L; 1L ] ]

        let! spin =
            Gen.frequency [ 1, Gen.constant 0L; 3, Gen.choose64 (0L, Milli); 1, Gen.constant idleFor ]

        let! timerIn =
            Gen.frequency
                [
                    2, Gen.constant Time.Never
                    3, Gen.choose64 (-Milli, 10L * Milli)
                    1, Gen.elements [ 0L; 1L; -1L ]
                ]

        let nextTimer = if timerIn = Time.Never then Time.Never else now + timerIn
        return hasRunnable, now, now - idleFor, spin, nextTimer
    }

/// The preemption timer's situation: (armed, wanted, now); wanted may already be past, as a deadline computed a
/// little earlier can be.
let private preemptSituation =
    gen {
        let! now = instant

        let! armed =
            Gen.frequency [ 1, Gen.constant Time.Never; 3, Gen.choose64 (now - Milli, now + 5L * Milli) ]

        let! wanted =
            Gen.frequency
                [
                    4, Gen.choose64 (now - Milli, now + 5L * Milli)
                    1, Gen.elements [ now; armed ]
                ]

        return armed, wanted, now
    }

/// What happens to a shard's queues, for the sequence properties.
type LoopCommand =
    /// Queue `pick` (modulo the count) gets work.
    | Wake of pick: int
    /// The loop picks a queue and runs it for `elapsedNs`, waking queue `wakes` (modulo the count) midway if >= 0;
    /// the queue is left with work if `stillRunnable`.
    | RunOnce of elapsedNs: int64 * wakes: int * stillRunnable: bool
    /// The loop finds nothing to run, or something: one idle turn after `elapsedNs`.
    | Idle of elapsedNs: int64

let private loopCommand =
    Gen.frequency
        [
            3, Gen.choose (0, 100) |> Gen.map Wake
            4,
            Gen.map3
                (fun e w s -> RunOnce(e, w, s))
                (Gen.choose64 (0L, 2L * Milli))
                (Gen.frequency [ 2, Gen.constant -1; 1, Gen.choose (0, 100) ])
                (Gen.elements [ true; false ])
            1, Gen.choose64 (0L, Milli) |> Gen.map Idle
        ]

let private sequences =
    gen {
        let! queues = queueStates |> Gen.filter (fun q -> q.Length > 0)
        let! loop = loopBetweenRuns queues
        let! commands = Gen.listOf loopCommand
        return queues, loop, commands
    }
    |> Arb.fromGen

let tests =
    testList
        "Loop"
        [
            testPropertyWithConfig models "RunnableCount always equals the number of runnable queues"
            <| Prop.forAll sequences (fun (queues, start, commands) ->
                let mutable loop = start
                let mutable now = 0L
                let n = queues.Length

                let agree what =
                    if loop.RunnableCount <> runnableCount queues then
                        failtestf
                            "after %s: RunnableCount %d, runnable queues %d"
                            what
                            loop.RunnableCount
                            (runnableCount queues)

                for c in commands do
                    match c with
                    | Wake pick ->
                        let struct (woken, _) = Loop.wake (Span queues) (pick % n) now loop
                        loop <- woken
                        agree $"%A{c}"
                    | RunOnce(elapsed, wakes, stillRunnable) ->
                        let i = Loop.pick (ReadOnlySpan queues)

                        if i >= 0 then
                            loop <- Loop.beginRun (Span queues) i queues[i].Shares now loop

                            let struct (checkedLoop, _) =
                                Loop.checkPreemption (ReadOnlySpan queues) now Time.Never false Milli loop

                            loop <- checkedLoop
                            now <- now + elapsed / 2L

                            if wakes >= 0 then
                                let struct (woken, _) = Loop.wake (Span queues) (wakes % n) now loop
                                loop <- woken
                                agree $"a wake during %A{c}"

                            now <- now + elapsed - elapsed / 2L
                            loop <- Loop.endRun (Span queues) now 1L stillRunnable loop
                            Expect.equal loop.Running -1 "nothing runs between runs"
                            agree $"%A{c}"
                    | Idle elapsed ->
                        now <- now + elapsed
                        let struct (idle, _) = Loop.idle now 0L Time.Never false loop
                        loop <- idle
                        agree $"%A{c}")

            testPropertyWithConfig quick "wake twice is wake once"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! queues = queueStates |> Gen.filter (fun q -> q.Length > 0)
                        let! loop = loopBetweenRuns queues
                        let! index = Gen.choose (0, queues.Length - 1)
                        let! now = instant
                        return queues, loop, index, now
                    }
                ))
                (fun (queues, loop, index, now) ->
                    let struct (once, _) = Loop.wake (Span queues) index now loop
                    let afterOnce = Array.copy queues
                    let struct (twice, check) = Loop.wake (Span queues) index now once
                    Expect.equal twice once "the loop state"
                    Expect.sequenceEqual queues afterOnce "the queues"
                    Expect.isFalse check "no second check"
                    Expect.isTrue queues[index].Runnable "runnable"
                    Expect.equal once.RunnableCount (runnableCount queues) "counted once")

            testPropertyWithConfig quick "a lone runnable queue with no timer and no I/O never gets a preemption timer"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 queueState instant (Gen.choose64 (1L, 10L * Milli))))
                (fun (queue, now, interval) ->
                    let queues = [| { queue with Runnable = false } |]
                    let struct (woken, _) = Loop.wake (Span queues) 0 now Loop.initial

                    let running =
                        Loop.beginRun (Span queues) (Loop.pick (ReadOnlySpan queues)) queue.Shares now woken

                    let struct (checkedLoop, decision) =
                        Loop.checkPreemption (ReadOnlySpan queues) now Time.Never false interval running

                    Expect.equal decision PreemptTimerDecision.Keep "no timer"
                    Expect.equal checkedLoop.PreemptTimerNs Time.Never "none armed"
                    Expect.isFalse checkedLoop.PreemptChecked "not covered: the next event checks again"
                    // The run submits I/O: now the timer is needed.
                    Expect.isTrue (Loop.needsCheck Time.Never checkedLoop) "I/O makes it check"

                    let struct (armed, decision) =
                        Loop.checkPreemption (ReadOnlySpan queues) now Time.Never true interval checkedLoop

                    Expect.equal decision (PreemptTimerDecision.Arm interval) "armed for one interval"
                    Expect.equal armed.PreemptTimerNs (now + interval) "recorded"
                    Expect.isFalse (Loop.needsCheck Time.Never armed) "covered: more I/O needs no check"
                    Expect.isTrue (Loop.needsCheck (now + interval - 1L) armed) "an earlier timer does")

            testPropertyWithConfig
                quick
                "after checkPreemption the armed timer fires no later than preemptDeadline wants"
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.zip3
                        duringRun
                        (Gen.frequency [ 1, Gen.constant Time.Never; 2, Gen.choose64 (0L, 20L * Milli) ])
                        (Gen.zip (Gen.elements [ true; false ]) (Gen.choose64 (Micro, 5L * Milli)))
                ))
                (fun ((queues: QueueState array, loop, now), timerIn, (io, interval)) ->
                    let nextTimer = if timerIn = Time.Never then Time.Never else now + timerIn

                    let struct (after, decision) =
                        Loop.checkPreemption (ReadOnlySpan queues) now nextTimer io interval loop

                    let another = runnableCount queues > 1
                    let needed = Loop.preemptionNeeded another nextTimer io
                    Expect.equal after.PreemptChecked needed "checked exactly when needed"

                    if needed then
                        let wanted =
                            TaskQueues.preemptDeadline (ReadOnlySpan queues) loop.Running interval nextTimer now

                        Expect.isLessThanOrEqual after.PreemptTimerNs (max now wanted) $"%A{decision}"
                    else
                        Expect.equal decision PreemptTimerDecision.Keep "nothing to arm"
                        Expect.equal after.PreemptTimerNs loop.PreemptTimerNs "the armed timer stands")

            testPropertyWithConfig quick "a wake during a run asks for a check unless the timer covers it"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 duringRun (Gen.choose (0, 100)) (Gen.elements [ true; false ])))
                (fun ((queues, loop, now), pick, covered) ->
                    let loop = { loop with PreemptChecked = covered }
                    let index = pick % queues.Length
                    let wasIdle = not queues[index].Runnable
                    let struct (_, check) = Loop.wake (Span queues) index now loop

                    let expected =
                        wasIdle && (not covered || LatencyClass.matters queues[index].Latency)

                    Expect.equal check expected "another queue became runnable and the timer may be late")

            testPropertyWithConfig
                quick
                "afterTask's yield shortcut continues only with no other queue and no completions"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip duringRun (Gen.arrayOfLength 3 (Gen.elements [ true; false ]))))
                (fun ((queues, loop, _), flags) ->
                    let needPreempt, completions, loopTurn = flags[0], flags[1], flags[2]
                    let loop = Loop.requestYield loop
                    let loop = if loopTurn then Loop.requestLoopTurn loop else loop
                    let struct (after, verdict) = Loop.afterTask needPreempt completions loop
                    let another = runnableCount queues > 1

                    let expected =
                        if needPreempt then RunVerdict.Preempted
                        elif loopTurn then RunVerdict.LoopTurn
                        elif completions || another then RunVerdict.Yielded
                        else RunVerdict.Continue

                    Expect.equal verdict expected "the verdict"

                    if not needPreempt && not loopTurn then
                        Expect.isFalse after.YieldRequested "the request is spent")

            testPropertyWithConfig quick "endRun never moves the watermark backwards, and counts a queue that went idle"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 duringRun (Gen.choose64 (-Milli, 10L * Milli)) (Gen.elements [ true; false ])))
                (fun ((queues, loop, now), elapsed, stillRunnable) ->
                    let running = loop.Running
                    let after = Loop.endRun (Span queues) (now + elapsed) 3L stillRunnable loop
                    Expect.isGreaterThanOrEqual after.Watermark loop.Watermark "never backwards"
                    Expect.equal after.Running -1 "between runs"
                    Expect.equal queues[running].Runnable stillRunnable "runnable as told"
                    Expect.equal after.RunnableCount (runnableCount queues) "RunnableCount"
                    Expect.isFalse (after.YieldRequested || after.LoopTurnRequested || after.PreemptChecked) "cleared")

            testPropertyWithConfig quick "idle never parks while the poll ring has operations in flight"
            <| Prop.forAll (Arb.fromGen idleSituation) (fun (hasRunnable, now, idleSince, spin, nextTimer) ->
                let loop =
                    { Loop.initial with
                        IdleSinceNs = idleSince
                        RunnableCount = if hasRunnable then 1 else 0
                    }

                let struct (after, decision) = Loop.idle now spin nextTimer true loop
                Expect.equal after.IdleSinceNs idleSince "the spell goes on"

                match decision with
                | IdleDecision.Park _ ->
                    failtest "parked with polled I/O in flight: its completions appear only when polled"
                | IdleDecision.Spin ->
                    Expect.isFalse (hasRunnable || nextTimer <= now) "spins only with nothing to run"
                | IdleDecision.Continue -> Expect.isTrue (hasRunnable || nextTimer <= now) "continues only for work")

            testPropertyWithConfig quick "idle starts the idle spell once, and woke ends it"
            <| Prop.forAll (Arb.fromGen (Gen.zip instant (Gen.choose64 (0L, Milli)))) (fun (now, later) ->
                let struct (first, _) = Loop.idle now 0L Time.Never false Loop.initial
                Expect.equal first.IdleSinceNs now "starts now"
                let struct (second, _) = Loop.idle (now + later) 0L Time.Never false first
                Expect.equal second.IdleSinceNs now "still since then"
                Expect.equal (Loop.woke second).IdleSinceNs -1L "over")

            testPropertyWithConfig
                quick
                "idleDecision never parks or spins while something is runnable or a timer is due"
            <| Prop.forAll (Arb.fromGen idleSituation) (fun (hasRunnable, now, idleSince, spin, nextTimer) ->
                let decision = Loop.idleDecision hasRunnable false now idleSince spin nextTimer

                if hasRunnable || nextTimer <= now then
                    Expect.equal decision IdleDecision.Continue "keep running")

            testPropertyWithConfig quick "idleDecision spins exactly inside the spin window"
            <| Prop.forAll (Arb.fromGen idleSituation) (fun (hasRunnable, now, idleSince, spin, nextTimer) ->
                let decision = Loop.idleDecision hasRunnable false now idleSince spin nextTimer
                let mayBlock = not hasRunnable && nextTimer > now
                Expect.equal (decision = IdleDecision.Spin) (mayBlock && now - idleSince < spin) $"%A{decision}")

            testPropertyWithConfig
                quick
                "idleDecision parks until the next timer: never a negative timeout, Never without timers"
            <| Prop.forAll (Arb.fromGen idleSituation) (fun (hasRunnable, now, idleSince, spin, nextTimer) ->
                match Loop.idleDecision hasRunnable false now idleSince spin nextTimer with
                | IdleDecision.Park timeout ->
                    Expect.isFalse hasRunnable "nothing runnable"
                    Expect.isGreaterThanOrEqual (now - idleSince) spin "spin window over"
                    Expect.isGreaterThan timeout 0L "a positive timeout"

                    if nextTimer = Time.Never then
                        Expect.equal timeout Time.Never "no timer: no timeout"
                    else
                        Expect.equal timeout (nextTimer - now) "wakes exactly at the next timer"
                | IdleDecision.Spin
                | IdleDecision.Continue -> ())

            testPropertyWithConfig quick "the preemption timer is needed exactly when something may want the CPU"
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.zip3
                        (Gen.elements [ true; false ])
                        (Gen.elements [ Time.Never; 0L; 5L * Milli ])
                        (Gen.elements [ true; false ])
                ))
                (fun (another, nextTimer, inFlight) ->
                    Expect.equal
                        (Loop.preemptionNeeded another nextTimer inFlight)
                        (another || nextTimer <> Time.Never || inFlight)
                        "another runnable queue, a pending timer or I/O in flight")

            testPropertyWithConfig
                quick
                "preemptTimer keeps only a timer armed no later than wanted, or when none is wanted"
            <| Prop.forAll (Arb.fromGen preemptSituation) (fun (armed, wanted, now) ->
                match Loop.preemptTimer armed wanted now with
                | PreemptTimerDecision.Keep when wanted = Time.Never -> ()
                | PreemptTimerDecision.Keep ->
                    Expect.notEqual armed Time.Never "something is armed"
                    Expect.isLessThanOrEqual armed wanted "it fires in time"
                | PreemptTimerDecision.Arm after ->
                    Expect.equal armed Time.Never "nothing was armed"
                    Expect.equal after (max 0L (wanted - now)) "fires at wanted, or at once if that is past"
                | PreemptTimerDecision.Move after ->
                    Expect.notEqual armed Time.Never "something is armed"
                    Expect.isGreaterThan armed wanted "it would fire too late"
                    Expect.equal after (max 0L (wanted - now)) "fires at wanted, or at once if that is past")

            testPropertyWithConfig quick "preemptFired disarms; beginRun clears the run's flags and keeps the timer"
            <| Prop.forAll (Arb.fromGen duringRun) (fun (queues, loop, now) ->
                Expect.equal (Loop.preemptFired loop).PreemptTimerNs Time.Never "disarmed"
                let busy = loop |> Loop.requestYield |> Loop.requestLoopTurn

                let again =
                    Loop.beginRun (Span queues) loop.Running queues[loop.Running].Shares now busy

                Expect.isFalse (again.YieldRequested || again.LoopTurnRequested || again.PreemptChecked) "cleared"
                Expect.equal again.PreemptTimerNs loop.PreemptTimerNs "the kernel still holds the timer")
        ]

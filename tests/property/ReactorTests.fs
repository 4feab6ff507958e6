module Scipio.Property.Tests.ReactorTests

open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

/// The situation of a run loop that has just looked for work: (hasRunnable, now, idleSince, spin, nextTimer).
let private idleSituation =
    gen {
        let! hasRunnable = Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]
        let! now = instant
        let! idleFor = Gen.frequency [ 3, Gen.choose64 (0L, 2L * Milli); 1, Gen.elements [ 0L; 1L ] ]
        let! spin = Gen.frequency [ 1, Gen.constant 0L; 3, Gen.choose64 (0L, Milli); 1, Gen.constant idleFor ]
        let! timerIn =
            Gen.frequency
                [ 2, Gen.constant Time.Never
                  3, Gen.choose64 (-Milli, 10L * Milli)
                  1, Gen.elements [ 0L; 1L; -1L ] ]

        let nextTimer = if timerIn = Time.Never then Time.Never else now + timerIn
        return hasRunnable, now, now - idleFor, spin, nextTimer
    }

/// The preemption timer's situation: (armed, wanted, now); wanted may already be past, as a deadline computed a
/// little earlier can be.
let private preemptSituation =
    gen {
        let! now = instant
        let! armed = Gen.frequency [ 1, Gen.constant Time.Never; 3, Gen.choose64 (now - Milli, now + 5L * Milli) ]
        let! wanted = Gen.frequency [ 4, Gen.choose64 (now - Milli, now + 5L * Milli); 1, Gen.elements [ now; armed ] ]
        return armed, wanted, now
    }

let tests =
    testList
        "Reactor"
        [ testPropertyWithConfig quick "idle never parks or spins while something is runnable or a timer is due"
          <| Prop.forAll (Arb.fromGen idleSituation) (fun (hasRunnable, now, idleSince, spin, nextTimer) ->
              let decision = Reactor.idle hasRunnable false now idleSince spin nextTimer

              if hasRunnable || nextTimer <= now then
                  Expect.equal decision IdleDecision.Continue "keep running")

          testPropertyWithConfig quick "idle never parks while the poll ring has operations in flight"
          <| Prop.forAll (Arb.fromGen idleSituation) (fun (hasRunnable, now, idleSince, spin, nextTimer) ->
              match Reactor.idle hasRunnable true now idleSince spin nextTimer with
              | IdleDecision.Park _ -> failtest "parked with polled I/O in flight: its completions appear only when polled"
              | IdleDecision.Spin -> Expect.isFalse (hasRunnable || nextTimer <= now) "spins only with nothing to run"
              | IdleDecision.Continue -> Expect.isTrue (hasRunnable || nextTimer <= now) "continues only for work")

          testPropertyWithConfig quick "the preemption timer is needed exactly when something may want the CPU"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip3 (Gen.elements [ true; false ]) (Gen.elements [ Time.Never; 0L; 5L * Milli ]) (Gen.elements [ true; false ])))
              (fun (another, nextTimer, inFlight) ->
                  Expect.equal
                      (Reactor.preemptionNeeded another nextTimer inFlight)
                      (another || nextTimer <> Time.Never || inFlight)
                      "another runnable queue, a pending timer or I/O in flight"

                  Expect.isFalse (Reactor.preemptionNeeded false Time.Never false) "a lone queue with nothing pending runs on")

          testPropertyWithConfig quick "idle spins exactly inside the spin window"
          <| Prop.forAll (Arb.fromGen idleSituation) (fun (hasRunnable, now, idleSince, spin, nextTimer) ->
              let decision = Reactor.idle hasRunnable false now idleSince spin nextTimer
              let mayBlock = not hasRunnable && nextTimer > now
              Expect.equal (decision = IdleDecision.Spin) (mayBlock && now - idleSince < spin) $"%A{decision}")

          testPropertyWithConfig quick "idle parks until the next timer: never a negative timeout, Never without timers"
          <| Prop.forAll (Arb.fromGen idleSituation) (fun (hasRunnable, now, idleSince, spin, nextTimer) ->
              match Reactor.idle hasRunnable false now idleSince spin nextTimer with
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

          testPropertyWithConfig quick "preemptTimer keeps only a timer armed no later than wanted, or when none is wanted"
          <| Prop.forAll (Arb.fromGen preemptSituation) (fun (armed, wanted, now) ->
              match Reactor.preemptTimer armed wanted now with
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

          testPropertyWithConfig quick "after preemptTimer the queue is preempted no later than wanted"
          <| Prop.forAll (Arb.fromGen preemptSituation) (fun (armed, wanted, now) ->
              let firesAt =
                  match Reactor.preemptTimer armed wanted now with
                  | PreemptTimerDecision.Keep -> armed
                  | PreemptTimerDecision.Arm after
                  | PreemptTimerDecision.Move after ->
                      Expect.isGreaterThanOrEqual after 0L "never a negative delay"
                      now + after

              Expect.isLessThanOrEqual firesAt (max now wanted) "in time") ]

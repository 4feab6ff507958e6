/// Properties of the scheduler's single transitions and decisions, each over arbitrary queue states. How they add up
/// over time (fairness, starvation, latency) is SimulationTests' business.
module Scipio.Property.Tests.TaskQueueTests

open System
open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

let private span (queues: QueueState array) = ReadOnlySpan queues

/// The order pickNext promises, written as a sort key: least vruntime, then latency-sensitive, then woken from idle
/// (runnable since after its last run ended), then least recently run, then lowest index.
let private referencePick (queues: QueueState array) =
    queues
    |> Array.indexed
    |> Array.filter (fun (_, q) -> q.Runnable)
    |> Array.sortBy (fun (i, q) ->
        q.Vruntime, not (LatencyClass.matters q.Latency), not (q.RunnableSinceNs > q.LastRanNs), q.LastRanNs, i)
    |> Array.tryHead
    |> Option.map fst
    |> Option.defaultValue -1

/// One run of CPU as the shell could report it; negative values stand for a clock that stepped back, which the
/// core must absorb.
let private elapsed =
    Gen.frequency
        [
            8, Gen.choose64 (0L, 10L * Second)
            1, Gen.choose64 (-Second, -1L)
            1, Gen.constant 0L
        ]

let private pickTests =
    testList
        "pickNext"
        [
            testPropertyWithConfig quick "returns -1 exactly when no queue is runnable"
            <| Prop.forAll (Arb.fromGen queueStates) (fun queues ->
                let picked = TaskQueues.pickNext (span queues)
                let anyRunnable = queues |> Array.exists _.Runnable
                Expect.equal (picked >= 0) anyRunnable $"picked {picked}")

            testPropertyWithConfig quick "picks a runnable queue with the least vruntime"
            <| Prop.forAll (Arb.fromGen queueStates) (fun queues ->
                let picked = TaskQueues.pickNext (span queues)

                if picked >= 0 then
                    Expect.isTrue queues[picked].Runnable "picked a runnable queue"

                    for q in queues do
                        if q.Runnable then
                            Expect.isLessThanOrEqual queues[picked].Vruntime q.Vruntime "least vruntime")

            testPropertyWithConfig
                quick
                "breaks ties by latency class, then woken from idle, then least recently run, then lowest index"
            <| Prop.forAll (Arb.fromGen queueStates) (fun queues ->
                Expect.equal (TaskQueues.pickNext (span queues)) (referencePick queues) "the reference order")

            testPropertyWithConfig quick "does not depend on the order of the other queues"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! queues = queueStates
                        // Distinct last runs so that only the index tie-break could depend on the order.
                        let queues = queues |> Array.mapi (fun i q -> { q with LastRanNs = int64 i })
                        let! order = Gen.shuffle [| 0 .. queues.Length - 1 |]
                        return queues, order
                    }
                ))
                (fun (queues, order) ->
                    let shuffled = order |> Array.map (fun i -> queues[i])
                    let picked = TaskQueues.pickNext (span queues)
                    let pickedShuffled = TaskQueues.pickNext (span shuffled)
                    let original = if pickedShuffled < 0 then -1 else order[pickedShuffled]
                    Expect.equal original picked "the same queue")
        ]

let private transitionTests =
    testList
        "transitions"
        [
            testPropertyWithConfig quick "wake leaves an already runnable queue alone"
            <| Prop.forAll (Arb.fromGen (Gen.zip3 queueState instant instant)) (fun (q, watermark, now) ->
                let q = { q with Runnable = true }
                Expect.equal (TaskQueues.wake watermark now q) q "unchanged")

            testPropertyWithConfig quick "wake twice is wake once"
            <| Prop.forAll (Arb.fromGen (Gen.zip3 queueState instant instant)) (fun (q, watermark, now) ->
                let once = TaskQueues.wake watermark now q
                Expect.equal (TaskQueues.wake watermark now once) once "idempotent")

            testPropertyWithConfig quick "wake raises an idle queue's vruntime to the watermark and no further"
            <| Prop.forAll (Arb.fromGen (Gen.zip3 queueState instant instant)) (fun (q, watermark, now) ->
                let q = { q with Runnable = false }
                let woken = TaskQueues.wake watermark now q
                Expect.isTrue woken.Runnable "runnable"
                Expect.equal woken.RunnableSinceNs now "runnable since now"
                Expect.equal woken.Vruntime (max q.Vruntime watermark) "vruntime = max(own, watermark)"

                let restored =
                    { woken with
                        Runnable = q.Runnable
                        RunnableSinceNs = q.RunnableSinceNs
                        Vruntime = q.Vruntime
                    }

                Expect.equal restored q "nothing else changes")

            testPropertyWithConfig quick "account never decreases Vruntime or RuntimeNs, and charges by the shares"
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.zip3
                        queueState
                        (Gen.zip instant elapsed)
                        (Gen.zip (Gen.choose64 (0L, 1000L)) (Gen.elements [ true; false ]))
                ))
                (fun (q, (now, elapsed), (tasks, still)) ->
                    let after = TaskQueues.account now elapsed tasks still q
                    Expect.isGreaterThanOrEqual after.Vruntime q.Vruntime "vruntime never decreases"
                    Expect.isGreaterThanOrEqual after.RuntimeNs q.RuntimeNs "runtime never decreases"
                    Expect.equal (after.RuntimeNs - q.RuntimeNs) (max 0L elapsed) "runtime grows by the CPU used"
                    let charge = ShareMath.virtualRuntime q.Shares (max 0L elapsed)
                    Expect.equal (after.Vruntime - q.Vruntime) charge "vruntime by the shares"
                    Expect.equal after.TasksRun (q.TasksRun + tasks) "tasks counted"
                    Expect.equal after.Runnable still "runnable as the shell says"
                    Expect.equal after.RunnableSinceNs now "waits from now"
                    Expect.equal after.LastRanNs now "ran until now")

            testPropertyWithConfig quick "select counts the pick and keeps the longest wait"
            <| Prop.forAll (Arb.fromGen (Gen.zip queueState instant)) (fun (q, now) ->
                let q =
                    { q with
                        RunnableSinceNs = min q.RunnableSinceNs now
                    }

                let after = TaskQueues.select now q
                Expect.equal after.TimesSelected (q.TimesSelected + 1L) "counted"
                Expect.equal after.MaxQueueDelayNs (max q.MaxQueueDelayNs (now - q.RunnableSinceNs)) "longest wait"
                Expect.equal after.Vruntime q.Vruntime "selection is free")

            testPropertyWithConfig quick "withShares changes the shares and nothing else"
            <| Prop.forAll (Arb.fromGen (Gen.zip queueState shares)) (fun (q, s) ->
                let after = TaskQueues.withShares s q
                Expect.equal after { q with Shares = s } "only the shares")
        ]

let private watermarkTests =
    testList
        "watermark"
        [
            testPropertyWithConfig quick "never decreases"
            <| Prop.forAll (Arb.fromGen (Gen.zip queueStates (Gen.choose64 (0L, 1L <<< 62)))) (fun (queues, previous) ->
                for ran in -1 .. queues.Length - 1 do
                    Expect.isGreaterThanOrEqual (TaskQueues.watermark (span queues) previous ran) previous "monotone")

            testPropertyWithConfig
                quick
                "is the least runnable vruntime, else the vruntime of the queue that ran, or the previous one if larger"
            <| Prop.forAll (Arb.fromGen (Gen.zip queueStates (Gen.choose64 (0L, 1L <<< 62)))) (fun (queues, previous) ->
                let runnable = queues |> Array.filter _.Runnable

                for ran in -1 .. queues.Length - 1 do
                    let expected =
                        if runnable.Length > 0 then
                            max previous (runnable |> Array.map _.Vruntime |> Array.min)
                        elif ran >= 0 then
                            max previous queues[ran].Vruntime
                        else
                            previous

                    Expect.equal (TaskQueues.watermark (span queues) previous ran) expected "CFS's min_vruntime rule")
        ]

let private deadlineTests =
    let input =
        gen {
            let! queues = queueStates
            let! running = Gen.choose (0, max 0 (queues.Length - 1))

            let! interval =
                Gen.frequency [ 4, Gen.choose64 (Micro, 10L * Milli); 1, Gen.constant Time.Never ]

            let! now = instant
            let! nextTimer = Gen.frequency [ 2, Gen.constant Time.Never; 3, instant ]
            // Some queues woke around now, so that budgets end before, at and after now.
            let! sinces = Gen.arrayOfLength queues.Length (Gen.choose64 (-20L * Milli, 0L))

            let queues =
                queues
                |> Array.mapi (fun i q ->
                    { q with
                        RunnableSinceNs = max 0L (now + sinces[i])
                    })

            return queues, running, interval, nextTimer, now
        }

    testList
        "preemptDeadline"
        [
            testPropertyWithConfig quick "is never before now nor later than one interval"
            <| Prop.forAll (Arb.fromGen input) (fun (queues, running, interval, nextTimer, now) ->
                let deadline =
                    TaskQueues.preemptDeadline (span queues) running interval nextTimer now

                Expect.isGreaterThanOrEqual deadline now "not in the past"
                Expect.isLessThanOrEqual deadline (Time.addSaturating now interval) "within one interval")

            testPropertyWithConfig
                quick
                "is the earliest of interval, next timer and, for a latency-sensitive queue next in line, its budget once it can be picked"
            <| Prop.forAll (Arb.fromGen input) (fun (queues, running, interval, nextTimer, now) ->
                let deadline =
                    TaskQueues.preemptDeadline (span queues) running interval nextTimer now

                let waiting =
                    queues
                    |> Array.mapi (fun i q -> if i = running then { q with Runnable = false } else q)

                let next = TaskQueues.pickNext (span waiting)

                let latencyLimit =
                    if next >= 0 && LatencyClass.matters queues[next].Latency then
                        let gap = queues[next].Vruntime - queues[running].Vruntime
                        // When the running queue's vruntime has passed the waiting one's, so pickNext would take it.
                        let overtakes =
                            if gap < 0L then
                                now
                            else
                                Time.addSaturating now (ShareMath.realTime queues[running].Shares gap + 1L)

                        max
                            (Time.addSaturating queues[next].RunnableSinceNs (LatencyClass.budget queues[next].Latency))
                            overtakes
                    else
                        Time.Never

                let earliest = min (min (Time.addSaturating now interval) nextTimer) latencyLimit
                Expect.equal deadline (max now earliest) "max(now, earliest limit)")

            testPropertyWithConfig quick "only the queue next in line can shorten the slice for its budget"
            <| Prop.forAll (Arb.fromGen input) (fun (queues, running, interval, nextTimer, now) ->
                let deadline =
                    TaskQueues.preemptDeadline (span queues) running interval nextTimer now

                let waiting =
                    queues
                    |> Array.mapi (fun i q -> if i = running then { q with Runnable = false } else q)

                let next = TaskQueues.pickNext (span waiting)
                // Every other waiting queue becomes a throughput queue: pickNext still picks `next` (being
                // latency-sensitive only ever wins ties), and the deadline must not move.
                let others =
                    queues
                    |> Array.mapi (fun i q ->
                        if i <> next && i <> running then
                            { q with
                                Latency = LatencyClass.NotImportant
                            }
                        else
                            q)

                Expect.equal (TaskQueues.preemptDeadline (span others) running interval nextTimer now) deadline "same")

            testPropertyWithConfig quick "ignores the running queue's own budget and idle queues"
            <| Prop.forAll (Arb.fromGen input) (fun (queues, running, interval, nextTimer, now) ->
                let deadline =
                    TaskQueues.preemptDeadline (span queues) running interval nextTimer now
                // Turning every latency-sensitive queue that must not count into a throughput queue changes nothing.
                let neutral =
                    queues
                    |> Array.mapi (fun i q ->
                        if i = running || not q.Runnable then
                            { q with
                                Latency = LatencyClass.NotImportant
                            }
                        else
                            q)

                Expect.equal (TaskQueues.preemptDeadline (span neutral) running interval nextTimer now) deadline "same")
        ]

let private vruntimeWraps =
    testList
        "vruntime wraps around"
        [
            testPropertyWithConfig
                quick
                "after months of CPU at few shares the queue that ran still goes after the others"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! shares = Gen.choose (ShareMath.Min, 10)
                        // The vruntime a queue reaches after (Int64.MaxValue - headroom) * shares / 1000 ns of CPU:
                        // 106.7 days at 1 share, 2.9 years at 10.
                        let! headroom = Gen.choose64 (0L, 1_000L * Second)
                        let! elapsed = Gen.choose64 (Milli, Second)
                        return shares, headroom, elapsed
                    }
                ))
                (fun (shares, headroom, elapsed) ->
                    let q =
                        { TaskQueues.create shares LatencyClass.NotImportant with
                            Vruntime = Int64.MaxValue - headroom
                            Runnable = true
                        }

                    let other = { q with TasksRun = 0L }
                    let after = TaskQueues.account 0L elapsed 1L true q
                    // The vruntime wraps past Int64.MaxValue; compared by difference, as CFS does, it is still later.
                    Expect.equal
                        (TaskQueues.pickNext (span [| after; other |]))
                        1
                        "the queue that did not run goes first"

                    Expect.equal
                        (TaskQueues.watermark (span [| after; other |]) other.Vruntime 0)
                        other.Vruntime
                        "watermark")
        ]

let tests =
    testList "TaskQueues" [ pickTests; transitionTests; watermarkTests; deadlineTests; vruntimeWraps ]

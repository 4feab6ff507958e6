/// The I/O scheduler: its cost model and single decisions over arbitrary states, then whole simulated seconds
/// against a simulated device — shares, starvation, the token bucket, full capacity, work conservation and the
/// latency goal.
module Scipio.Property.Tests.IoSchedulerTests

open System
open System.Collections.Generic
open Expecto
open FsCheck
open FsCheck.FSharp
open Scipio.Simulation
open Scipio.Core
open Scipio.Property.Tests.Generators

/// Simulated seconds: each case dispatches up to about 150k requests.
let private ioSimulations =
    { FsCheckConfig.defaultConfig with
        maxTest = 25
    }

/// A device like the test VM's or an order of magnitude either way: 20k–150k read IOPS (a request costs at least
/// about 6.7 µs, which keeps a simulated second under 150k dispatches), writes slower, 100 MB/s–4 GB/s,
/// unloaded latency 10–200 µs and no less than one read's cost.
let private deviceModel =
    gen {
        let! readIops = Gen.choose64 (20_000L, 150_000L)
        let! writeIops = Gen.choose64 (10_000L, readIops)
        let! readBw = Gen.choose64 (200L <<< 20, 4L <<< 30)
        let! writeBw = Gen.choose64 (100L <<< 20, readBw)
        // A device cannot serve one request at a time faster than its peak IOPS: unloaded latency ≥ 1 / ReadIops.
        let! latency =
            Gen.choose64 (max (10L * Micro) (1_000_000_000L / readIops + 1L), 200L * Micro)

        return
            {
                ReadIops = readIops
                WriteIops = writeIops
                ReadBandwidth = readBw
                WriteBandwidth = writeBw
                ReadLatencyNs = latency
            }
    }

/// Request sizes the simulated queues draw from.
let private sizes = [| 4096L; 16384L; 65536L; 131072L |]

/// The costliest request a simulated queue can issue on `model`.
let private maxCostOf model =
    max (IoCost.ofRequest model false sizes[sizes.Length - 1]) (IoCost.ofRequest model true sizes[sizes.Length - 1])
    |> max (IoCost.ofRequest model true 4096L)

/// How a simulated queue issues I/O.
type private Load =
    /// Always has requests waiting: one more is queued after each dispatch.
    | Backlogged
    /// Keeps `depth` requests outstanding (waiting or in flight): one more after each completion.
    | ClosedLoop of depth: int
    /// Closed loop at `depth` for `onNs`, then nothing new for `offNs`, and again; starts at `phaseNs` into a cycle.
    | OnOff of depth: int * onNs: int64 * offNs: int64 * phaseNs: int64
    /// Nothing until `startNs`, then Backlogged.
    | LateBacklogged of startNs: int64

type private IoQueueSpec =
    {
        Shares: int
        Latency: LatencyClass
        Load: Load
        /// Per mille of requests that are writes.
        WritePermille: int
        /// Largest size index used (0: 4 KiB only).
        MaxSize: int
    }

type private IoScenario =
    {
        Config: IoSchedulerConfig
        Queues: IoQueueSpec array
        DurationNs: int64
        Seed: uint64
    }

/// One dispatch as the simulation saw it.
[<Struct>]
type private DispatchEvent =
    {
        AtNs: int64
        Queue: int
        Cost: int64
        /// In flight after the dispatch, over all queues.
        InFlightCostAfter: int64
        InFlightAfter: int
        /// The latency goal held when the scheduler decided.
        GoalActive: bool
    }

[<Struct>]
type private CompletionEvent =
    {
        Queue: int
        Cost: int64
        EnqueuedNs: int64
        DispatchedNs: int64
        CompletedNs: int64
    }

type private IoTrace =
    {
        Dispatches: ResizeArray<DispatchEvent>
        Completions: ResizeArray<CompletionEvent>
        /// Per queue: the longest time it had I/O waiting without dispatching any, and when that wait began.
        LongestWaitNs: int64 array
        /// The scheduler's final state.
        Final: IoSchedulerState
        FinalQueues: IoQueueState array
    }

/// The simulated device: one server of capacity one device-nanosecond per nanosecond, FIFO. A request dispatched
/// at t with cost c finishes its service at max(t, busy) + c and completes no sooner than t + ReadLatencyNs (the
/// unloaded latency). Completion times are therefore in dispatch order. The scheduler's bucket refills at the
/// shard's part of this capacity.
let private simulate (scenario: IoScenario) =
    let model = scenario.Config.Model
    let n = scenario.Queues.Length
    let mutable rng = Rng.Create scenario.Seed
    let mutable state = IoScheduler.create scenario.Config 0L

    let queues =
        scenario.Queues
        |> Array.map (fun s -> IoScheduler.createQueue s.Shares s.Latency)

    let fifos = Array.init n (fun _ -> Queue<struct (int64 * int64)>())
    let started = Array.zeroCreate<bool> n
    let outstanding = Array.zeroCreate<int> n
    let device = Queue<CompletionEvent>()
    let mutable busyUntil = 0L
    let dispatches = ResizeArray<DispatchEvent>()
    let completions = ResizeArray<CompletionEvent>()
    let waitingSince = Array.create n -1L
    let longestWait = Array.zeroCreate<int64> n

    let draw (spec: IoQueueSpec) =
        let struct (w, r1) = rng.Range(0L, 999L)
        let struct (s, r2) = r1.Range(0L, int64 spec.MaxSize)
        rng <- r2
        IoCost.ofRequest model (w < int64 spec.WritePermille) sizes[int s]

    let isOn (spec: IoQueueSpec) (now: int64) =
        match spec.Load with
        | OnOff(_, on, off, phase) -> (now + phase) % (on + off) < on
        | _ -> true

    let enqueue q now =
        let cost = draw scenario.Queues[q]
        fifos[q].Enqueue(struct (cost, now))
        outstanding[q] <- outstanding[q] + 1
        IoScheduler.enqueue (Span queues) q cost state

        if waitingSince[q] < 0L then
            waitingSince[q] <- now

    /// Tops closed-loop queues up to their depth (while on).
    let topUp q now =
        match scenario.Queues[q].Load with
        | ClosedLoop depth ->
            while outstanding[q] < depth do
                enqueue q now
        | OnOff(depth, _, _, _) when isOn scenario.Queues[q] now ->
            while outstanding[q] < depth do
                enqueue q now
        | LateBacklogged start when now >= start && not started[q] ->
            started[q] <- true

            for _ in 1..4 do
                enqueue q now
        | _ -> ()

    /// The next instant an on/off queue turns on after `now`.
    let nextOn (spec: IoQueueSpec) now =
        match spec.Load with
        | OnOff(_, on, off, phase) ->
            let cycle = on + off
            let into = (now + phase) % cycle
            if into < on then Time.Never else now + (cycle - into)
        | LateBacklogged start when now < start -> start
        | _ -> Time.Never

    for q in 0 .. n - 1 do
        match scenario.Queues[q].Load with
        | Backlogged ->
            for _ in 1..4 do
                enqueue q 0L
        | _ -> topUp q 0L

    let mutable now = 0L

    while now < scenario.DurationNs do
        // Reap what the device finished by now.
        while device.Count > 0 && device.Peek().CompletedNs <= now do
            let c = device.Dequeue()
            completions.Add c
            outstanding[c.Queue] <- outstanding[c.Queue] - 1
            state <- IoScheduler.complete (Span queues) c.Queue c.Cost state
            topUp c.Queue now

        for q in 0 .. n - 1 do
            topUp q now

        // Dispatch until the scheduler says wait.
        let mutable wakeAt = Time.Never
        let mutable go = true

        while go do
            let goal = IoScheduler.latencyGoalActive (ReadOnlySpan queues)

            match IoScheduler.next (ReadOnlySpan queues) now state with
            | IoDecision.Dispatch q ->
                let struct (cost, enqueued) = fifos[q].Dequeue()

                let nextHead =
                    if fifos[q].Count > 0 then
                        (let struct (c, _) = fifos[q].Peek() in c)
                    else
                        0L

                state <- IoScheduler.dispatch (Span queues) q nextHead now state
                let served = max now busyUntil + cost
                busyUntil <- served

                device.Enqueue
                    {
                        Queue = q
                        Cost = cost
                        EnqueuedNs = enqueued
                        DispatchedNs = now
                        CompletedNs = max served (now + model.ReadLatencyNs)
                    }

                dispatches.Add
                    {
                        AtNs = now
                        Queue = q
                        Cost = cost
                        InFlightCostAfter = state.InFlightCost
                        InFlightAfter = state.InFlight
                        GoalActive = goal
                    }

                longestWait[q] <- max longestWait[q] (now - waitingSince[q])
                waitingSince[q] <- if fifos[q].Count > 0 then now else -1L

                match scenario.Queues[q].Load with
                | Backlogged
                | LateBacklogged _ -> enqueue q now
                | _ -> ()
            | IoDecision.WaitTokens at ->
                wakeAt <- at
                go <- false
            | _ -> go <- false

        let mutable nextEvent = wakeAt

        if device.Count > 0 then
            nextEvent <- min nextEvent (device.Peek().CompletedNs)

        for q in 0 .. n - 1 do
            nextEvent <- min nextEvent (nextOn scenario.Queues[q] now)

        if nextEvent <= now then
            failwith $"no progress at {now}"

        now <- min nextEvent scenario.DurationNs

    // Waits still open at the end count too.
    for q in 0 .. n - 1 do
        if waitingSince[q] >= 0L then
            longestWait[q] <- max longestWait[q] (scenario.DurationNs - waitingSince[q])

    {
        Dispatches = dispatches
        Completions = completions
        LongestWaitNs = longestWait
        Final = state
        FinalQueues = queues
    }

/// A configuration for `model`: any part of the device, a burst from the largest request to 4 ms, any latency
/// multiple from 1 to 4, 1–256 requests in flight (at least `minInFlight`).
let private config model (permille: Gen<int>) (minInFlight: int) =
    gen {
        let maxCost = maxCostOf model
        let! permille = permille
        let! burst = Gen.choose64 (maxCost, max maxCost (4L * Milli))
        let! multiple = Gen.choose (1, 4)
        let! maxInFlight = Gen.choose (minInFlight, 256)
        let! contended = Gen.choose (minInFlight, maxInFlight)

        return
            {
                Model = model
                CapacityPermille = permille
                BurstCost = burst
                LatencyMultiple = multiple
                MaxInFlight = maxInFlight
                ContendedInFlight = contended
            }
    }

let private queueSpec (load: Gen<Load>) (latency: Gen<LatencyClass>) =
    gen {
        let! shares = shares
        let! latency = latency
        let! load = load
        let! writes = Gen.frequency [ 2, Gen.constant 0; 1, Gen.choose (0, 1000) ]
        let! maxSize = Gen.choose (0, sizes.Length - 1)

        return
            {
                Shares = shares
                Latency = latency
                Load = load
                WritePermille = writes
                MaxSize = maxSize
            }
    }

let private anyLoad =
    Gen.frequency
        [
            1, Gen.constant Backlogged
            2, Gen.choose (1, 32) |> Gen.map ClosedLoop
            2,
            gen {
                let! depth = Gen.choose (1, 32)
                let! on = Gen.choose64 (100L * Micro, 50L * Milli)
                let! off = Gen.choose64 (100L * Micro, 100L * Milli)
                let! phase = Gen.choose64 (0L, on + off - 1L)
                return OnOff(depth, on, off, phase)
            }
        ]

let private scenario (queues: DeviceModel -> Gen<IoQueueSpec array>) (permille: Gen<int>) minInFlight duration =
    gen {
        let! model = deviceModel
        let! config = config model permille minInFlight
        let! queues = queues model
        let! seed = seed

        return
            {
                Config = config
                Queues = queues
                DurationNs = duration
                Seed = seed
            }
    }
    |> Arb.fromGen

let private anyPermille =
    Gen.frequency [ 2, Gen.constant 1000; 1, Gen.choose (1, 1000) ]

/// A queue of throughput work.
let private throughput load =
    queueSpec load (Gen.constant LatencyClass.NotImportant)

/// 1 to `most` queues of any load and class.
let private anyQueues most =
    Gen.choose (1, most)
    |> Gen.bind (fun n -> Gen.arrayOfLength n (queueSpec anyLoad latency))

/// The bucket's rate: device-nanoseconds of cost per nanosecond.
let private rateOf (scenario: IoScenario) =
    float scenario.Config.CapacityPermille / 1000.0

let private direction = Gen.elements [ true; false ]

let private costTests =
    testList
        "IoCost"
        [
            testPropertyWithConfig
                quick
                "costs at least one request's share of the IOPS and its bytes' of the bandwidth"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 deviceModel direction (Gen.choose64 (0L, 1L <<< 32))))
                (fun (model, isWrite, bytes) ->
                    let cost = float (IoCost.ofRequest model isWrite bytes)

                    let iops, bw =
                        if isWrite then
                            model.WriteIops, model.WriteBandwidth
                        else
                            model.ReadIops, model.ReadBandwidth

                    let perRequest = 1e9 / float iops
                    let transfer = float bytes * 1e9 / float bw
                    Expect.isGreaterThanOrEqual cost perRequest "IOPS bound"
                    Expect.isGreaterThanOrEqual cost transfer "bandwidth bound"
                    Expect.isLessThanOrEqual cost (max perRequest transfer + 1.0) "no more")

            testPropertyWithConfig quick "grows with the size"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 deviceModel direction (Gen.two (Gen.choose64 (0L, 1L <<< 30)))))
                (fun (model, isWrite, (a, b)) ->
                    let lo, hi = min a b, max a b

                    let costLo, costHi =
                        IoCost.ofRequest model isWrite lo, IoCost.ofRequest model isWrite hi

                    Expect.isLessThanOrEqual costLo costHi "monotone")
        ]

/// Queue states as the scheduler could hold them; virtual times from a small set so that ties are common.
let private ioQueueState =
    gen {
        let! shares = shares
        let! latency = latency
        let! vt = Gen.elements [ 0L; 5L; 7L; 1L <<< 40 ]
        let! pending = Gen.frequency [ 1, Gen.constant 0; 2, Gen.choose (1, 10) ]
        let! head = Gen.choose64 (1L, 2L * Milli)
        let! inFlight = Gen.choose (0, 10)
        let! last = Gen.choose64 (0L, 3L)

        return
            { IoScheduler.createQueue shares latency with
                VirtualTime = vt
                Pending = pending
                HeadCost = (if pending > 0 then head else 0L)
                InFlight = inFlight
                InFlightCost = int64 inFlight * head
                LastDispatchNs = last
            }
    }

/// A model no test below depends on, for transitions that ignore it.
let private unitModel =
    {
        ReadIops = 1L
        WriteIops = 1L
        ReadBandwidth = 1L
        WriteBandwidth = 1L
        ReadLatencyNs = 1L
    }

let private decisionTests =
    testList
        "decisions"
        [
            testPropertyWithConfig quick "pickNext: I/O waiting and the least virtual time, Matters first on ties"
            <| Prop.forAll
                (Arb.fromGen (Gen.choose (0, 8) |> Gen.bind (fun n -> Gen.arrayOfLength n ioQueueState)))
                (fun queues ->
                    let reference =
                        queues
                        |> Array.indexed
                        |> Array.filter (fun (_, q) -> q.Pending > 0)
                        |> Array.sortBy (fun (i, q) ->
                            q.VirtualTime, not (LatencyClass.matters q.Latency), q.LastDispatchNs, i)
                        |> Array.tryHead
                        |> Option.map fst
                        |> Option.defaultValue -1

                    Expect.equal (IoScheduler.pickNext (ReadOnlySpan queues)) reference "the reference order")

            testPropertyWithConfig
                quick
                "enqueue on a queue with none waiting raises it to the watermark, or only counts"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 ioQueueState (Gen.choose64 (0L, 1L <<< 41)) (Gen.choose64 (1L, Milli))))
                (fun (q, watermark, cost) ->
                    let state =
                        { IoScheduler.create (IoScheduler.defaultConfig unitModel) 0L with
                            Watermark = watermark
                        }

                    let queues = [| q |]
                    IoScheduler.enqueue (Span queues) 0 cost state
                    let after = queues[0]
                    Expect.equal after.Pending (q.Pending + 1) "counted"

                    if q.Pending = 0 then
                        Expect.equal
                            after.VirtualTime
                            (max q.VirtualTime watermark)
                            "raised to the watermark, no further"

                        Expect.equal after.HeadCost cost "the new head"
                    else
                        Expect.equal after.VirtualTime q.VirtualTime "unchanged"
                        Expect.equal after.HeadCost q.HeadCost "head unchanged")

            testPropertyWithConfig
                quick
                "next never dispatches past MaxInFlight nor the latency cap (beyond one request)"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! model = deviceModel
                        let! config = config model anyPermille 1
                        let! n = Gen.choose (1, 6)
                        let! queues = Gen.arrayOfLength n ioQueueState
                        let! inFlight = Gen.choose (0, 300)
                        let! inFlightCost = Gen.choose64 (0L, 5L * Milli)
                        let! now = Gen.choose64 (0L, 10L * Milli)
                        return config, queues, inFlight, inFlightCost, now
                    }
                ))
                (fun (config, queues, inFlight, inFlightCost, now) ->
                    let state =
                        { IoScheduler.create config 0L with
                            InFlight = inFlight
                            InFlightCost = (if inFlight = 0 then 0L else inFlightCost)
                        }

                    match IoScheduler.next (ReadOnlySpan queues) now state with
                    | IoDecision.Dispatch q ->
                        Expect.isGreaterThan queues[q].Pending 0 "has I/O waiting"

                        if state.InFlight > 0 then
                            Expect.isLessThan state.InFlight state.MaxInFlight "room in depth"

                            if IoScheduler.contended (ReadOnlySpan queues) then
                                Expect.isLessThan state.InFlight state.ContendedInFlight "room in the contended depth"

                            if IoScheduler.latencyGoalActive (ReadOnlySpan queues) then
                                let after = state.InFlightCost + queues[q].HeadCost

                                if LatencyClass.matters queues[q].Latency then
                                    Expect.isLessThanOrEqual
                                        after
                                        (2L * state.LatencyCapCost)
                                        "within the cap and its headroom"
                                else
                                    Expect.isLessThanOrEqual after state.LatencyCapCost "within the latency cap"
                    | IoDecision.Idle ->
                        Expect.isTrue (queues |> Array.forall (fun q -> q.Pending = 0)) "idle only when none waits"
                    | IoDecision.WaitTokens at -> Expect.isGreaterThan at now "tokens come later"
                    | IoDecision.WaitCompletion -> Expect.isGreaterThan state.InFlight 0 "something to complete")

            testPropertyWithConfig quick "WaitTokens says exactly when the bucket holds the head's cost"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! model = deviceModel
                        let! config = config model anyPermille 1
                        let! q = ioQueueState
                        let! tokens = Gen.choose64 (-2000L * Micro, 4000L * Micro)
                        let! now = Gen.choose64 (0L, Milli)

                        let q =
                            { q with
                                Pending = max 1 q.Pending
                                HeadCost = max 1L q.HeadCost
                                InFlight = 0
                                InFlightCost = 0L
                            }

                        return config, q, tokens, now
                    }
                ))
                (fun (config, q, tokens, now) ->
                    let created = IoScheduler.create config 0L

                    let state =
                        { created with
                            TokensMilli = min tokens (created.BurstCost * 1000L)
                        }

                    let queues = [| q |]

                    let at t =
                        IoScheduler.next (ReadOnlySpan queues) t state

                    match at now with
                    | IoDecision.WaitTokens ready ->
                        Expect.equal (at ready) (IoDecision.Dispatch 0) "dispatches at the time said"
                        Expect.notEqual (at (ready - 1L)) (IoDecision.Dispatch 0) "not a nanosecond sooner"
                    | d -> Expect.equal d (IoDecision.Dispatch 0) "dispatches when tokens suffice")
        ]

/// One step of a random command sequence against the scheduler.
type private Command =
    | Arrive of queue: int * cost: int64
    | Advance of ns: int64
    | CompleteOldest

let private command queues =
    Gen.frequency
        [
            3,
            Gen.zip (Gen.choose (0, queues - 1)) (Gen.choose64 (1L, 2L * Milli))
            |> Gen.map Arrive
            2, Gen.choose64 (0L, 200L * Micro) |> Gen.map Advance
            2, Gen.constant CompleteOldest
        ]

let private modelTests =
    testList
        "command sequences"
        [
            testPropertyWithConfig
                models
                "the scheduler's totals always equal the queues' and the bucket stays in bounds"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! model = deviceModel
                        let! config = config model anyPermille 1
                        let! n = Gen.choose (1, 5)
                        let! specs = Gen.arrayOfLength n (Gen.zip shares latency)
                        let! commands = Gen.listOf (command n)
                        return config, specs, commands
                    }
                ))
                (fun (config, specs, commands) ->
                    let queues = specs |> Array.map (fun (s, l) -> IoScheduler.createQueue s l)
                    let fifos = Array.init queues.Length (fun _ -> Queue<int64>())
                    let device = Queue<struct (int * int64)>()
                    let mutable state = IoScheduler.create config 0L
                    let mutable now = 0L

                    let check () =
                        Expect.equal state.InFlight (queues |> Array.sumBy _.InFlight) "in flight"
                        Expect.equal state.InFlightCost (queues |> Array.sumBy _.InFlightCost) "in-flight cost"
                        Expect.equal state.InFlight device.Count "as the device says"
                        Expect.isLessThanOrEqual state.TokensMilli (state.BurstCost * 1000L) "bucket within its burst"
                        Expect.isLessThanOrEqual state.InFlight state.MaxInFlight "depth within the limit"

                        for i in 0 .. queues.Length - 1 do
                            Expect.equal queues[i].Pending fifos[i].Count "pending as the FIFO"

                            let head = if fifos[i].Count > 0 then fifos[i].Peek() else 0L
                            Expect.equal queues[i].HeadCost head "head cost as the FIFO's"

                    for c in commands do
                        match c with
                        | Arrive(q, cost) ->
                            fifos[q].Enqueue cost
                            IoScheduler.enqueue (Span queues) q cost state
                        | Advance ns -> now <- now + ns
                        | CompleteOldest ->
                            if device.Count > 0 then
                                let struct (q, cost) = device.Dequeue()
                                state <- IoScheduler.complete (Span queues) q cost state

                        // The shell's loop: dispatch until told to wait.
                        let mutable go = true

                        while go do
                            match IoScheduler.next (ReadOnlySpan queues) now state with
                            | IoDecision.Dispatch q ->
                                let cost = fifos[q].Dequeue()
                                let nextHead = if fifos[q].Count > 0 then fifos[q].Peek() else 0L
                                state <- IoScheduler.dispatch (Span queues) q nextHead now state
                                device.Enqueue(struct (q, cost))
                            | _ -> go <- false

                        check ())
        ]

/// 2 to 4 always-backlogged queues, any shares and classes.
let private backloggedScenario =
    scenario
        (fun _ ->
            Gen.choose (2, 4)
            |> Gen.bind (fun n -> Gen.arrayOfLength n (queueSpec (Gen.constant Backlogged) latency)))
        anyPermille
        1
        Second

let private simulationTests =
    testList
        "simulated"
        [
            testPropertyWithConfig
                ioSimulations
                "under saturation, dispatched cost follows the I/O shares over a second"
            <| Prop.forAll backloggedScenario (fun scenario ->
                let trace = simulate scenario
                let total = trace.FinalQueues |> Array.sumBy (fun q -> q.DispatchedCost)
                let weights = scenario.Queues |> Array.sumBy (fun q -> int64 q.Shares)
                let maxCost = maxCostOf scenario.Config.Model

                for i in 0 .. scenario.Queues.Length - 1 do
                    let shares = scenario.Queues[i].Shares
                    let expected = float total * float shares / float weights
                    let got = float trace.FinalQueues[i].DispatchedCost
                    // Virtual-time fairness keeps every backlogged queue within a request or two of its share.
                    let slack = 0.01 * float total + 2.0 * float maxCost
                    let what = $"queue {i} (shares {shares}): {got} vs {expected} of {total}"
                    Expect.isLessThanOrEqual (abs (got - expected)) slack what)

            testPropertyWithConfig
                ioSimulations
                "where the bucket applies (queues contend, or the shard has part of the device), dispatched cost never exceeds its rate over any window + burst"
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.oneof
                        [
                            (scenario (fun _ -> anyQueues 5) (Gen.choose (1, 999)) 1 (200L * Milli)).Generator
                            (scenario
                                (fun _ ->
                                    Gen.choose (2, 5)
                                    |> Gen.bind (fun n ->
                                        Gen.arrayOfLength n (queueSpec (Gen.constant Backlogged) latency)))
                                anyPermille
                                1
                                (200L * Milli))
                                .Generator
                        ]
                ))
                (fun scenario ->
                    let trace = simulate scenario
                    let rate = rateOf scenario
                    let burst = float scenario.Config.BurstCost
                    // D(t) − rate·t over dispatch instants; any window's excess is a later value minus an earlier one
                    // taken just before its dispatch. The bucket starts full, so from 0 the allowance is burst too.
                    let mutable cumulative = 0.0
                    let mutable leastBefore = 0.0
                    let mutable worst = 0.0

                    for d in trace.Dispatches do
                        let t = float d.AtNs * rate
                        leastBefore <- min leastBefore (cumulative - t)
                        cumulative <- cumulative + float d.Cost
                        worst <- max worst (cumulative - t - leastBefore)

                    Expect.isLessThanOrEqual worst (burst + 1.0) "within rate × window + burst")

            testPropertyWithConfig ioSimulations "one active queue gets the full capacity"
            <| Prop.forAll
                (scenario
                    (fun _ -> throughput (Gen.constant Backlogged) |> Gen.map Array.singleton)
                    anyPermille
                    64
                    (200L * Milli))
                (fun scenario ->
                    let trace = simulate scenario
                    let got = float trace.FinalQueues[0].DispatchedCost
                    let capacity = rateOf scenario * float scenario.DurationNs
                    let maxCost = float (maxCostOf scenario.Config.Model)
                    let burst = float scenario.Config.BurstCost
                    Expect.isGreaterThanOrEqual got (capacity - maxCost) "at least the rate"

                    if scenario.Config.CapacityPermille < 1000 then
                        Expect.isLessThanOrEqual
                            got
                            (capacity + burst + 1.0)
                            "a part of the device: at most rate + burst"
                    else
                        // Alone on the whole device the bucket does not apply: the device (one device-ns per ns) and
                        // what is in flight at the end bound it.
                        let inFlight = float scenario.Config.MaxInFlight * maxCost

                        Expect.isLessThanOrEqual
                            got
                            (float scenario.DurationNs + inFlight)
                            "the whole device: at most its capacity")

            testPropertyWithConfig
                ioSimulations
                "work-conserving: queues that come and go leave their part to the others"
            <| Prop.forAll
                (scenario
                    (fun _ ->
                        gen {
                            let! hog = throughput (Gen.constant Backlogged)
                            let! n = Gen.choose (1, 4)
                            let! others = Gen.arrayOfLength n (throughput anyLoad)
                            return Array.append [| hog |] others
                        })
                    anyPermille
                    64
                    (200L * Milli))
                (fun scenario ->
                    let trace = simulate scenario
                    let total = trace.FinalQueues |> Array.sumBy (fun q -> float q.DispatchedCost)
                    let capacity = rateOf scenario * float scenario.DurationNs
                    let maxCost = float (maxCostOf scenario.Config.Model)
                    Expect.isGreaterThanOrEqual total (capacity - maxCost) "the device's whole capacity is used")

            testPropertyWithConfig ioSimulations "nothing starves: a queue with I/O waiting dispatches within a bound"
            <| Prop.forAll (scenario (fun _ -> anyQueues 5) anyPermille 1 (500L * Milli)) (fun scenario ->
                let trace = simulate scenario
                let model = scenario.Config.Model
                let maxCost = float (maxCostOf model)
                let minCost = float (IoCost.ofRequest model false 4096L)
                let weights = scenario.Queues |> Array.sumBy (fun q -> float q.Shares)
                let n = float scenario.Queues.Length
                let rate = rateOf scenario

                for i in 0 .. scenario.Queues.Length - 1 do
                    // Before queue i dispatches, each other queue dispatches at most its shares' worth of one of
                    // i's requests plus one of its own: cost ≤ maxCost × (W / w_i + n). That cost takes its tokens
                    // (cost / rate), and in the worst mode (latency cap below one request) each request goes alone
                    // and takes up to latency + cost. Add a full bucket's refill and the requests in flight before.
                    let others = maxCost * (weights / float scenario.Queues[i].Shares + n)
                    let requests = others / minCost + n + float scenario.Config.MaxInFlight

                    let bound =
                        others / rate
                        + requests * (float model.ReadLatencyNs + maxCost)
                        + float scenario.Config.BurstCost / rate

                    Expect.isLessThanOrEqual (float trace.LongestWaitNs[i]) bound $"queue {i} waited")

            testPropertyWithConfig ioSimulations "while a Matters queue is active, the device's queue meets the goal"
            <| Prop.forAll
                (scenario
                    (fun _ ->
                        gen {
                            let! n = Gen.choose (1, 3)

                            let! hogs =
                                Gen.arrayOfLength n (throughput (Gen.elements [ Backlogged; ClosedLoop 64 ]))

                            let! budget = Gen.choose64 (10L * Micro, 10L * Milli)
                            let! load = anyLoad

                            let! sensitive =
                                queueSpec (Gen.constant load) (Gen.constant (LatencyClass.Matters budget))

                            return
                                Array.append
                                    hogs
                                    [|
                                        { sensitive with
                                            MaxSize = 0
                                            WritePermille = 0
                                        }
                                    |]
                        })
                    anyPermille
                    1
                    (200L * Milli))
                (fun scenario ->
                    let trace = simulate scenario
                    let cap = (IoScheduler.create scenario.Config 0L).LatencyCapCost
                    let model = scenario.Config.Model

                    for d in trace.Dispatches do
                        if d.GoalActive && d.InFlightAfter > 1 then
                            if LatencyClass.matters scenario.Queues[d.Queue].Latency then
                                Expect.isLessThanOrEqual
                                    d.InFlightCostAfter
                                    (2L * cap)
                                    "within the cap and its headroom"
                            else
                                Expect.isLessThanOrEqual d.InFlightCostAfter cap "in-flight cost within the cap"

                    // Once on the device, latency-sensitive requests complete within the goal plus the headroom (one
                    // cap more; or their own cost, for one that went alone).
                    let goal = int64 scenario.Config.LatencyMultiple * model.ReadLatencyNs + cap

                    for c in trace.Completions do
                        if LatencyClass.matters scenario.Queues[c.Queue].Latency then
                            let bound = max goal (max c.Cost model.ReadLatencyNs)
                            Expect.isLessThanOrEqual (c.CompletedNs - c.DispatchedNs) bound "latency within the goal")
        ]

let private latencyTests =
    testList
        "simulated, latency and idleness"
        [
            testPropertyWithConfig
                ioSimulations
                "a queue that was idle banks nothing: from its first request, its share"
            <| Prop.forAll
                (scenario
                    (fun _ ->
                        gen {
                            let! hog = throughput (Gen.constant Backlogged)
                            let! start = Gen.choose64 (50L * Milli, 150L * Milli)
                            let! late = queueSpec (Gen.constant (LateBacklogged start)) latency
                            return [| hog; late |]
                        })
                    anyPermille
                    1
                    (300L * Milli))
                (fun scenario ->
                    let trace = simulate scenario

                    let start =
                        match scenario.Queues[1].Load with
                        | LateBacklogged s -> s
                        | _ -> 0L

                    let mutable total = 0.0
                    let mutable late = 0.0

                    for d in trace.Dispatches do
                        if d.AtNs >= start then
                            total <- total + float d.Cost

                            if d.Queue = 1 then
                                late <- late + float d.Cost

                    let weights = scenario.Queues[0].Shares + scenario.Queues[1].Shares
                    let share = float scenario.Queues[1].Shares / float weights
                    let slack = 0.01 * total + 2.0 * float (maxCostOf scenario.Config.Model)
                    Expect.isLessThanOrEqual late (share * total + slack) "no more than its share after waking")

            testPropertyWithConfig ioSimulations "a Matters QD1 reader beside hogs: reads within the goal + their turns"
            <| Prop.forAll
                (scenario
                    (fun _ ->
                        gen {
                            let! n = Gen.choose (1, 3)
                            let! hogs = Gen.arrayOfLength n (throughput (Gen.constant Backlogged))
                            let! budget = Gen.choose64 (10L * Micro, 10L * Milli)
                            let sensitive = Gen.constant (LatencyClass.Matters budget)
                            let! reader = queueSpec (Gen.constant (ClosedLoop 1)) sensitive
                            let most = hogs |> Array.map _.Shares |> Array.max
                            let! readerShares = Gen.choose (most, ShareMath.Max)

                            let reader =
                                { reader with
                                    MaxSize = 0
                                    WritePermille = 0
                                    Shares = readerShares
                                }

                            return Array.append hogs [| reader |]
                        })
                    (Gen.constant 1000)
                    1
                    (200L * Milli))
                (fun scenario ->
                    // A goal of one unloaded latency allows one request at a time; 2 and up are the useful goals.
                    let multiple = max 2 scenario.Config.LatencyMultiple

                    let scenario =
                        { scenario with
                            Config.LatencyMultiple = multiple
                        }

                    let trace = simulate scenario
                    let model = scenario.Config.Model
                    let reader = scenario.Queues.Length - 1
                    let goal = int64 multiple * model.ReadLatencyNs
                    let maxCost = maxCostOf model
                    let mutable worst = 0L

                    for c in trace.Completions do
                        if c.Queue = reader then
                            worst <- max worst (c.CompletedNs - c.EnqueuedNs)

                    // Once enqueued, the reader waits for what is in flight to make room (the cap's drain, or one hog
                    // request that went alone); then for each hog that stands below it in virtual time to dispatch its
                    // way past — at most one request plus the reader's cost, since the reader has at least each hog's
                    // shares; each takes at most max(goal, maxCost). Then it completes within the goal. Without the
                    // cap the hogs would fill the device up to MaxInFlight and the burst.
                    let read = IoCost.ofRequest model false 4096L
                    let hogs = int64 (scenario.Queues.Length - 1)
                    let bound = goal + (hogs + 1L) * (max goal maxCost + read)
                    Expect.isLessThanOrEqual worst bound "enqueue to completion within the goal plus the hogs' turns")
        ]

/// Queue 0, latency-sensitive, dispatched one 4 KiB read that completed (nothing of its own waits or flies any more);
/// queue 1 has far more waiting than the cap allows in flight. The state, the queues and the read's cost.
let private readerThenBacklog model =
    let mutable state = IoScheduler.create (IoScheduler.defaultConfig model) 0L

    let queues =
        [|
            IoScheduler.createQueue 100 (LatencyClass.Matters 1_000_000L)
            IoScheduler.createQueue 100 LatencyClass.NotImportant
        |]

    let read = IoCost.ofRequest model false 4096L
    IoScheduler.enqueue (Span queues) 0 read state
    state <- IoScheduler.dispatch (Span queues) 0 0L 0L state
    state <- IoScheduler.complete (Span queues) 0 read state

    for _ in 1..10_000 do
        IoScheduler.enqueue (Span queues) 1 read state

    state, queues, read

/// A QD1 latency-sensitive reader has nothing waiting or in flight between its reads: the goal must hold through
/// that gap, or the others fill the device's queue right before its next read.
let private holdTests =
    testList
        "latency hold"
        [
            testPropertyWithConfig
                quick
                "after a latency-sensitive dispatch the others stay within the cap for LatencyHoldNs, then not"
            <| Prop.forAll (Arb.fromGen deviceModel) (fun model ->
                let start, queues, read = readerThenBacklog model
                let mutable state = start

                let dispatchAll (now: int64) =
                    let mutable go = true

                    while go do
                        match IoScheduler.next (ReadOnlySpan queues) now state with
                        | IoDecision.Dispatch q -> state <- IoScheduler.dispatch (Span queues) q read now state
                        | _ -> go <- false

                let refill =
                    { state with
                        TokensMilli = state.BurstCost * 1000L
                    }

                state <- refill
                dispatchAll 1L
                let held = state.InFlightCost
                Expect.isLessThanOrEqual held (max read state.LatencyCapCost) "within the cap while the goal holds"
                // Past the hold, with tokens: the others may fill the device.
                let after = state.LatencyHoldNs + 2L

                state <-
                    { state with
                        TokensMilli = state.BurstCost * 1000L
                        RefilledNs = after
                    }

                dispatchAll after

                Expect.isTrue
                    (state.InFlight >= state.MaxInFlight
                     || state.InFlightCost > state.LatencyCapCost
                     || state.TokensMilli < read * 1000L)
                    "after the hold only depth or tokens limit them")

            testPropertyWithConfig
                quick
                "a latency-sensitive read does not wait for the others' completions: the headroom"
            <| Prop.forAll (Arb.fromGen deviceModel) (fun model ->
                let start, queues, read = readerThenBacklog model
                let mutable state = start
                // The others fill the device up to the cap (tokens aside).
                let mutable go = true

                while go do
                    state <-
                        { state with
                            TokensMilli = state.BurstCost * 1000L
                        }

                    match IoScheduler.next (ReadOnlySpan queues) 1L state with
                    | IoDecision.Dispatch q -> state <- IoScheduler.dispatch (Span queues) q read 1L state
                    | _ -> go <- false

                Expect.equal
                    (IoScheduler.next (ReadOnlySpan queues) 1L state)
                    IoDecision.WaitCompletion
                    "the others wait"

                IoScheduler.enqueue (Span queues) 0 read state

                Expect.equal
                    (IoScheduler.next (ReadOnlySpan queues) 1L state)
                    (IoDecision.Dispatch 0)
                    "the reader goes at once")
        ]

let tests =
    testList
        "IoScheduler"
        [
            costTests
            decisionTests
            modelTests
            simulationTests
            latencyTests
            holdTests
        ]

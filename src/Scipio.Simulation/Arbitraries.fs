namespace Scipio.Simulation

open System
open FsCheck
open FsCheck.FSharp
open Scipio.Core

/// FsCheck generators of task queues and scenarios, for properties over your own configurations (and the ones
/// Scipio's property suite checks the core with). Combine them with your fixed queues through ScenarioArb.
[<RequireQualifiedAccess>]
module ScenarioGen =
    /// A seed for a scenario.
    let seed: Gen<uint64> = Gen.choose64 (0L, Int64.MaxValue) |> Gen.map uint64

    /// Valid shares (1..1000), with the bounds and round numbers more likely than a uniform draw makes them.
    let shares: Gen<int> =
        Gen.frequency
            [
                6, Gen.choose (ShareMath.Min, ShareMath.Max)
                1, Gen.elements [ ShareMath.Min; 2; 100; 500; ShareMath.Max - 1; ShareMath.Max ]
            ]

    /// A latency class: NotImportant two times in three, otherwise Matters with a budget of 10 µs to 10 ms.
    let latency: Gen<LatencyClass> =
        Gen.frequency
            [
                2, Gen.constant LatencyClass.NotImportant
                1, Gen.choose64 (Nanos.us 10.0, Nanos.ms 10.0) |> Gen.map LatencyClass.Matters
            ]

    /// A preempt interval of 0.5 to 2 ms (the shard's default is 1 ms).
    let preemptInterval: Gen<int64> = Gen.choose64 (Nanos.us 500.0, Nanos.ms 2.0)

    /// The shortest and longest task of a queue within minNs..maxNs.
    let tasksWithin (minNs: int64, maxNs: int64) : Gen<int64 * int64> =
        gen {
            let! lo = Gen.choose64 (minNs, maxNs)
            let! hi = Gen.choose64 (lo, maxNs)
            return lo, hi
        }

    /// The shortest and longest task of a queue written with preemption points: from 5 µs, at most 100 µs apart.
    let taskLengths: Gen<int64 * int64> =
        gen {
            let! lo = Gen.choose64 (Nanos.us 5.0, Nanos.us 50.0)

            let! spread =
                Gen.frequency [ 1, Gen.constant 0L; 3, Gen.choose64 (0L, Nanos.us 100.0) ]

            return lo, lo + spread
        }

    /// A queue named `name` that always has work from the start, with tasks from `tasks`.
    let hogOf (tasks: Gen<int64 * int64>) (name: string) (shares: int) (latency: LatencyClass) : Gen<QueueSpec> =
        gen {
            let! lo, hi = tasks

            return
                {
                    Name = name
                    Shares = shares
                    Latency = latency
                    TaskMinNs = lo
                    TaskMaxNs = hi
                    FirstWorkNs = 0L
                    Work = Work.Hog
                }
        }

    /// hogOf with taskLengths.
    let hog (name: string) (shares: int) (latency: LatencyClass) : Gen<QueueSpec> =
        hogOf taskLengths name shares latency

    /// A queue named `name` that works in bursts of 1 to 70 tasks from `tasks` and sleeps 10 µs to 22 ms in
    /// between, woken by a timer or a message, first at 0 to 10 ms.
    let burstyOf
        (tasks: Gen<int64 * int64>)
        (name: string)
        (shares: Gen<int>)
        (latency: Gen<LatencyClass>)
        : Gen<QueueSpec> =
        gen {
            let! shares = shares
            let! latency = latency
            let! lo, hi = tasks
            let! tasksMin = Gen.choose (1, 20)
            let! tasksMax = Gen.choose (tasksMin, tasksMin + 50)
            let! sleepMin = Gen.choose64 (Nanos.us 10.0, Nanos.ms 2.0)
            let! sleepMax = Gen.choose64 (sleepMin, sleepMin + Nanos.ms 20.0)
            let! wakeBy = Gen.elements [ WakeSource.Timer; WakeSource.Message ]
            let! first = Gen.choose64 (0L, Nanos.ms 10.0)

            return
                {
                    Name = name
                    Shares = shares
                    Latency = latency
                    TaskMinNs = lo
                    TaskMaxNs = hi
                    FirstWorkNs = first
                    Work = Work.Bursty(tasksMin, tasksMax, sleepMin, sleepMax, wakeBy)
                }
        }

    /// burstyOf with taskLengths.
    let bursty (name: string) (shares: Gen<int>) (latency: Gen<LatencyClass>) : Gen<QueueSpec> =
        burstyOf taskLengths name shares latency

    /// A throughput queue (NotImportant, any shares) named `name`: a hog one time in three, bursty otherwise, with
    /// tasks from `tasks`.
    let backgroundOf (tasks: Gen<int64 * int64>) (name: string) : Gen<QueueSpec> =
        Gen.frequency
            [
                1, shares |> Gen.bind (fun s -> hogOf tasks name s LatencyClass.NotImportant)
                2, burstyOf tasks name shares (Gen.constant LatencyClass.NotImportant)
            ]

    /// backgroundOf with taskLengths.
    let background (name: string) : Gen<QueueSpec> = backgroundOf taskLengths name

    /// Names that are unique: a name already used gets "-2", "-3"… (reports find queues by name).
    let uniqueNames (queues: QueueSpec array) =
        let seen = Collections.Generic.Dictionary<string, int>()

        queues
        |> Array.map (fun q ->
            match seen.TryGetValue q.Name with
            | true, count ->
                seen[q.Name] <- count + 1

                { q with
                    Name = $"{q.Name}-{count + 1}"
                }
            | _ ->
                seen[q.Name] <- 1
                q)

    /// A one-second scenario of `queues` (in their order; names made unique) with a preempt interval of 0.5 to 2 ms,
    /// a spin of 0 (half the time) to 100 µs, and a seed.
    let scenario (queues: Gen<QueueSpec array>) : Gen<Scenario> =
        gen {
            let! queues = queues
            let! interval = preemptInterval

            let! spin =
                Gen.frequency [ 1, Gen.constant 0L; 1, Gen.choose64 (0L, Nanos.us 100.0) ]

            let! seed = seed

            return
                {
                    Queues = uniqueNames queues
                    PreemptIntervalNs = interval
                    SpinNs = spin
                    DurationNs = Nanos.seconds 1.0
                    Seed = seed
                }
        }

    /// `scenario` with the queues in a random order (the scheduler must not favour the first or the last).
    let shuffledScenario (queues: Gen<QueueSpec array>) : Gen<Scenario> =
        scenario (queues |> Gen.bind (fun qs -> Gen.shuffle qs |> Gen.map Array.ofSeq))

/// Shrinkers: when FsCheck finds a failing scenario, these try simpler ones (fewer queues, shorter tasks, smaller
/// bursts, plain shares, a shorter run) and keep those that still fail.
[<RequireQualifiedAccess>]
module ScenarioShrink =
    /// Simpler versions of a queue: tasks nearer the shortest, then shorter; bursts of fewer tasks; 100 shares;
    /// work from the start.
    let queue (q: QueueSpec) : QueueSpec seq =
        seq {
            if q.TaskMaxNs > q.TaskMinNs then
                { q with TaskMaxNs = q.TaskMinNs }

                { q with
                    TaskMaxNs = q.TaskMinNs + (q.TaskMaxNs - q.TaskMinNs) / 2L
                }

            if q.TaskMinNs > Nanos.us 1.0 then
                let lo = max (Nanos.us 1.0) (q.TaskMinNs / 2L)

                { q with
                    TaskMinNs = lo
                    TaskMaxNs = max lo (q.TaskMaxNs - (q.TaskMinNs - lo))
                }

            match q.Work with
            | Work.Bursty(lo, hi, sleepMin, sleepMax, wakeBy) when hi > lo ->
                { q with
                    Work = Work.Bursty(lo, lo, sleepMin, sleepMax, wakeBy)
                }
            | _ -> ()

            if q.Shares <> 100 then
                { q with Shares = 100 }

            if q.FirstWorkNs > 0L then
                { q with FirstWorkNs = 0L }
        }

    /// Simpler versions of a scenario that leave the queues `keep` says to keep as they are: without one of the
    /// others, with one of the others simpler, or simulated for half as long (down to 50 ms).
    let scenario (keep: QueueSpec -> bool) (s: Scenario) : Scenario seq =
        seq {
            for i in 0 .. s.Queues.Length - 1 do
                if not (keep s.Queues[i]) && s.Queues.Length > 1 then
                    { s with
                        Queues = Array.removeAt i s.Queues
                    }

            if s.DurationNs >= Nanos.ms 100.0 then
                { s with
                    DurationNs = s.DurationNs / 2L
                }

            for i in 0 .. s.Queues.Length - 1 do
                if not (keep s.Queues[i]) then
                    for simpler in queue s.Queues[i] do
                        { s with
                            Queues = Array.updateAt i simpler s.Queues
                        }
        }

/// FsCheck arbitraries of scenarios (generator and shrinker):
/// `Prop.forAll (ScenarioArb.withBackground [ mine ] 8) …`.
[<RequireQualifiedAccess>]
module ScenarioArb =
    /// Scenarios of your `queues`, kept as they are, beside 0 to `maxBackground` throughput queues from
    /// `background` (named "background", made unique): FsCheck searches the background for a counterexample, and
    /// shrinks it to the fewest, simplest background queues that still fail.
    let withBackgroundOf
        (background: Gen<QueueSpec>)
        (queues: QueueSpec list)
        (maxBackground: int)
        : Arbitrary<Scenario> =
        let mine = queues |> List.map _.Name |> Set.ofList

        let generator =
            gen {
                let! count = Gen.choose (0, maxBackground)
                let! others = Gen.arrayOfLength count background
                return Array.append (Array.ofList queues) others
            }
            |> ScenarioGen.scenario

        Arb.fromGenShrink (generator, ScenarioShrink.scenario (fun q -> mine.Contains q.Name))

    /// withBackgroundOf with ScenarioGen.background (tasks of 5 to 150 µs: code with preemption points).
    let withBackground (queues: QueueSpec list) (maxBackground: int) : Arbitrary<Scenario> =
        withBackgroundOf (ScenarioGen.background "background") queues maxBackground

    /// Scenarios of 1 to 8 queues of any kind (hogs and bursty queues, any shares and latency classes), in a random
    /// order, shrinking every queue.
    let any: Arbitrary<Scenario> =
        let queue =
            Gen.frequency
                [
                    1,
                    gen {
                        let! shares = ScenarioGen.shares
                        let! latency = ScenarioGen.latency
                        return! ScenarioGen.hog "hog" shares latency
                    }
                    2, ScenarioGen.bursty "bursty" ScenarioGen.shares ScenarioGen.latency
                ]

        let generator =
            Gen.choose (1, 8)
            |> Gen.bind (fun n -> Gen.arrayOfLength n queue)
            |> ScenarioGen.shuffledScenario

        Arb.fromGenShrink (generator, ScenarioShrink.scenario (fun _ -> false))

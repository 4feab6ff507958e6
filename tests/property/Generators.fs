/// Generators shared by the areas and the FsCheck configurations. Shares, latency classes and seeds are the public
/// simulator's (Scipio.Simulation.ScenarioGen), so that the suite and users draw them alike.
module Scipio.Property.Tests.Generators

open System
open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Simulation

/// Properties over single transitions: cheap, so many cases.
let quick =
    { FsCheckConfig.defaultConfig with
        maxTest = 500
    }

/// Model-based command sequences: each case runs a few hundred commands.
let models =
    { FsCheckConfig.defaultConfig with
        maxTest = 200
        endSize = 200
    }

/// Whole simulated seconds: each case runs up to a few hundred thousand simulated tasks, and the suite must stay
/// well under 30 s on two cores.
let simulations =
    { FsCheckConfig.defaultConfig with
        maxTest = 100
    }

/// Nanoseconds in a microsecond, for readable literals.
[<Literal>]
let Micro = 1_000L

/// Nanoseconds in a millisecond.
[<Literal>]
let Milli = 1_000_000L

/// Nanoseconds in a second.
[<Literal>]
let Second = 1_000_000_000L

/// Valid shares, with the bounds and round numbers more likely than a uniform draw would make them.
let shares = ScenarioGen.shares

/// A latency class; budgets from 10 µs to 10 ms.
let latency = ScenarioGen.latency

/// An instant: non-negative, up to a few hours of uptime, so that sums of a few of them never overflow.
let instant = Gen.choose64 (0L, 10_000L * Second)

/// Any state a queue could be in on a shard that has not run for centuries: vruntime below 2^62, so that adding a
/// realistic charge cannot overflow.
let queueState =
    gen {
        let! shares = shares
        let! latency = latency

        let! vruntime =
            Gen.frequency
                [
                    3, Gen.choose64 (0L, 1_000L * Second)
                    1, Gen.choose64 (0L, 1L <<< 62)
                    1, Gen.choose64 (0L, 3L)
                ]

        let! runnable = Gen.elements [ true; false ]
        let! since = instant
        let! lastRan = instant
        let! runtime = Gen.choose64 (0L, 1L <<< 50)
        let! tasks = Gen.choose64 (0L, 1L <<< 40)
        let! selected = Gen.choose64 (0L, 1L <<< 40)
        let! delay = Gen.choose64 (0L, 10L * Second)

        return
            { TaskQueues.create shares latency with
                Vruntime = vruntime
                Runnable = runnable
                RunnableSinceNs = since
                LastRanNs = lastRan
                RuntimeNs = runtime
                TasksRun = tasks
                TimesSelected = selected
                MaxQueueDelayNs = delay
            }
    }

/// 0..8 queues; vruntimes drawn from a small set so that ties, which the tie-breaks decide, are common.
let queueStates =
    gen {
        let! n = Gen.choose (0, 8)
        let! states = Gen.arrayOfLength n queueState
        let! tieProne = Gen.elements [ true; false ]

        if tieProne then
            let! vruntimes = Gen.arrayOfLength n (Gen.elements [ 0L; 5L; 7L ])
            let! sinces = Gen.arrayOfLength n (Gen.elements [ 0L; 1L; 2L ])

            return
                Array.init n (fun i ->
                    { states[i] with
                        Vruntime = vruntimes[i]
                        RunnableSinceNs = sinces[i]
                        LastRanNs = sinces[(i + 1) % n]
                    })
        else
            return states
    }

/// A seed for a scenario or an Rng.
let seed = ScenarioGen.seed

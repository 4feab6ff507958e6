/// The `shard { }` builder on a real shard: it computes what `task { }` computes (generated programs with awaits,
/// try/with, try/finally, use, loops and exceptions that end them early), it refuses to start off a shard, its loops
/// allocate nothing per iteration, and its loops yield at their preemption points when, and only when, another
/// queue is owed the CPU. Every assertion is a count or a value; latencies are printed, never asserted.
module Scipio.Integration.Tests.ShardBuilderTests

open System
open System.Diagnostics
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Scipio
open Scipio.Integration.Tests.Helpers

// ---- generated programs, run by both builders ----

/// One step of a generated program.
type Step =
    /// Adds to the accumulator.
    | Add of int
    /// `let!` of a completed Task<int>.
    | AwaitTask of int
    /// `let!` of a ValueTask<int>.
    | AwaitValueTask of int
    /// `let!` of an Async<int>.
    | AwaitAsync of int
    /// `do! Shard.Yield()`: a real suspension.
    | Suspend
    /// Busy for that many microseconds without awaiting (lets the preemption timer fire).
    | Spin of int
    /// Throws ProgramError n: the rest of the program is skipped up to a handler.
    | Throw of int
    /// try body with ProgramError -> handler.
    | TryWith of body: Step list * handler: Step list
    /// try body finally (synchronous steps).
    | TryFinally of body: Step list * compensation: Step list
    /// `use` of a disposable that logs its disposal, around the body.
    | Use of Step list
    /// `while` that many times.
    | While of int * Step list
    /// `for x in items`.
    | For of int list * Step list

/// The exception generated programs throw.
exception ProgramError of int

/// What a program sees and leaves behind.
type Env() =
    /// Everything observable the program did, in order.
    member val Log = ResizeArray<string>()
    /// The accumulator.
    member val Acc = 0L with get, set

/// A disposable that logs when it is disposed.
type Logged(env: Env, name: string) =
    interface IDisposable with
        member _.Dispose() = env.Log.Add $"dispose {name}"

let private spinMicroseconds (us: int) =
    let until = Stopwatch.GetTimestamp() + int64 us * Stopwatch.Frequency / 1_000_000L

    while Stopwatch.GetTimestamp() < until do
        ()

/// The steps a `finally` runs: synchronous ones only (a finally block cannot await).
let rec private runSync (env: Env) (steps: Step list) =
    for step in steps do
        match step with
        | Add n -> env.Acc <- env.Acc + int64 n
        | Spin us -> spinMicroseconds us
        | _ -> env.Log.Add "skipped in finally"

/// The program through `shard { }`.
let rec viaShard (env: Env) (steps: Step list) : Task<unit> =
    shard {
        for step in steps do
            env.Log.Add $"step {step}"

            match step with
            | Add n -> env.Acc <- env.Acc + int64 n
            | AwaitTask n ->
                let! x = Task.FromResult n
                env.Acc <- env.Acc + int64 x
            | AwaitValueTask n ->
                let! x = ValueTask<int> n
                env.Acc <- env.Acc + int64 x
            | AwaitAsync n ->
                let! x = async { return n }
                env.Acc <- env.Acc + int64 x
            | Suspend ->
                do! Shard.Yield()
                env.Log.Add "resumed"
            | Spin us -> spinMicroseconds us
            | Throw n -> raise (ProgramError n)
            | TryWith(body, handler) ->
                try
                    do! viaShard env body
                with ProgramError n ->
                    env.Log.Add $"caught {n}"
                    do! viaShard env handler
            | TryFinally(body, compensation) ->
                try
                    do! viaShard env body
                finally
                    env.Log.Add "finally"
                    runSync env compensation
            | Use body ->
                use _ = new Logged(env, $"{body.Length}")
                do! viaShard env body
            | While(count, body) ->
                let mutable i = 0

                while i < count do
                    env.Log.Add $"iteration {i}"
                    do! viaShard env body
                    i <- i + 1
            | For(items, body) ->
                for x in items do
                    env.Log.Add $"item {x}"
                    env.Acc <- env.Acc + int64 x
                    do! viaShard env body
    }

/// The same program through `task { }`: the text of viaShard, with the other builder.
let rec viaTask (env: Env) (steps: Step list) : Task<unit> =
    task {
        for step in steps do
            env.Log.Add $"step {step}"

            match step with
            | Add n -> env.Acc <- env.Acc + int64 n
            | AwaitTask n ->
                let! x = Task.FromResult n
                env.Acc <- env.Acc + int64 x
            | AwaitValueTask n ->
                let! x = ValueTask<int> n
                env.Acc <- env.Acc + int64 x
            | AwaitAsync n ->
                let! x = async { return n }
                env.Acc <- env.Acc + int64 x
            | Suspend ->
                do! Shard.Yield()
                env.Log.Add "resumed"
            | Spin us -> spinMicroseconds us
            | Throw n -> raise (ProgramError n)
            | TryWith(body, handler) ->
                try
                    do! viaTask env body
                with ProgramError n ->
                    env.Log.Add $"caught {n}"
                    do! viaTask env handler
            | TryFinally(body, compensation) ->
                try
                    do! viaTask env body
                finally
                    env.Log.Add "finally"
                    runSync env compensation
            | Use body ->
                use _ = new Logged(env, $"{body.Length}")
                do! viaTask env body
            | While(count, body) ->
                let mutable i = 0

                while i < count do
                    env.Log.Add $"iteration {i}"
                    do! viaTask env body
                    i <- i + 1
            | For(items, body) ->
                for x in items do
                    env.Log.Add $"item {x}"
                    env.Acc <- env.Acc + int64 x
                    do! viaTask env body
    }

/// Programs of a few dozen steps at most, nested a few levels.
let private program =
    let leaf =
        Gen.frequency
            [
                4, Gen.choose (-100, 100) |> Gen.map Add
                2, Gen.choose (0, 100) |> Gen.map AwaitTask
                2, Gen.choose (0, 100) |> Gen.map AwaitValueTask
                1, Gen.choose (0, 100) |> Gen.map AwaitAsync
                2, Gen.constant Suspend
                2, Gen.choose (0, 150) |> Gen.map Spin
                1, Gen.choose (1, 9) |> Gen.map Throw
            ]

    let rec steps depth =
        gen {
            let! n = Gen.choose (0, 5)
            return! Gen.listOfLength n (step depth)
        }

    and step depth =
        if depth = 0 then
            leaf
        else
            let inner = steps (depth - 1)

            Gen.frequency
                [
                    6, leaf
                    1, Gen.map2 (fun b h -> TryWith(b, h)) inner inner
                    1, Gen.map2 (fun b c -> TryFinally(b, c)) inner (Gen.listOf (Gen.choose (0, 9) |> Gen.map Add))
                    1, Gen.map Use inner
                    1, Gen.map2 (fun k b -> While(k, b)) (Gen.choose (0, 4)) inner
                    1,
                    Gen.map2
                        (fun xs b -> For(xs, b))
                        (Gen.listOf (Gen.choose (0, 9)) |> Gen.map (List.truncate 4))
                        inner
                ]

    steps 3 |> Arb.fromGen

/// What a program returns (its accumulator, or the error that ended it) and its log.
let private outcome (run: Env -> Step list -> Task<unit>) (steps: Step list) : Task<Result<int64, int> * string list> =
    task {
        let env = Env()

        let! result =
            task {
                try
                    do! run env steps
                    return Ok env.Acc
                with ProgramError n ->
                    return Error n
            }

        return result, List.ofSeq env.Log
    }

/// A CPU hog for a background queue: a while loop with a manual preemption point, so that it allocates nothing of its
/// own (a `for` over a range would allocate an enumerator per batch); runs until `stop` is set.
let private hog (stop: Flag) () : Task<int64> =
    task {
        let mutable x = 0x9E3779B97F4A7C15UL
        let mutable batches = 0L
        let mutable i = 0

        while not stop.IsSet do
            i <- 0

            while i < 1000 do
                x <- x * 6364136223846793005UL + 1442695040888963407UL
                i <- i + 1

            batches <- batches + 1L
            do! Shard.YieldIfNeeded()

        return if x = 0UL then -1L else batches
    }

/// Shard options that preempt often: a 100 µs slice, so that a Spin step lets a background queue's claim raise
/// NeedPreempt and the loops of `shard { }` take their preemption points.
let private preemptive () =
    ShardOptions(PreemptInterval = TimeSpan.FromMicroseconds 100.0)

let private sameResults =
    testPropertyWithConfig
        { FsCheckConfig.defaultConfig with
            maxTest = 60
        }
        "shard { } and task { } give the same results and the same effects, beside a queue that takes the CPU"
    <| Prop.forAll program (fun steps ->
        let viaShardResult, viaTaskResult, preempted =
            runShardWith (preemptive ()) (fun () ->
                task {
                    let background =
                        TaskQueue.create "background" (Shares.Static 100) Latency.NotImportant

                    let stop = { IsSet = false }
                    let hog = spawnInto background (hog stop)
                    let before = Shard.Stats.Preemptions
                    let! a = outcome viaShard steps
                    let! b = outcome viaTask steps
                    stop.IsSet <- true
                    let! _ = hog
                    return a, b, Shard.Stats.Preemptions - before
                })

        ignore preempted
        Expect.equal viaShardResult viaTaskResult "shard { } computes what task { } computes")

// ---- starting off a shard ----

let private offShard =
    testList
        "off a shard"
        [
            test "shard { } started off a shard throws InvalidOperationException at once, as the C# API does" {
                let thrown = thrownBy (fun () -> shard { return 1 })

                let e =
                    expectExactExn<InvalidOperationException> "shard { } on the test thread" thrown

                Expect.stringContains e.Message "shard { }" "the message names the builder"
                Expect.stringContains e.Message "Shard.Run" "and says where it works"
            }

            test "a shard { } loop that runs after leaving the shard faults its task with InvalidOperationException" {
                let thrown =
                    runShard (fun () ->
                        thrownByTask (fun () ->
                            shard {
                                do! Task.Delay(1).ConfigureAwait(false)
                                let mutable i = 0

                                while i < 3 do
                                    i <- i + 1

                                return i
                            }))

                expectExactExn<InvalidOperationException> "a loop off the shard" thrown
                |> ignore
            }

            test "Shard.Run(fun () -> shard { … }) resolves to the C# API and returns the result" {
                let result = Shard.Run(fun () -> shard { return 42 })
                Expect.equal result 42 "Shard.Run with a shard { }"
            }
        ]

// ---- the rest of task { }'s syntax ----

/// An IAsyncDisposable that logs its disposal.
type private AsyncLogged(log: ResizeArray<string>) =
    interface IAsyncDisposable with
        member _.DisposeAsync() =
            log.Add "disposed asynchronously"
            ValueTask()

let private syntax =
    test "while!, for … to, and!, use of an IAsyncDisposable and return! of a ValueTask and an Async work in shard { }" {
        let results, log =
            runShard (fun () ->
                task {
                    let log = ResizeArray<string>()

                    let! a =
                        shard {
                            let items = (Seq.ofList [ 1; 2; 3 ]).GetEnumerator()
                            let mutable sum = 0

                            while! Task.FromResult(items.MoveNext()) do
                                sum <- sum + items.Current

                            return sum
                        }

                    let! b =
                        shard {
                            let mutable sum = 0

                            for i = 1 to 10 do
                                sum <- sum + i

                            return sum
                        }

                    let! c =
                        shard {
                            let! x = Task.FromResult 4
                            and! y = Task.FromResult 5
                            return x * y
                        }

                    let! d =
                        shard {
                            use _ = new AsyncLogged(log)
                            return! ValueTask<int> 7
                        }

                    let! e = shard { return! async { return 8 } }
                    return [ a; b; c; d; e ], List.ofSeq log
                })

        Expect.equal results [ 6; 55; 20; 7; 8 ] "each construct's value"
        Expect.equal log [ "disposed asynchronously" ] "use awaited DisposeAsync"
    }

// ---- allocation and preemption points ----

/// Iterations of the loops whose allocations are counted.
let private iterations = 10_000_000L

let private allocation =
    testList
        "allocation"
        [
            test "a shard { } while loop allocates nothing per iteration" {
                let bytes, result =
                    runShard (fun () ->
                        task {
                            let before = GC.GetAllocatedBytesForCurrentThread()

                            let! sum =
                                shard {
                                    let mutable i = 0L
                                    let mutable acc = 0L

                                    while i < iterations do
                                        acc <- acc + i
                                        i <- i + 1L

                                    return acc
                                }

                            return GC.GetAllocatedBytesForCurrentThread() - before, sum
                        })

                Expect.equal result (iterations * (iterations - 1L) / 2L) "the loop ran"
                // The task and the loop's two mutables (F# keeps a mutable that a loop of a computation expression
                // uses in a ref cell, as task { } does) are allocated once; nothing per iteration.
                Expect.isLessThan bytes 1024L $"{bytes} B over {iterations} iterations"
            }

            test "a shard { } for loop over an array allocates its enumerator once, nothing per iteration" {
                let items = Array.init 1_000_000 id

                let bytes, result =
                    runShard (fun () ->
                        task {
                            let before = GC.GetAllocatedBytesForCurrentThread()

                            let! sum =
                                shard {
                                    let mutable acc = 0L

                                    for x in items do
                                        acc <- acc + int64 x

                                    return acc
                                }

                            return GC.GetAllocatedBytesForCurrentThread() - before, sum
                        })

                Expect.equal result (Array.sumBy int64 items) "the loop ran"
                Expect.isLessThan bytes 1024L $"{bytes} B over {items.Length} iterations"
            }

            test "a shard { } loop beside another queue yields at its preemption points, allocating nothing per yield" {
                let bytes, picked, yields =
                    runShardWith (preemptive ()) (fun () ->
                        task {
                            let background =
                                TaskQueue.create "background" (Shares.Static 100) Latency.NotImportant

                            let stop = { IsSet = false }
                            let hog = spawnInto background (hog stop)
                            let main = Shard.currentQueue ()
                            let pickedBefore = main.Stats.QueueSelected
                            let before = GC.GetAllocatedBytesForCurrentThread()

                            let! yields =
                                shard {
                                    let mutable i = 0L
                                    let mutable x = 0x9E3779B97F4A7C15UL

                                    while i < iterations do
                                        x <- x * 6364136223846793005UL + 1442695040888963407UL
                                        i <- i + 1L

                                    return if x = 0UL then -1L else i
                                }

                            let bytes = GC.GetAllocatedBytesForCurrentThread() - before
                            stop.IsSet <- true
                            let! _ = hog
                            return bytes, main.Stats.QueueSelected - pickedBefore, yields
                        })

                Expect.equal yields iterations "the loop ran to its end"
                Expect.isGreaterThan picked 1L "the loop gave the CPU back and was picked again"
                // Its state machine is boxed at the first yield; the hog's queue allocates nothing either.
                Expect.isLessThan bytes 4096L $"{bytes} B over {iterations} iterations and {picked} picks"
            }
        ]

// ---- a long loop beside a latency-sensitive queue ----

/// What the latency-sensitive queue saw while a long loop ran in another queue.
type private LoopRun =
    {
        Iterations: int64
        /// How long the loop ran, in ms.
        LoopMs: float
        /// Times the loop's queue was picked while the loop ran (1: it never gave the CPU back).
        LoopPicks: int64
        /// Wakes of the latency-sensitive queue that ran while the loop was still going.
        WakesDuringLoop: int
        /// Wakes that fell due while the loop ran (whenever they ran).
        Samples: int
        /// Their wake-to-run delays (timer deadline to running), in ms.
        P99Ms: float
        MaxMs: float
    }

/// The loop's iterations: 100 million.
let private longLoop = 100_000_000L

/// One xorshift step per iteration: about a nanosecond, and the JIT cannot drop it.
let inline private step (x: uint64) =
    let x = x ^^^ (x <<< 13)
    let x = x ^^^ (x >>> 7)
    x ^^^ (x <<< 17)

/// Runs `loop` in a throughput queue beside a Latency.Matters(2 ms) queue that sleeps 1 ms at a time and records
/// how late it runs (wake-to-run) while the loop goes on.
let private besideLatencyQueue (loop: unit -> Task<int64>) : LoopRun =
    runShardWith (ShardOptions(Placement = Placement.Fixed 0)) (fun () ->
        task {
            let sensitive =
                TaskQueue.create "latency" (Shares.Static 100) (Latency.Matters(ms 2.0))

            let batch = TaskQueue.create "loop" (Shares.Static 100) Latency.NotImportant
            let running = { IsSet = false }
            let finished = { IsSet = false }
            // Each wake of the sampler: when it fell due, how late it ran (ms), and whether the loop was running then.
            let wakes = ResizeArray<struct (int64 * float * bool)>()
            let mutable loopStart = Int64.MaxValue
            let mutable loopEnd = Int64.MaxValue

            let sampler =
                spawnInto sensitive (fun () ->
                    task {
                        while not finished.IsSet do
                            let due = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 1000L
                            do! Shard.Sleep(ms 1.0)

                            let late =
                                float (Stopwatch.GetTimestamp() - due) * 1000.0 / float Stopwatch.Frequency

                            wakes.Add(struct (due, late, running.IsSet))
                    })

            // Let the sampler settle into its rhythm before the loop starts.
            do! Shard.Sleep(ms 5.0)
            let picksBefore = batch.Stats.QueueSelected

            let! iterations =
                spawnInto batch (fun () ->
                    task {
                        running.IsSet <- true
                        loopStart <- Stopwatch.GetTimestamp()
                        let! n = loop ()
                        loopEnd <- Stopwatch.GetTimestamp()
                        running.IsSet <- false
                        return n
                    })

            let picks = batch.Stats.QueueSelected - picksBefore
            finished.IsSet <- true
            do! sampler

            let sorted =
                [|
                    for struct (due, late, _) in wakes do
                        if due >= loopStart && due <= loopEnd then
                            late
                |]
                |> Array.sort

            let percentile p =
                if sorted.Length = 0 then
                    nan
                else
                    sorted[max 0 (int (ceil (p * float sorted.Length)) - 1)]

            return
                {
                    Iterations = iterations
                    LoopMs = float (loopEnd - loopStart) * 1000.0 / float Stopwatch.Frequency
                    LoopPicks = picks
                    WakesDuringLoop = wakes |> Seq.filter (fun struct (_, _, during) -> during) |> Seq.length
                    Samples = sorted.Length
                    P99Ms = percentile 0.99
                    MaxMs = percentile 1.0
                }
        })

let private longLoops =
    test "a 100M-iteration shard { } loop lets a Matters(2 ms) queue run while it goes on; task { } does not" {
        let viaShard =
            besideLatencyQueue (fun () ->
                shard {
                    let mutable x = 0x9E3779B97F4A7C15UL
                    let mutable i = 0L

                    while i < longLoop do
                        x <- step x
                        i <- i + 1L

                    return if x = 0UL then -1L else i
                })

        let viaTask =
            besideLatencyQueue (fun () ->
                task {
                    let mutable x = 0x9E3779B97F4A7C15UL
                    let mutable i = 0L

                    while i < longLoop do
                        x <- step x
                        i <- i + 1L

                    return if x = 0UL then -1L else i
                })

        // The same queue while nothing else runs: the wake-up cost of the machine itself, for comparison.
        let alone =
            besideLatencyQueue (fun () ->
                task {
                    do! Shard.Sleep(ms 200.0)
                    return 0L
                })

        let line (what: string) (r: LoopRun) =
            printfn
                "  %-34s %6.0f ms: %4d wakes fell due, %4d ran during it; wake-to-run p99 %6.2f ms, max %6.2f ms; \
                 its queue picked %d time(s)"
                what
                r.LoopMs
                r.Samples
                r.WakesDuringLoop
                r.P99Ms
                r.MaxMs
                r.LoopPicks

        printfn "A Latency.Matters(2 ms) queue sleeping 1 ms at a time (budget 2 ms), beside:"
        line "a 100M-iteration shard { } loop:" viaShard
        line "the same loop in task { }:" viaTask
        line "nothing (a 200 ms sleep):" alone

        Expect.equal viaShard.Iterations longLoop "the shard { } loop ran to its end"
        Expect.equal viaTask.Iterations longLoop "the task { } loop ran to its end"
        Expect.isGreaterThan viaShard.LoopPicks 1L "the shard { } loop gave the CPU back at its preemption points"

        Expect.isGreaterThan
            viaShard.WakesDuringLoop
            0
            "the latency-sensitive queue ran while the shard { } loop went on"
        // On one thread, nothing else runs while a loop that never yields runs: a count, not a timing.
        Expect.equal viaTask.WakesDuringLoop 0 "without a yield, the latency-sensitive queue waits for the whole loop"
    }

let tests =
    testSequenced
    <| testList "shard { }" [ sameResults; syntax; offShard; allocation; longLoops ]

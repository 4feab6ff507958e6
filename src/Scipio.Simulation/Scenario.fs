namespace Scipio.Simulation

open System
open Scipio.Core

/// Durations in the simulator are nanoseconds (int64), as in Scipio.Core: exact, and what the core's transitions
/// take. These convert and spell them.
[<RequireQualifiedAccess>]
module Nanos =
    /// Microseconds in nanoseconds.
    let us (microseconds: float) = int64 (Math.Round(microseconds * 1e3))

    /// Milliseconds in nanoseconds.
    let ms (milliseconds: float) = int64 (Math.Round(milliseconds * 1e6))

    /// Seconds in nanoseconds.
    let seconds (seconds: float) = int64 (Math.Round(seconds * 1e9))

    /// A TimeSpan in nanoseconds (TimeSpan counts 100 ns ticks).
    let ofTimeSpan (span: TimeSpan) = span.Ticks * 100L

    /// Nanoseconds as a TimeSpan (rounded down to its 100 ns ticks).
    let toTimeSpan (nanoseconds: int64) = TimeSpan.FromTicks(nanoseconds / 100L)

    /// "850 µs", "2.35 ms", "1.20 s": for reports.
    let format (nanoseconds: int64) =
        let ns = float nanoseconds

        if nanoseconds = Time.Never then "never"
        elif abs ns < 1e3 then $"%d{nanoseconds} ns"
        elif abs ns < 1e6 then $"%.0f{ns / 1e3} µs"
        elif abs ns < 1e9 then $"%.2f{ns / 1e6} ms"
        else $"%.2f{ns / 1e9} s"

/// How an idle queue learns that it has work again.
[<RequireQualifiedAccess>]
type WakeSource =
    /// Its last task slept on a shard timer (Shard.Sleep, a periodic timer): the shell fires timers between runs, and
    /// a run is cut short at the next timer.
    | Timer
    /// Another queue, a completion or another thread hands it work (a channel write, a reply) at any moment: the
    /// shell notices at the next task boundary, or at once when it is parked.
    | Message

/// The work a queue has.
[<RequireQualifiedAccess>]
type Work =
    /// Never runs out of tasks once it has started: a CPU-bound loop, a batch job.
    | Hog
    /// Gets tasksMin..tasksMax tasks, runs them, then sleeps sleepMinNs..sleepMaxNs before the next burst, woken by
    /// `wakeBy`: request handling, periodic flushes, timers.
    | Bursty of tasksMin: int * tasksMax: int * sleepMinNs: int64 * sleepMaxNs: int64 * wakeBy: WakeSource

/// One simulated task queue: what Shard.CreateTaskQueue takes, and the shape of its work.
type QueueSpec =
    {
        /// The queue's name, for reports.
        Name: string
        /// CPU shares, 1..1000.
        Shares: int
        /// LatencyClass.NotImportant, or LatencyClass.Matters budgetNs.
        Latency: LatencyClass
        /// Each task (the code between two awaits, or between two preemption points of a loop) runs
        /// TaskMinNs..TaskMaxNs: the granularity at which the shard can take the CPU back from this queue.
        TaskMinNs: int64
        /// The longest task.
        TaskMaxNs: int64
        /// When the queue first gets work (through a timer).
        FirstWorkNs: int64
        /// Its work: a hog, or bursts with sleeps in between.
        Work: Work
    }

/// A workload for one shard: its queues, its preempt interval, how long to simulate, and the seed every random draw
/// (task lengths, burst sizes, sleeps) comes from.
type Scenario =
    {
        /// The shard's task queues.
        Queues: QueueSpec array
        /// ShardOptions.PreemptInterval: the longest a queue runs while others wait (default 1 ms).
        PreemptIntervalNs: int64
        /// ShardOptions.SpinBeforePark: how long the loop busy-polls before it parks (default 0).
        SpinNs: int64
        /// How long to simulate (the run in progress at the end finishes).
        DurationNs: int64
        /// The seed: the same scenario and seed give the same run, every time.
        Seed: uint64
    }

/// Builds and changes QueueSpecs: `QueueSpec.hog "batch" 100 |> QueueSpec.withTasks (Nanos.us 20.0) (Nanos.us 50.0)`.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module QueueSpec =
    /// A throughput queue that always has work, from the start, with tasks of 10 to 50 µs.
    let hog (name: string) (shares: int) =
        {
            Name = name
            Shares = shares
            Latency = LatencyClass.NotImportant
            TaskMinNs = Nanos.us 10.0
            TaskMaxNs = Nanos.us 50.0
            FirstWorkNs = 0L
            Work = Work.Hog
        }

    /// A throughput queue that works in bursts of `tasksMin..tasksMax` tasks of 10 to 50 µs and sleeps
    /// `sleepMinNs..sleepMaxNs` between them, woken by a timer.
    let bursty (name: string) (shares: int) (tasksMin: int, tasksMax: int) (sleepMinNs: int64, sleepMaxNs: int64) =
        { hog name shares with
            Work = Work.Bursty(tasksMin, tasksMax, sleepMinNs, sleepMaxNs, WakeSource.Timer)
        }

    /// The same queue with latency class `Matters budgetNs`.
    let matters (budgetNs: int64) (queue: QueueSpec) =
        { queue with
            Latency = LatencyClass.Matters budgetNs
        }

    /// The same queue with tasks of `minNs..maxNs`.
    let withTasks (minNs: int64) (maxNs: int64) (queue: QueueSpec) =
        { queue with
            TaskMinNs = minNs
            TaskMaxNs = maxNs
        }

    /// The same queue, woken by `source` after its sleeps (a bursty queue; a hog is left as it is).
    let wokenBy (source: WakeSource) (queue: QueueSpec) =
        match queue.Work with
        | Work.Bursty(lo, hi, sleepMin, sleepMax, _) ->
            { queue with
                Work = Work.Bursty(lo, hi, sleepMin, sleepMax, source)
            }
        | Work.Hog -> queue

    /// The same queue, first getting work at `atNs`.
    let startingAt (atNs: int64) (queue: QueueSpec) = { queue with FirstWorkNs = atNs }

    /// The errors that make the queue unusable, empty if none.
    let errors (queue: QueueSpec) =
        [
            if not (ShareMath.isValid queue.Shares) then
                $"queue '{queue.Name}': shares {queue.Shares} is not within {ShareMath.Min}..{ShareMath.Max}"
            match queue.Latency with
            | LatencyClass.Matters budget when budget <= 0L ->
                $"queue '{queue.Name}': a latency budget must be positive, not {budget} ns"
            | _ -> ()
            if queue.TaskMinNs < 1L || queue.TaskMaxNs < queue.TaskMinNs then
                $"queue '{queue.Name}': tasks of {queue.TaskMinNs}..{queue.TaskMaxNs} ns; they need 1 <= min <= max"
            if queue.FirstWorkNs < 0L then
                $"queue '{queue.Name}': FirstWorkNs {queue.FirstWorkNs} is negative"
            match queue.Work with
            | Work.Bursty(lo, hi, sleepMin, sleepMax, _) ->
                if lo < 1 || hi < lo then
                    $"queue '{queue.Name}': bursts of {lo}..{hi} tasks; they need 1 <= min <= max"

                if sleepMin < 0L || sleepMax < sleepMin then
                    $"queue '{queue.Name}': sleeps of {sleepMin}..{sleepMax} ns; they need 0 <= min <= max"
            | Work.Hog -> ()
        ]

/// Builds and changes Scenarios: `Scenario.create [ requests; batch ] |> Scenario.withSeed 42UL`.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Scenario =
    /// The queues on a shard with the default options (preempt interval 1 ms, no spinning), simulated for one
    /// second from seed 1.
    let create (queues: QueueSpec seq) =
        {
            Queues = Array.ofSeq queues
            PreemptIntervalNs = Nanos.ms 1.0
            SpinNs = 0L
            DurationNs = Nanos.seconds 1.0
            Seed = 1UL
        }

    /// The same scenario with another preempt interval.
    let withPreemptInterval (intervalNs: int64) (scenario: Scenario) =
        { scenario with
            PreemptIntervalNs = intervalNs
        }

    /// The same scenario simulated for `durationNs`.
    let withDuration (durationNs: int64) (scenario: Scenario) =
        { scenario with
            DurationNs = durationNs
        }

    /// The same scenario from another seed.
    let withSeed (seed: uint64) (scenario: Scenario) = { scenario with Seed = seed }

    /// The errors that make the scenario unusable (its queues' included), empty if none.
    let errors (scenario: Scenario) =
        [
            if scenario.Queues.Length = 0 then
                "a scenario needs at least one queue"
            if scenario.PreemptIntervalNs < 1L then
                $"the preempt interval must be positive, not {scenario.PreemptIntervalNs} ns"
            if scenario.SpinNs < 0L then
                $"SpinNs must not be negative, not {scenario.SpinNs} ns"
            if scenario.DurationNs < 1L then
                $"the duration must be positive, not {scenario.DurationNs} ns"
            for q in scenario.Queues do
                yield! QueueSpec.errors q
        ]

    /// Throws ArgumentException naming what is wrong, if anything.
    let validate (scenario: Scenario) =
        match errors scenario with
        | [] -> ()
        | errors -> invalidArg (nameof scenario) (String.concat "; " errors)

namespace Scipio.Simulation

open System
open System.Text
open Scipio.Core

/// How a set of durations spread: how many, the median, the 99th percentile and the largest (nearest rank).
type Distribution =
    {
        /// How many durations.
        Count: int
        /// The median; 0 when there are none.
        P50Ns: int64
        /// The 99th percentile; 0 when there are none.
        P99Ns: int64
        /// The largest; 0 when there are none.
        MaxNs: int64
    }

/// Functions over Distribution.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Distribution =
    /// No durations.
    let empty =
        {
            Count = 0
            P50Ns = 0L
            P99Ns = 0L
            MaxNs = 0L
        }

    /// The `p`-th percentile (0 < p <= 100) of sorted values, by nearest rank.
    let private percentile (sorted: int64 array) (p: float) =
        let rank = int (ceil (p / 100.0 * float sorted.Length))
        sorted[max 0 (rank - 1)]

    /// The distribution of `durations` (in any order).
    let ofSeq (durations: int64 seq) =
        let sorted = Array.ofSeq durations |> Array.sort

        if sorted.Length = 0 then
            empty
        else
            {
                Count = sorted.Length
                P50Ns = percentile sorted 50.0
                P99Ns = percentile sorted 99.0
                MaxNs = sorted[sorted.Length - 1]
            }

/// What one queue got in a simulation.
type QueueReport =
    {
        /// Its name.
        Name: string
        /// Its shares.
        Shares: int
        /// Its latency class.
        Latency: LatencyClass
        /// The CPU time it ran.
        CpuNs: int64
        /// Its part of the CPU time all queues ran (0..1; idle time is not counted).
        CpuShare: float
        /// How long each of its runs lasted (from the pick to giving the CPU back).
        RunLength: Distribution
        /// From work falling due while it was idle (its timer's deadline, the message's arrival) to its next run
        /// starting. A wake still waiting when the simulation stops counts its wait so far.
        WakeToRun: Distribution
        /// The longest it waited while runnable, after a wake or after being preempted.
        MaxWaitNs: int64
        /// For a latency-sensitive queue, whether every wake ran within its budget (WakeToRun.MaxNs <= budget);
        /// true for a queue without a budget.
        BudgetHeld: bool
    }

/// What a simulation found, queue by queue.
type Report =
    {
        /// The scenario simulated.
        Scenario: Scenario
        /// The queues, in the scenario's order.
        Queues: QueueReport array
        /// Simulated time: the duration, or the end of the run in progress then.
        EndNs: int64
        /// Time with nothing runnable.
        IdleNs: int64
        /// Everything that happened, run by run and wake by wake.
        Trace: Trace
    }

/// Builds, queries and prints Reports.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Report =
    /// The report of a trace of `scenario` (Simulator.run).
    let ofTrace (scenario: Scenario) (trace: Trace) : Report =
        let n = scenario.Queues.Length
        let busy = trace.Final |> Array.sumBy _.RuntimeNs

        let runsOf =
            Array.init n (fun q -> trace.Runs |> Array.filter (fun r -> r.Queue = q))

        let wakeToRun q =
            let starts = runsOf[q] |> Array.map _.StartNs

            [|
                for w in trace.Wakes do
                    if w.Queue = q then
                        // The first run at or after the shell noticed the work.
                        let found = Array.BinarySearch(starts, w.AtNs)
                        let next = if found >= 0 then found else ~~~found
                        let start = if next < starts.Length then starts[next] else trace.EndNs
                        start - w.DueNs
            |]

        let queues =
            Array.init n (fun q ->
                let spec = scenario.Queues[q]
                let wakes = Distribution.ofSeq (wakeToRun q)

                {
                    Name = spec.Name
                    Shares = spec.Shares
                    Latency = spec.Latency
                    CpuNs = trace.Final[q].RuntimeNs
                    CpuShare =
                        if busy = 0L then
                            0.0
                        else
                            float trace.Final[q].RuntimeNs / float busy
                    RunLength = runsOf[q] |> Array.map (fun r -> r.EndNs - r.StartNs) |> Distribution.ofSeq
                    WakeToRun = wakes
                    MaxWaitNs = trace.MaxWaitNs[q]
                    BudgetHeld =
                        match spec.Latency with
                        | LatencyClass.Matters budget -> wakes.MaxNs <= budget
                        | LatencyClass.NotImportant -> true
                })

        {
            Scenario = scenario
            Queues = queues
            EndNs = trace.EndNs
            IdleNs = trace.IdleNs
            Trace = trace
        }

    /// The queue named `name`. KeyNotFoundException (naming the queues there are) if there is none.
    let queue (name: string) (report: Report) : QueueReport =
        match report.Queues |> Array.tryFind (fun q -> q.Name = name) with
        | Some q -> q
        | None ->
            let names = report.Queues |> Array.map _.Name |> String.concat ", "
            raise (Collections.Generic.KeyNotFoundException($"No queue named '{name}' in the report; it has {names}."))

    /// Whether every latency-sensitive queue held its budget.
    let budgetsHeld (report: Report) =
        report.Queues |> Array.forall _.BudgetHeld

    /// A latency class as a report spells it.
    let private latencyText (latency: LatencyClass) =
        match latency with
        | LatencyClass.NotImportant -> "-"
        | LatencyClass.Matters budget -> Nanos.format budget

    /// The report as a table: one line per queue (CPU share, run lengths, wake-to-run delays, budget), and the
    /// scenario's parameters above it.
    let format (report: Report) : string =
        let s = report.Scenario
        let text = StringBuilder()

        let line (value: string) =
            text.Append(value).Append('\n') |> ignore

        line (
            $"simulated {Nanos.format report.EndNs} (idle {Nanos.format report.IdleNs}), "
            + $"preempt interval {Nanos.format s.PreemptIntervalNs}, seed {s.Seed}"
        )

        let spread (d: Distribution) =
            if d.Count = 0 then
                "-"
            else
                $"{Nanos.format d.P50Ns} / {Nanos.format d.P99Ns} / {Nanos.format d.MaxNs}"

        line (
            String.Format(
                "{0,-14} {1,6} {2,8} {3,7} {4,6} {5,-30} {6,6} {7,-30} {8}",
                "queue",
                "shares",
                "budget",
                "CPU",
                "runs",
                "run p50 / p99 / max",
                "wakes",
                "wake-to-run p50 / p99 / max",
                "held"
            )
        )

        for q in report.Queues do
            line (
                String.Format(
                    "{0,-14} {1,6} {2,8} {3,7:P1} {4,6} {5,-30} {6,6} {7,-30} {8}",
                    q.Name,
                    q.Shares,
                    latencyText q.Latency,
                    q.CpuShare,
                    q.RunLength.Count,
                    spread q.RunLength,
                    q.WakeToRun.Count,
                    spread q.WakeToRun,
                    (match q.Latency with
                     | LatencyClass.Matters _ -> (if q.BudgetHeld then "yes" else "NO")
                     | LatencyClass.NotImportant -> "")
                )
            )

        text.ToString()

/// Simulate a shard's scheduling: describe its task queues (Scenario), get what each would get (Report).
[<RequireQualifiedAccess>]
module Simulation =
    /// Simulates `scenario` and reports per queue: CPU share, run lengths, wake-to-run delays and whether its
    /// latency budget held. Deterministic: the same scenario (seed included) gives the same report.
    /// ArgumentException if the scenario is not valid (Scenario.errors).
    let run (scenario: Scenario) : Report =
        Report.ofTrace scenario (Simulator.run scenario)

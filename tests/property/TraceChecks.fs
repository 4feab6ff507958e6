/// Checks over a simulator trace, shared by the passing simulation properties and the pending ones that show core
/// bugs. Each fails with a message that says what happened and what the bound was.
///
/// The bounds below all come from one argument. Let E be the longest run (one preempt interval plus the task that
/// is running when the preemption timer fires) and C_q = E * 1000 / shares_q the most vruntime one run of q can be
/// charged. While at least one queue stays runnable through every run (a hog does; the known bugs in
/// SimulationTests are about when none does), the watermark W is the least runnable vruntime after each run, and a
/// queue is picked only when its vruntime is the least, i.e. W. So a runnable queue q is never more than C_q ahead
/// of W (its last pick was at W, then it ran once), and a queue that wakes is raised to W. Everything else follows
/// by turning vruntime back into CPU time (× shares / 1000); integer division rounds each run's charge down by under
/// 1 ns of vruntime, which adds at most (number of runs) ns of CPU to any bound.
module Scipio.Property.Tests.TraceChecks

open System
open Expecto
open Scipio.Core
open Scipio.Simulation

/// Every queue's shares, as floats for the bounds.
let sharesOf (scenario: Scenario) =
    scenario.Queues |> Array.map (fun q -> float q.Shares)

/// True for a queue that is always runnable once started.
let isHog (q: QueueSpec) =
    match q.Work with
    | Work.Hog -> true
    | Work.Bursty _ -> false

/// Each queue's CPU time adds up to the simulated time the CPU was not idle, and the core's counters agree with
/// what the simulator saw.
let checkBookkeeping (trace: Trace) =
    let total = trace.Final |> Array.sumBy _.RuntimeNs
    Expect.equal (total + trace.IdleNs) trace.EndNs "every simulated nanosecond is some queue's CPU or idle"

    for i in 0 .. trace.Final.Length - 1 do
        let runs = trace.Runs |> Array.filter (fun r -> r.Queue = i)
        let waited = runs |> Array.fold (fun m r -> max m r.WaitedNs) 0L
        Expect.equal trace.Final[i].MaxQueueDelayNs waited $"queue {i}: MaxQueueDelayNs is the longest wait seen"
        Expect.equal trace.Final[i].TimesSelected (int64 runs.Length) $"queue {i}: TimesSelected counts the runs"
        Expect.equal trace.Final[i].TasksRun (runs |> Array.sumBy (fun r -> int64 r.Tasks)) $"queue {i}: TasksRun"

/// Every run stops within one task of its preemption timer, which fires no later than preemptDeadline asked.
let checkRunsHonourDeadlines (scenario: Scenario) (trace: Trace) =
    for r in trace.Runs do
        let taskMax = scenario.Queues[r.Queue].TaskMaxNs

        if r.PreemptAtNs > r.WantedNs then
            failtestf "run %A: the preemption timer fires after the wanted deadline" r

        if r.EndNs - r.StartNs > Simulator.maxRunNs scenario then
            failtestf "run %A lasted longer than one interval and one task" r

        if r.EndNs > max r.StartNs r.PreemptAtNs + taskMax then
            failtestf "run %A went on past its preemption timer by more than one task" r

/// The watermark never moves backwards and never passes a runnable queue's vruntime.
let checkWatermark (trace: Trace) =
    let mutable previous = 0L

    for r in trace.Runs do
        if r.Watermark < previous then
            failtestf "the watermark went back from %d to %d after the run ending at %d" previous r.Watermark r.EndNs

        for q in 0 .. r.After.Length - 1 do
            if r.After[q].Runnable && r.After[q].Vruntime < r.Watermark then
                failtestf
                    "after the run ending at %d queue %d is runnable below the watermark %d: %A"
                    r.EndNs
                    q
                    r.Watermark
                    r.After[q]

        previous <- r.Watermark

/// A woken queue's vruntime is max(own, watermark): time asleep is not banked.
let checkWakes (trace: Trace) =
    for w in trace.Wakes do
        if w.Vruntime <> max w.OwnVruntime w.Watermark then
            failtestf "wake %A: vruntime must be max(own, watermark)" w

/// Work is noticed in time: within one task when the shard is busy (preemptDeadline stops a run at the next timer,
/// and the shell checks for messages after every task), at once when it is idle (Loop.idle parks no longer than
/// until the next timer, and a message interrupts the park).
let checkWorkNoticed (scenario: Scenario) (trace: Trace) =
    let task = scenario.Queues |> Array.map _.TaskMaxNs |> Array.max
    let starts = trace.Runs |> Array.map _.StartNs

    for w in trace.Wakes do
        if w.AtNs < w.DueNs || w.AtNs - w.DueNs > task then
            failtestf
                "queue %d's work was due at %d and noticed at %d; the longest task is %d ns"
                w.Queue
                w.DueNs
                w.AtNs
                task

        // The run in progress when the work fell due, if any: the last one to start at or before then.
        let found = Array.BinarySearch(starts, w.DueNs)
        let last = if found >= 0 then found else ~~~found - 1
        let busy = last >= 0 && w.DueNs < trace.Runs[last].EndNs

        if not busy && w.AtNs <> w.DueNs then
            failtestf
                "queue %d's work was due at %d while the shard was idle, and noticed only at %d"
                w.Queue
                w.DueNs
                w.AtNs

/// No runnable queue runs ahead of the watermark by more than one run's charge (C_q).
let checkLeads (scenario: Scenario) (trace: Trace) =
    let e = float (Simulator.maxRunNs scenario)

    for r in trace.Runs do
        for q in 0 .. r.After.Length - 1 do
            let state = r.After[q]
            let lead = float (state.Vruntime - r.Watermark)

            if state.Runnable && lead > e * 1000.0 / float state.Shares + 1.0 then
                failtestf
                    "after the run of queue %d ending at %d, queue %d (shares %d) is %.0f ns of vruntime ahead of the watermark %d; one run is at most %.0f"
                    r.Queue
                    r.EndNs
                    q
                    state.Shares
                    lead
                    r.Watermark
                    (e * 1000.0 / float state.Shares)

/// No runnable queue waits longer than the others can run before their vruntime passes its own. A waiting queue q
/// is at most C_q ahead of the watermark and every other queue j is at or above it, so j can run at most
/// C_q * shares_j / 1000 = E * shares_j / shares_q before it passes q, plus the run that takes it past:
/// wait_q ≤ Σ_{j≠q} E * (1 + shares_j / shares_q). For shares within a factor k of each other that is at most
/// (n - 1) * E * (1 + k).
let checkNoStarvation (scenario: Scenario) (trace: Trace) =
    let e = float (Simulator.maxRunNs scenario)
    let shares = sharesOf scenario
    let rounding = float trace.Runs.Length

    for q in 0 .. shares.Length - 1 do
        let bound =
            Seq.sum
                [
                    for j in 0 .. shares.Length - 1 do
                        if j <> q then
                            e * (1.0 + shares[j] / shares[q])
                ]
            + rounding

        if float trace.MaxWaitNs[q] > bound then
            failtestf
                "queue %d (shares %d) waited %d ns while runnable; the bound is %.0f ns (E = %.0f ns)"
                q
                scenario.Queues[q].Shares
                trace.MaxWaitNs[q]
                bound
                e

/// A queue that slept does not burst. From its wake w to the end t of any of its runs before it sleeps again it gets
/// no more than its fair share next to any hog h, plus one slice:
/// cpu_q(w, t) ≤ cpu_h(w, t) * s_q / s_h + E + E * s_q / s_h.
/// (q's vruntime at t is at most h's plus C_q; at w, h was at most C_h ahead of the watermark, where q started. The
/// last term is h's own last slice, which q may make up for: h could have just had its turn when q woke.)
let checkNoBurst (scenario: Scenario) (trace: Trace) =
    let e = float (Simulator.maxRunNs scenario)
    let shares = sharesOf scenario

    let hogs =
        [|
            for h in 0 .. shares.Length - 1 do
                if isHog scenario.Queues[h] then
                    h
        |]

    let runsOf =
        Array.init shares.Length (fun q -> trace.Runs |> Array.filter (fun r -> r.Queue = q))

    for w in trace.Wakes do
        let q = w.Queue

        if not (isHog scenario.Queues[q]) then
            let runs = runsOf[q]

            let mutable k =
                runs
                |> Array.tryFindIndex (fun r -> r.StartNs >= w.AtNs)
                |> Option.defaultValue runs.Length

            let mutable awake = true

            while awake && k < runs.Length do
                let r = runs[k]
                let cpuQ = float (r.After[q].RuntimeNs - w.RuntimeNs[q])
                let rounding = float (k + 1)

                for h in hogs do
                    let cpuH = float (r.After[h].RuntimeNs - w.RuntimeNs[h])

                    let allowed =
                        cpuH * shares[q] / shares[h] + e + e * shares[q] / shares[h] + rounding

                    if cpuQ > allowed then
                        failtestf
                            "queue %d (shares %d) woke at %d and had %.0f ns of CPU by %d; next to hog %d (shares %d, %.0f ns) it may have %.0f"
                            q
                            (int shares[q])
                            w.AtNs
                            cpuQ
                            r.EndNs
                            h
                            (int shares[h])
                            cpuH
                            allowed

                awake <- r.After[q].Runnable
                k <- k + 1

/// Latency-sensitive queues are picked within their budget plus one task of whatever was running, counted from the
/// wake (the shell's notice of the work; the notice itself comes within one task of the work being due, which
/// DueNs shows). `applies` chooses the wakes the property is about.
let checkLatency (scenario: Scenario) (trace: Trace) (applies: WakeRecord -> bool) =
    for w in trace.Wakes do
        match scenario.Queues[w.Queue].Latency with
        | LatencyClass.Matters budget when applies w ->
            let others =
                scenario.Queues |> Array.indexed |> Array.filter (fun (j, _) -> j <> w.Queue)

            let task = others |> Array.fold (fun m (_, q) -> max m q.TaskMaxNs) 0L
            let bound = budget + task

            let delay =
                trace.Runs
                |> Array.tryFind (fun r -> r.Queue = w.Queue && r.StartNs >= w.AtNs)
                |> Option.map (fun r -> r.StartNs - w.AtNs)
                |> Option.defaultValue (trace.EndNs - w.AtNs)

            if delay > bound then
                failtestf
                    "queue %d (shares %d, budget %d ns) woke at %d with vruntime %d (own %d, watermark %d, all %A) and waited %d ns; allowed %d"
                    w.Queue
                    scenario.Queues[w.Queue].Shares
                    budget
                    w.AtNs
                    w.Vruntime
                    w.OwnVruntime
                    w.Watermark
                    w.Vruntimes
                    delay
                    bound
        | _ -> ()

/// A run that preemptDeadline cut short for a latency-sensitive queue's budget (rather than at the end of the
/// interval or at a timer) hands the CPU to a latency-sensitive queue. Otherwise the cut bought nothing: the same
/// or another throughput queue runs on, and the next preemptDeadline, with the budget already spent, says "now".
let checkBudgetCutsServeLatency (scenario: Scenario) (trace: Trace) =
    for k in 0 .. trace.Runs.Length - 2 do
        let r = trace.Runs[k]

        let limit =
            min (Time.addSaturating r.EvaluatedAtNs scenario.PreemptIntervalNs) r.NextTimerNs

        let stoppedByTimer = r.After[r.Queue].Runnable && r.PreemptAtNs = r.WantedNs
        let next = trace.Runs[k + 1]

        if
            stoppedByTimer
            && r.WantedNs < limit
            && not (LatencyClass.matters scenario.Queues[next.Queue].Latency)
        then
            let cut =
                trace.Runs
                |> Array.filter (fun r -> r.Tasks = 1 && r.After[r.Queue].Runnable)
                |> Array.length

            failtestf
                "run %d of queue %d (%d..%d ns, %d tasks) was cut at %d for a latency budget, but queue %d (%A) ran next; %d of %d runs were a single task cut short"
                k
                r.Queue
                r.StartNs
                r.EndNs
                r.Tasks
                r.WantedNs
                next.Queue
                scenario.Queues[next.Queue].Latency
                cut
                trace.Runs.Length

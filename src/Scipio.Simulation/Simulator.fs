namespace Scipio.Simulation

open System
open Scipio.Core

/// One run of a queue: picked at StartNs, gave the CPU back at EndNs.
type RunRecord =
    {
        /// The queue's index in Scenario.Queues.
        Queue: int
        /// When the scheduler picked it.
        StartNs: int64
        /// When it gave the CPU back: it ran out of work, or was preempted.
        EndNs: int64
        /// The tasks it ran.
        Tasks: int
        /// How long the queue had been runnable when it was picked.
        WaitedNs: int64
        /// preemptDeadline as last evaluated during the run (by Loop.checkPreemption, or for the record after a wake
        /// that needed no check); Never if no timer covered the run.
        WantedNs: int64
        /// When WantedNs was evaluated.
        EvaluatedAtNs: int64
        /// The next timer WantedNs was evaluated with.
        NextTimerNs: int64
        /// When the preemption timer was due to fire: at or before WantedNs.
        PreemptAtNs: int64
        /// Every queue once the run was accounted.
        After: QueueState array
        /// The watermark after the run.
        Watermark: int64
    }

/// An idle queue that got work.
type WakeRecord =
    {
        /// The queue's index in Scenario.Queues.
        Queue: int
        /// When the work was due: the timer's deadline or the message's arrival.
        DueNs: int64
        /// When the shell noticed it (at once when idle, at the end of the running task when busy).
        AtNs: int64
        /// Its vruntime before `wake`.
        OwnVruntime: int64
        /// Its vruntime after `wake`.
        Vruntime: int64
        /// The watermark `wake` was given.
        Watermark: int64
        /// Every queue's vruntime at that instant.
        Vruntimes: int64 array
        /// Every queue's CPU so far, counting the run in progress up to now.
        RuntimeNs: int64 array
    }

/// What happened in a simulation, run by run and wake by wake.
type Trace =
    {
        /// Every run, in order.
        Runs: RunRecord array
        /// Every wake of an idle queue, in order.
        Wakes: WakeRecord array
        /// Every queue's state at the end (its RuntimeNs is its CPU time).
        Final: QueueState array
        /// When the simulation stopped: the duration, or the end of the run in progress then.
        EndNs: int64
        /// The longest each queue waited while runnable before it was picked; a queue still waiting when the
        /// simulation stops counts its wait so far. Measured by the simulator, not read from the core's statistics.
        MaxWaitNs: int64 array
        /// Time with nothing runnable.
        IdleNs: int64
    }

/// A deterministic simulator of one shard's run loop, driven through the Loop transitions the shell calls, in the same
/// order (DESIGN.md §3): reap (Loop.preemptFired) → fire due timers and deliver messages (Loop.wake) →
/// Loop.pick → Loop.beginRun → Loop.checkPreemption → run tasks, after each one Loop.afterTask (and Loop.needsCheck /
/// checkPreemption for the timers it sets and the queues it wakes) → Loop.endRun; and when nothing is runnable,
/// Loop.idle decides between spinning and parking. The simulator keeps no watermark, runnable count or preemption
/// timer of its own. Time is simulated: a task "runs" by moving the clock on by its length, drawn from a seeded
/// generator, so a whole second replays from one seed.
[<RequireQualifiedAccess>]
module Simulator =
    /// The longest a single run can last: one preempt interval, plus the task that is running when the preemption timer
    /// fires.
    let maxRunNs (scenario: Scenario) =
        scenario.PreemptIntervalNs
        + (scenario.Queues |> Array.map _.TaskMaxNs |> Array.max)

    /// Runs the scenario for its duration (plus the run in progress at the end) and returns what happened.
    /// ArgumentException if the scenario is not valid (Scenario.errors).
    let run (scenario: Scenario) : Trace =
        Scenario.validate scenario
        let specs = scenario.Queues
        let n = specs.Length
        let states = specs |> Array.map (fun q -> TaskQueues.create q.Shares q.Latency)
        let tasksLeft = Array.zeroCreate<int> n
        let messageAt = Array.create n Time.Never
        let runnableSince = Array.zeroCreate<int64> n
        let maxWait = Array.zeroCreate<int64> n
        let timers = TimerHeap 4
        let runs = ResizeArray<RunRecord>()
        let wakes = ResizeArray<WakeRecord>()
        let mutable rng = Rng.Create scenario.Seed
        let mutable now = 0L
        let mutable loop = Loop.initial
        let mutable idleNs = 0L
        // The last preemptDeadline checkPreemption compared the armed timer with, for the run's record.
        let mutable wanted = Time.Never
        let mutable evaluatedAt = 0L
        let mutable nextTimer = Time.Never

        let draw lo hi =
            let struct (value, next) = rng.Range(lo, hi)
            rng <- next
            value

        /// A message is work some operation or another thread will hand over: for the loop it is I/O in flight, whose
        /// completion could wake a queue (a post from another thread raises NeedPreempt by itself).
        let ioInFlight () =
            Array.exists (fun at -> at <> Time.Never) messageAt

        /// Records what preemptDeadline wants now, for the run's record, while the preemption timer covers the run.
        /// Called after each checkPreemption and also after a wake that Loop.wake said needs no check (a throughput
        /// queue can only make the wanted deadline later, so the armed timer stands): the record then says the run was
        /// not cut for a budget that no longer applies.
        let observeDeadline () =
            if loop.PreemptChecked then
                let next = timers.NextDeadline
                evaluatedAt <- now
                nextTimer <- next

                wanted <-
                    TaskQueues.preemptDeadline (ReadOnlySpan states) loop.Running scenario.PreemptIntervalNs next now

        /// Loop.checkPreemption for the running queue at `now`; the simulator's preemption timer is the state's.
        let checkPreemption () =
            let next = timers.NextDeadline

            let struct (checkedState, _) =
                Loop.checkPreemption (ReadOnlySpan states) now next (ioInFlight ()) scenario.PreemptIntervalNs loop

            loop <- checkedState
            observeDeadline ()

        let schedule i atNs =
            match specs[i].Work with
            | Work.Bursty(wakeBy = WakeSource.Message) ->
                messageAt[i] <- atNs

                // Waiting on I/O: an operation goes in flight.
                if Loop.needsCheck Time.Never loop then
                    checkPreemption ()
            | Work.Bursty(wakeBy = WakeSource.Timer)
            | Work.Hog ->
                timers.Push(atNs, i)

                if Loop.needsCheck atNs loop then
                    checkPreemption ()

        /// Work arrives for an idle queue.
        let giveWork i dueNs =
            tasksLeft[i] <-
                match specs[i].Work with
                | Work.Hog -> Int32.MaxValue
                | Work.Bursty(lo, hi, _, _, _) -> int (draw (int64 lo) (int64 hi))

            let own = states[i].Vruntime
            let watermark = loop.Watermark
            let struct (woken, check) = Loop.wake (Span states) i now loop
            loop <- woken
            runnableSince[i] <- now

            wakes.Add
                {
                    Queue = i
                    DueNs = dueNs
                    AtNs = now
                    OwnVruntime = own
                    Vruntime = states[i].Vruntime
                    Watermark = watermark
                    Vruntimes = states |> Array.map _.Vruntime
                    RuntimeNs =
                        states
                        |> Array.mapi (fun j q ->
                            if j = loop.Running then
                                q.RuntimeNs + (now - loop.RunStartNs)
                            else
                                q.RuntimeNs)
                }

            if check then
                checkPreemption ()
            elif loop.Running >= 0 then
                observeDeadline ()

        /// Hands out the messages that have arrived by now.
        let deliverMessages () =
            for i in 0 .. n - 1 do
                if messageAt[i] <= now then
                    let due = messageAt[i]
                    messageAt[i] <- Time.Never
                    giveWork i due

        for i in 0 .. n - 1 do
            schedule i specs[i].FirstWorkNs

        while now < scenario.DurationNs do
            // Reap: the preemption timer's completion, and the messages that arrived while the shard was busy or
            // parked.
            if loop.PreemptTimerNs <= now then
                loop <- Loop.preemptFired loop

            deliverMessages ()
            let mutable entry = Unchecked.defaultof<TimerEntry>

            while timers.TryPopDue(now, &entry) do
                giveWork entry.Id entry.DeadlineNs

            let i = Loop.pick (ReadOnlySpan states)

            if i < 0 then
                let nextMessage = Array.min messageAt

                let struct (idle, decision) =
                    Loop.idle now scenario.SpinNs timers.NextDeadline false loop

                loop <- idle

                let until, parked =
                    match decision with
                    | IdleDecision.Continue -> failwith $"Loop.idle said Continue at {now} with nothing runnable or due"
                    | IdleDecision.Spin ->
                        min (loop.IdleSinceNs + scenario.SpinNs) (min timers.NextDeadline nextMessage), false
                    | IdleDecision.Park timeout -> min (Time.addSaturating now timeout) nextMessage, true

                let until = min until scenario.DurationNs
                idleNs <- idleNs + (until - now)
                now <- until

                if parked then
                    loop <- Loop.woke loop
            else
                let waited = now - runnableSince[i]
                maxWait[i] <- max maxWait[i] waited
                let runStart = now
                loop <- Loop.beginRun (Span states) i specs[i].Shares now loop
                wanted <- Time.Never
                evaluatedAt <- now
                nextTimer <- timers.NextDeadline
                checkPreemption ()
                let spec = specs[i]
                let mutable tasks = 0
                let mutable go = true

                while go do
                    now <- now + draw spec.TaskMinNs spec.TaskMaxNs
                    tasks <- tasks + 1

                    if tasksLeft[i] <> Int32.MaxValue then
                        tasksLeft[i] <- tasksLeft[i] - 1

                        if tasksLeft[i] = 0 then
                            match spec.Work with
                            | Work.Bursty(_, _, lo, hi, _) -> schedule i (now + draw lo hi)
                            | Work.Hog -> ()

                    // Messages that arrived during the task are noticed at its end.
                    deliverMessages ()
                    // NeedPreempt: the preemption timer's completion is on the latency ring.
                    let struct (after, verdict) = Loop.afterTask (now >= loop.PreemptTimerNs) false loop
                    loop <- after
                    // A run that no timer covers (nothing else could want the CPU) still ends with the simulation.
                    let endless = loop.PreemptTimerNs = Time.Never && now >= scenario.DurationNs
                    go <- verdict = RunVerdict.Continue && tasksLeft[i] > 0 && not endless

                let stillRunnable = tasksLeft[i] > 0
                let preemptAt = loop.PreemptTimerNs
                loop <- Loop.endRun (Span states) now (int64 tasks) stillRunnable loop
                let runnable = states |> Array.sumBy (fun q -> if q.Runnable then 1 else 0)

                if loop.RunnableCount <> runnable then
                    failwith $"at {now}: Loop.RunnableCount is {loop.RunnableCount}, but {runnable} queues are runnable"

                if stillRunnable then
                    runnableSince[i] <- now

                runs.Add
                    {
                        Queue = i
                        StartNs = runStart
                        EndNs = now
                        Tasks = tasks
                        WaitedNs = waited
                        WantedNs = wanted
                        EvaluatedAtNs = evaluatedAt
                        NextTimerNs = nextTimer
                        PreemptAtNs = preemptAt
                        After = Array.copy states
                        Watermark = loop.Watermark
                    }

        for i in 0 .. n - 1 do
            if states[i].Runnable then
                maxWait[i] <- max maxWait[i] (now - runnableSince[i])

        {
            Runs = runs.ToArray()
            Wakes = wakes.ToArray()
            Final = states
            EndNs = now
            MaxWaitNs = maxWait
            IdleNs = idleNs
        }

/// A deterministic simulator of one shard's run loop, built from the same core calls the shell makes, in the same
/// order (DESIGN.md §3): reap → fire due timers → pickNext → select → preemptDeadline (and the preemption timer
/// through Reactor.preemptTimer) → run tasks until the queue is empty or the timer fires → account → watermark; and
/// when nothing is runnable, Reactor.idle decides between spinning and parking. Time is simulated: a task "runs" by
/// moving the clock on by its length, drawn from a seeded generator, so a whole second replays from one seed.
module Scipio.Property.Tests.Simulator

open System
open Scipio.Core
open Scipio.Property.Tests.Generators

/// How an idle queue learns that it has work again.
[<RequireQualifiedAccess>]
type WakeSource =
    /// Its last task slept on a shard timer; the shell fires timers between runs, and preemptDeadline already cuts
    /// runs short at the next timer.
    | Timer
    /// A task of another queue, a completion or another thread hands it work at any moment. The shell notices at
    /// the next task boundary (NeedPreempt) or, when parked, at once; it then re-evaluates its preemption timer.
    | Message

/// The work a queue has.
[<RequireQualifiedAccess>]
type Work =
    /// Never runs out of tasks once it has started.
    | Hog
    /// Gets TasksMin..TasksMax tasks, runs them, then sleeps SleepMin..SleepMax ns before the next batch.
    | Bursty of tasksMin: int * tasksMax: int * sleepMinNs: int64 * sleepMaxNs: int64 * wakeBy: WakeSource

/// One simulated task queue.
type QueueSpec =
    { Shares: int
      Latency: LatencyClass
      /// Each task runs TaskMinNs..TaskMaxNs: the granularity at which the shell can preempt the queue.
      TaskMinNs: int64
      TaskMaxNs: int64
      /// When the queue first gets work (through a timer).
      FirstWorkNs: int64
      Work: Work }

/// A workload for one shard.
type Scenario =
    { Queues: QueueSpec array
      PreemptIntervalNs: int64
      /// How long the loop busy-polls before it parks.
      SpinNs: int64
      DurationNs: int64
      Seed: uint64 }

/// One run of a queue: picked at StartNs, gave the CPU back at EndNs.
type RunRecord =
    { Queue: int
      StartNs: int64
      EndNs: int64
      Tasks: int
      /// How long the queue had been runnable when it was picked.
      WaitedNs: int64
      /// preemptDeadline as last evaluated during the run (a wake during the run can bring it forward), when it was
      /// evaluated, and the next timer it was given.
      WantedNs: int64
      EvaluatedAtNs: int64
      NextTimerNs: int64
      /// When the preemption timer was due to fire: at or before WantedNs.
      PreemptAtNs: int64
      /// Every queue once the run was accounted, and the watermark after it.
      After: QueueState array
      Watermark: int64 }

/// An idle queue that got work.
type WakeRecord =
    { Queue: int
      /// When the work was due: the timer's deadline or the message's arrival. The shell notices at AtNs.
      DueNs: int64
      AtNs: int64
      /// Its vruntime before and after `wake`, and the watermark `wake` was given.
      OwnVruntime: int64
      Vruntime: int64
      Watermark: int64
      /// Every queue's vruntime at that instant.
      Vruntimes: int64 array
      /// Every queue's CPU so far, counting the run in progress up to now.
      RuntimeNs: int64 array }

/// What happened in a simulation.
type Trace =
    { Runs: RunRecord array
      Wakes: WakeRecord array
      Final: QueueState array
      EndNs: int64
      /// The longest each queue waited while runnable before it was picked; a queue still waiting when the
      /// simulation stops counts its wait so far. Measured by the simulator, not read from the core's statistics.
      MaxWaitNs: int64 array
      /// Time with nothing runnable.
      IdleNs: int64 }

/// The longest a single run can last: one preempt interval, plus the task that is running when the preemption timer
/// fires.
let maxRunNs (scenario: Scenario) =
    scenario.PreemptIntervalNs + (scenario.Queues |> Array.map _.TaskMaxNs |> Array.max)

/// Runs the scenario for its duration (plus the run in progress at the end).
let run (scenario: Scenario) : Trace =
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
    let mutable watermark = 0L
    // The preemption timer, as the shell arms it on the latency ring; Never when none is armed.
    let mutable preemptAt = Time.Never
    let mutable running = -1
    let mutable runStart = 0L
    let mutable idleSince = -1L
    let mutable idleNs = 0L

    let draw lo hi =
        let struct (value, next) = rng.Range(lo, hi)
        rng <- next
        value

    let schedule i atNs =
        match specs[i].Work with
        | Work.Bursty(wakeBy = WakeSource.Message) -> messageAt[i] <- atNs
        | Work.Bursty(wakeBy = WakeSource.Timer)
        | Work.Hog -> timers.Push(atNs, i, 0)

    /// Work arrives for an idle queue.
    let giveWork i dueNs =
        tasksLeft[i] <-
            match specs[i].Work with
            | Work.Hog -> Int32.MaxValue
            | Work.Bursty(lo, hi, _, _, _) -> int (draw (int64 lo) (int64 hi))

        let own = states[i].Vruntime
        states[i] <- TaskQueues.wake watermark now states[i]
        runnableSince[i] <- now

        wakes.Add
            { Queue = i
              DueNs = dueNs
              AtNs = now
              OwnVruntime = own
              Vruntime = states[i].Vruntime
              Watermark = watermark
              Vruntimes = states |> Array.map _.Vruntime
              RuntimeNs =
                states
                |> Array.mapi (fun j q -> if j = running then q.RuntimeNs + (now - runStart) else q.RuntimeNs) }

    /// Hands out the messages that have arrived by now; true if there were any.
    let deliverMessages () =
        let mutable any = false

        for i in 0 .. n - 1 do
            if messageAt[i] <= now then
                let due = messageAt[i]
                messageAt[i] <- Time.Never
                giveWork i due
                any <- true

        any

    let armPreemption wanted =
        match Reactor.preemptTimer preemptAt wanted now with
        | PreemptTimerDecision.Keep -> ()
        | PreemptTimerDecision.Arm after
        | PreemptTimerDecision.Move after -> preemptAt <- now + after

    for i in 0 .. n - 1 do
        schedule i specs[i].FirstWorkNs

    while now < scenario.DurationNs do
        // Reap: the preemption timer's completion, and the messages that arrived while the shard was busy or parked.
        if preemptAt <= now then
            preemptAt <- Time.Never

        deliverMessages () |> ignore
        let mutable entry = Unchecked.defaultof<TimerEntry>

        while timers.TryPopDue(now, &entry) do
            giveWork entry.Id entry.DeadlineNs

        let i = TaskQueues.pickNext (ReadOnlySpan states)

        if i < 0 then
            if idleSince < 0L then
                idleSince <- now

            let nextMessage = Array.min messageAt

            let until =
                match Reactor.idle false false now idleSince scenario.SpinNs timers.NextDeadline with
                | IdleDecision.Continue -> failwith $"Reactor.idle said Continue at {now} with nothing runnable or due"
                | IdleDecision.Spin -> min (idleSince + scenario.SpinNs) (min timers.NextDeadline nextMessage)
                | IdleDecision.Park timeout -> min (Time.addSaturating now timeout) nextMessage

            let until = min until scenario.DurationNs
            idleNs <- idleNs + (until - now)
            now <- until
        else
            idleSince <- -1L
            let waited = now - runnableSince[i]
            maxWait[i] <- max maxWait[i] waited
            states[i] <- TaskQueues.select now states[i]

            let mutable evaluatedAt = now
            let mutable nextTimer = timers.NextDeadline

            let mutable wanted =
                TaskQueues.preemptDeadline (ReadOnlySpan states) i scenario.PreemptIntervalNs nextTimer now

            armPreemption wanted
            running <- i
            runStart <- now
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

                if deliverMessages () then
                    evaluatedAt <- now
                    nextTimer <- timers.NextDeadline

                    wanted <-
                        TaskQueues.preemptDeadline (ReadOnlySpan states) i scenario.PreemptIntervalNs nextTimer now

                    armPreemption wanted

                go <- tasksLeft[i] > 0 && now < preemptAt

            let stillRunnable = tasksLeft[i] > 0
            states[i] <- TaskQueues.account now (now - runStart) (int64 tasks) stillRunnable states[i]
            running <- -1

            if stillRunnable then
                runnableSince[i] <- now

            watermark <- TaskQueues.watermark (ReadOnlySpan states) watermark i

            runs.Add
                { Queue = i
                  StartNs = runStart
                  EndNs = now
                  Tasks = tasks
                  WaitedNs = waited
                  WantedNs = wanted
                  EvaluatedAtNs = evaluatedAt
                  NextTimerNs = nextTimer
                  PreemptAtNs = preemptAt
                  After = Array.copy states
                  Watermark = watermark }

    for i in 0 .. n - 1 do
        if states[i].Runnable then
            maxWait[i] <- max maxWait[i] (now - runnableSince[i])

    { Runs = runs.ToArray()
      Wakes = wakes.ToArray()
      Final = states
      EndNs = now
      MaxWaitNs = maxWait
      IdleNs = idleNs }

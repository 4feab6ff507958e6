namespace Scipio.Core

open System.Runtime.CompilerServices

open System

/// The run loop's own bookkeeping between and during runs of task queues. The shell keeps one in a mutable field and
/// replaces it with what the Loop transitions return; the simulator threads it the same way.
[<Struct>]
type LoopState =
    {
        /// The least vruntime among runnable queues, or the last queue's when none is: where a waking queue starts
        /// (TaskQueues.watermark). Never moves backwards.
        Watermark: int64
        /// The queue being run, -1 between runs.
        Running: int
        /// How many queues are runnable (the running one included).
        RunnableCount: int
        /// When the current run began.
        RunStartNs: int64
        /// The preemption timer covers the current run: checkPreemption found it needed and armed, moved or kept it
        /// at the wanted deadline. False while it was not needed (a lone queue with nothing pending), so that the
        /// first event that makes it needed (a wake, a timer, I/O) checks again.
        PreemptChecked: bool
        /// When the armed preemption timer fires, Time.Never when none is armed. It outlives a run: the kernel holds
        /// it until it fires (preemptFired) or is moved.
        PreemptTimerNs: int64
        /// When the loop first found nothing to run in the current idle spell, -1 when not idle.
        IdleSinceNs: int64
        /// The running code asked to yield (Yield, a yielded continuation).
        YieldRequested: bool
        /// The running code asked for a turn of the run loop (Sleep(0)).
        LoopTurnRequested: bool
    }

/// What the run loop does once it has reaped completions, fired due timers and found nothing to run.
[<Struct; RequireQualifiedAccess>]
type IdleDecision =
    /// Do not block: something is runnable, or a timer is due.
    | Continue
    /// Busy-poll the rings without blocking (the spin-before-park window is still open, or polled I/O is in flight).
    | Spin
    /// Block in the kernel until a completion arrives or `timeoutNs` passes (Time.Never: no timeout).
    | Park of timeoutNs: int64

/// What the shell does about the preemption timer of the running queue.
[<Struct; RequireQualifiedAccess>]
type PreemptTimerDecision =
    /// The armed timer fires at or before the wanted deadline, or no timer is wanted: leave it.
    | Keep
    /// Arm a timer for `afterNs` from now (no timer is armed).
    | Arm of afterNs: int64
    /// The armed timer fires too late: move it to `afterNs` from now.
    | Move of afterNs: int64

/// What the shell does after a work item of the running queue.
[<Struct; RequireQualifiedAccess>]
type RunVerdict =
    /// Run the queue's next work item (if it has one).
    | Continue
    /// NeedPreempt: the preemption timer fired or another thread posted work. End the run.
    | Preempted
    /// The code yielded and the scheduler may pick another queue, or completions wait to be reaped. End the run.
    | Yielded
    /// The code asked for a loop turn (Sleep(0)). End the run.
    | LoopTurn

/// One turn of the run loop as pure transitions over a LoopState and the shell's array of QueueState: wake → pick →
/// beginRun → checkPreemption → (work items, afterTask, needsCheck on events) → endRun; idle and woke when nothing
/// is runnable. The shell and the simulator call the same functions. Nothing here allocates.
[<RequireQualifiedAccess>]
module Loop =
    /// A loop that has not run anything: watermark 0, nothing running, runnable, armed or idle.
    let initial =
        {
            Watermark = 0L
            Running = -1
            RunnableCount = 0
            RunStartNs = 0L
            PreemptChecked = false
            PreemptTimerNs = Time.Never
            IdleSinceNs = -1L
            YieldRequested = false
            LoopTurnRequested = false
        }

    let inline private readOnly (queues: Span<QueueState>) : ReadOnlySpan<QueueState> =
        Span<QueueState>.op_Implicit queues

    /// Whether the running queue needs the preemption timer at all: only if something could want the CPU before
    /// it yields by itself — another runnable queue, a pending timer, or I/O in flight on the main or poll ring
    /// whose completion could wake a queue. (Latency-ring completions and work posted from other threads raise
    /// NeedPreempt by themselves.)
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let preemptionNeeded (anotherRunnable: bool) (nextTimerNs: int64) (mainOrPollInFlight: bool) =
        anotherRunnable || nextTimerNs <> Time.Never || mainOrPollInFlight

    /// The preemption timer for a queue that must yield by `wantedNs`. `armedNs` is the deadline of the armed timer,
    /// Time.Never when none is armed. A wanted deadline of Time.Never needs no timer: Keep.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let preemptTimer (armedNs: int64) (wantedNs: int64) (nowNs: int64) =
        let after = max 0L (wantedNs - nowNs)

        if wantedNs = Time.Never then
            PreemptTimerDecision.Keep
        elif armedNs = Time.Never then
            PreemptTimerDecision.Arm after
        elif armedNs <= wantedNs then
            PreemptTimerDecision.Keep
        else
            PreemptTimerDecision.Move after

    /// Whether and how long the shard may block, with nothing runnable. `idleSinceNs` is when the loop first found
    /// nothing to run, `spinNs` how long it busy-polls before parking, `nextTimerNs` the earliest timer (Time.Never if
    /// none). While the poll ring has operations in flight the shard never blocks: IOPOLL completions appear only
    /// when polled.
    let idleDecision
        (hasRunnable: bool)
        (pollInFlight: bool)
        (nowNs: int64)
        (idleSinceNs: int64)
        (spinNs: int64)
        (nextTimerNs: int64)
        =
        if hasRunnable || nextTimerNs <= nowNs then
            IdleDecision.Continue
        elif pollInFlight || nowNs - idleSinceNs < spinNs then
            IdleDecision.Spin
        elif nextTimerNs = Time.Never then
            IdleDecision.Park Time.Never
        else
            IdleDecision.Park(nextTimerNs - nowNs)

    /// Whether a queue other than the running one is runnable (between runs: whether any is).
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let anotherRunnable (state: LoopState) =
        state.RunnableCount > (if state.Running >= 0 then 1 else 0)

    /// Queue `index` got work at `nowNs`: if it was idle it becomes runnable at the watermark (TaskQueues.wake) and
    /// RunnableCount grows by one; a queue already runnable is left alone (waking twice is waking once). Returns the
    /// new state and whether the running queue must call checkPreemption now: another queue became runnable during
    /// a run, and either the preemption timer does not cover the run yet (PreemptChecked = false) or the woken
    /// queue is latency-sensitive (its budget may need an earlier deadline; a throughput queue can only make the
    /// wanted deadline later).
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let wake (queues: Span<QueueState>) (index: int) (nowNs: int64) (state: LoopState) =
        let queue = queues[index]

        if queue.Runnable then
            struct (state, false)
        else
            queues[index] <- TaskQueues.wake state.Watermark nowNs queue

            let check =
                state.Running >= 0
                && index <> state.Running
                && (not state.PreemptChecked || LatencyClass.matters queue.Latency)

            struct ({ state with
                        RunnableCount = state.RunnableCount + 1
                    },
                    check)

    /// The queue to run next, -1 when none is runnable (TaskQueues.pickNext).
    let pick (queues: ReadOnlySpan<QueueState>) = TaskQueues.pickNext queues

    /// Starts running queue `index` at `nowNs`: records its shares (dynamic shares are read when the queue is picked)
    /// and the pick (TaskQueues.select); Running = index, RunStartNs = nowNs, PreemptChecked and the yield and loop
    /// turn requests cleared, and the idle spell over (IdleSinceNs = -1). Call checkPreemption next.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let beginRun (queues: Span<QueueState>) (index: int) (shares: int) (nowNs: int64) (state: LoopState) =
        queues[index] <- TaskQueues.select nowNs (TaskQueues.withShares shares queues[index])

        { state with
            Running = index
            RunStartNs = nowNs
            PreemptChecked = false
            YieldRequested = false
            LoopTurnRequested = false
            IdleSinceNs = -1L
        }

    /// The preemption timer for the running queue. If nothing could want the CPU before it yields by itself
    /// (preemptionNeeded: no other runnable queue, no timer, no I/O in flight on the main or poll ring), Keep, with
    /// PreemptChecked = false so that the next event that changes that checks again: a lone queue never arms a
    /// timer. Otherwise the wanted deadline is TaskQueues.preemptDeadline and the decision compares it with the armed
    /// timer (preemptTimer); the state records the timer's new deadline and PreemptChecked = true. Between runs:
    /// Keep, state unchanged.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let checkPreemption
        (queues: ReadOnlySpan<QueueState>)
        (nowNs: int64)
        (nextTimerNs: int64)
        (ioInFlight: bool)
        (preemptIntervalNs: int64)
        (state: LoopState)
        =
        let running = state.Running

        if running < 0 || running >= queues.Length then
            struct (state, PreemptTimerDecision.Keep)
        else
            let others = state.RunnableCount > (if queues[running].Runnable then 1 else 0)

            if not (preemptionNeeded others nextTimerNs ioInFlight) then
                struct ({ state with PreemptChecked = false }, PreemptTimerDecision.Keep)
            else
                let wanted =
                    TaskQueues.preemptDeadline queues running preemptIntervalNs nextTimerNs nowNs

                let decision = preemptTimer state.PreemptTimerNs wanted nowNs

                let firesAt =
                    match decision with
                    | PreemptTimerDecision.Keep -> state.PreemptTimerNs
                    | PreemptTimerDecision.Arm after
                    | PreemptTimerDecision.Move after -> Time.addSaturating nowNs after

                let armed =
                    { state with
                        PreemptTimerNs = firesAt
                        PreemptChecked = true
                    }

                struct (armed, decision)

    /// Whether an event during a run requires calling checkPreemption: the run set a timer due at `timerSetNs`
    /// (Time.Never when the event is not a timer: it submitted I/O or woke another queue), and the preemption timer
    /// does not cover the run yet (PreemptChecked = false) or fires later than the new timer. False between runs.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let needsCheck (timerSetNs: int64) (state: LoopState) =
        state.Running >= 0
        && (not state.PreemptChecked || timerSetNs < state.PreemptTimerNs)

    /// The preemption timer's completion arrived: no timer is armed any more.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let preemptFired (state: LoopState) =
        { state with
            PreemptTimerNs = Time.Never
        }

    /// The running code asked to yield (Yield, a yielded continuation): see afterTask.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let requestYield (state: LoopState) = { state with YieldRequested = true }

    /// The running code asked for a turn of the run loop (Sleep(0)): the run ends after the work item.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let requestLoopTurn (state: LoopState) = { state with LoopTurnRequested = true }

    /// After each work item of a run. `needPreempt` is the shell's NeedPreempt (the preemption timer fired, or another
    /// thread posted work), `completionsWaiting` whether a ring has completions to reap. Preempted if needPreempt;
    /// else LoopTurn if a loop turn was requested; else, on a yield request (which this clears), Yielded only if
    /// another queue is runnable or completions wait — otherwise the scheduler would pick this queue again, so the
    /// run goes on (Continue) with the yielded continuation at the back of its queue; else Continue. The shell ends
    /// the run when the queue is empty, whatever the verdict.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let afterTask (needPreempt: bool) (completionsWaiting: bool) (state: LoopState) =
        if needPreempt then
            struct (state, RunVerdict.Preempted)
        elif state.LoopTurnRequested then
            struct (state, RunVerdict.LoopTurn)
        elif state.YieldRequested then
            let cleared = { state with YieldRequested = false }

            if completionsWaiting || anotherRunnable state then
                struct (cleared, RunVerdict.Yielded)
            else
                struct (cleared, RunVerdict.Continue)
        else
            struct (state, RunVerdict.Continue)

    /// Ends the run at `nowNs`: the running queue is charged `nowNs - RunStartNs` and `tasksRun` work items
    /// (TaskQueues.account; `stillRunnable` says whether work is left), RunnableCount drops by one if it went idle,
    /// the watermark follows (TaskQueues.watermark, never backwards), Running = -1 and the run's flags are cleared.
    /// The preemption timer stays armed. Between runs: state unchanged.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let endRun (queues: Span<QueueState>) (nowNs: int64) (tasksRun: int64) (stillRunnable: bool) (state: LoopState) =
        let running = state.Running

        if running < 0 || running >= queues.Length then
            state
        else
            let before = queues[running]

            queues[running] <- TaskQueues.account nowNs (nowNs - state.RunStartNs) tasksRun stillRunnable before

            let count =
                if before.Runnable && not stillRunnable then
                    state.RunnableCount - 1
                elif not before.Runnable && stillRunnable then
                    state.RunnableCount + 1
                else
                    state.RunnableCount

            { state with
                Watermark = TaskQueues.watermark (readOnly queues) state.Watermark running
                Running = -1
                RunnableCount = count
                PreemptChecked = false
                YieldRequested = false
                LoopTurnRequested = false
            }

    /// Nothing is runnable (pick said -1) at `nowNs`: starts the idle spell if this is its first turn (IdleSinceNs)
    /// and decides whether to go on, spin or park (idleDecision): never park while polled I/O is in flight
    /// (`pollInFlight`), spin while within `spinNs` of the spell's start, then park until the next timer
    /// (`nextTimerNs`, Time.Never: none).
    let idle (nowNs: int64) (spinNs: int64) (nextTimerNs: int64) (pollInFlight: bool) (state: LoopState) =
        let since = if state.IdleSinceNs < 0L then nowNs else state.IdleSinceNs

        let decision =
            idleDecision (state.RunnableCount > 0) pollInFlight nowNs since spinNs nextTimerNs

        struct ({ state with IdleSinceNs = since }, decision)

    /// The shard woke from a park: the idle spell is over (IdleSinceNs = -1). beginRun does the same.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let woke (state: LoopState) = { state with IdleSinceNs = -1L }

    /// New shares for queue `index` (TaskQueues.withShares); its virtual runtime so far stands.
    let setShares (queues: Span<QueueState>) (index: int) (shares: int) =
        queues[index] <- TaskQueues.withShares shares queues[index]

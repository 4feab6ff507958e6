namespace Scipio.Core

/// What the run loop does once it has reaped completions, fired due timers and found nothing to run.
[<Struct; RequireQualifiedAccess>]
type IdleDecision =
    /// Do not block: something is runnable, or must be polled.
    | Continue
    /// Busy-poll the rings without blocking (the spin-before-park window is still open).
    | Spin
    /// Block in the kernel until a completion arrives or `timeoutNs` passes (Time.Never: no timeout).
    | Park of timeoutNs: int64

/// What the shell does about the preemption timer before it runs a queue.
[<Struct; RequireQualifiedAccess>]
type PreemptTimerDecision =
    /// The armed timer fires at or before the wanted deadline: leave it.
    | Keep
    /// Arm a timer for `afterNs` from now (no timer is armed).
    | Arm of afterNs: int64
    /// The armed timer fires too late: move it to `afterNs` from now.
    | Move of afterNs: int64

/// One step of the run loop: the shell's situation in, the decision out.
[<RequireQualifiedAccess>]
module Reactor =
    /// Whether and how long the shard may block. `idleSinceNs` is when the loop last found nothing to run and
    /// `spinNs` how long it busy-polls before parking; `nextTimerNs` the earliest timer (Time.Never if none). While
    /// the poll ring has operations in flight the shard never blocks: IOPOLL completions appear only when polled.
    let idle (hasRunnable: bool) (pollInFlight: bool) (nowNs: int64) (idleSinceNs: int64) (spinNs: int64) (nextTimerNs: int64) =
        if hasRunnable || nextTimerNs <= nowNs then IdleDecision.Continue
        elif pollInFlight || nowNs - idleSinceNs < spinNs then IdleDecision.Spin
        elif nextTimerNs = Time.Never then IdleDecision.Park Time.Never
        else IdleDecision.Park(nextTimerNs - nowNs)

    /// Whether the running queue needs the preemption timer at all: only if something could want the CPU before
    /// it yields by itself — another runnable queue, a pending timer, or I/O in flight on the main or poll ring
    /// whose completion could wake a queue. (Latency-ring completions and work posted from other threads raise
    /// NeedPreempt by themselves.)
    let preemptionNeeded (anotherRunnable: bool) (nextTimerNs: int64) (mainOrPollInFlight: bool) =
        anotherRunnable || nextTimerNs <> Time.Never || mainOrPollInFlight

    /// The preemption timer for a queue that must yield by `wantedNs`. `armedNs` is the deadline of the armed timer,
    /// Time.Never when none is armed. A wanted deadline of Time.Never needs no timer: Keep.
    let preemptTimer (armedNs: int64) (wantedNs: int64) (nowNs: int64) =
        let after = max 0L (wantedNs - nowNs)

        if wantedNs = Time.Never then PreemptTimerDecision.Keep
        elif armedNs = Time.Never then PreemptTimerDecision.Arm after
        elif armedNs <= wantedNs then PreemptTimerDecision.Keep
        else PreemptTimerDecision.Move after

namespace Scipio.Core

open System.Runtime.CompilerServices

open System

/// One task queue as the scheduler sees it. The shell keeps these in an array indexed by queue id and writes back
/// what the transitions below return; nothing here allocates.
[<Struct>]
type QueueState =
    {
        /// CPU shares, ShareMath.Min..ShareMath.Max.
        Shares: int
        /// Latency class: how soon the queue must run once runnable.
        Latency: LatencyClass
        /// Virtual runtime: CPU time scaled by ShareMath.Max / Shares. The runnable queue with the least runs next.
        Vruntime: int64
        /// True while the queue has work to run.
        Runnable: bool
        /// When the queue last became runnable or was last descheduled while still runnable.
        RunnableSinceNs: int64
        /// When its last run ended: on a vruntime tie the queue that ran longest ago goes first (round robin).
        LastRanNs: int64
        /// Total CPU time the queue has run.
        RuntimeNs: int64
        /// Work items run.
        TasksRun: int64
        /// Times the scheduler picked this queue.
        TimesSelected: int64
        /// Longest wait between becoming runnable and being picked.
        MaxQueueDelayNs: int64
    }

/// The task-queue scheduler: virtual-runtime fair sharing by shares, with latency-sensitive queues served within
/// their budget. Each function is a pure transition of one queue, or a read-only decision over all of them.
/// Vruntimes are compared by their difference, as Linux's CFS does, so they may wrap around (after 106 days of CPU
/// at 1 share): the spread between queues stays far below 2^63.
[<RequireQualifiedAccess>]
module TaskQueues =
    /// `a` is less than `b`, wrap-safe.
    let inline private vless (a: int64) (b: int64) = a - b < 0L

    let inline private vmax (a: int64) (b: int64) = if vless a b then b else a

    /// A new, idle queue.
    let create (shares: int) (latency: LatencyClass) =
        {
            Shares = shares
            Latency = latency
            Vruntime = 0L
            Runnable = false
            RunnableSinceNs = 0L
            LastRanNs = 0L
            RuntimeNs = 0L
            TasksRun = 0L
            TimesSelected = 0L
            MaxQueueDelayNs = 0L
        }

    /// The queue gets work while idle. Its virtual runtime is raised to the shard's watermark: time spent idle is
    /// not banked, so a queue that slept does not burst past the queues that kept running. (It still goes before
    /// a queue at the watermark that has just run: ties go round robin.)
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let wake (watermark: int64) (nowNs: int64) (queue: QueueState) =
        if queue.Runnable then
            queue
        else
            { queue with
                Runnable = true
                RunnableSinceNs = nowNs
                Vruntime = vmax queue.Vruntime watermark
            }

    /// The scheduler picked the queue at `nowNs`: count it and record how long it waited.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let select (nowNs: int64) (queue: QueueState) =
        { queue with
            TimesSelected = queue.TimesSelected + 1L
            MaxQueueDelayNs = max queue.MaxQueueDelayNs (nowNs - queue.RunnableSinceNs)
        }

    /// The queue ran `elapsedNs` of CPU and `tasksRun` work items, ending at `nowNs`; `stillRunnable` says whether
    /// work is left. Charges the virtual runtime in inverse proportion to the shares.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let account (nowNs: int64) (elapsedNs: int64) (tasksRun: int64) (stillRunnable: bool) (queue: QueueState) =
        let elapsed = max 0L elapsedNs

        { queue with
            Vruntime = queue.Vruntime + ShareMath.virtualRuntime queue.Shares elapsed
            RuntimeNs = queue.RuntimeNs + elapsed
            TasksRun = queue.TasksRun + tasksRun
            Runnable = stillRunnable
            RunnableSinceNs = nowNs
            LastRanNs = nowNs
        }

    /// New shares for a queue; its virtual runtime so far stands.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let withShares (shares: int) (queue: QueueState) = { queue with Shares = shares }

    /// The shard's watermark after queue `ran` was accounted: the least virtual runtime among runnable queues,
    /// or, when none is runnable, the vruntime of `ran` (-1: none ran) — as CFS's min_vruntime follows the task that
    /// just ran. Without that, a queue that runs alone and goes idle would never move it, and a queue waking later
    /// would start far behind and burst. Never moves backwards.
    let watermark (queues: ReadOnlySpan<QueueState>) (previous: int64) (ran: int) =
        let mutable found = false
        let mutable least = 0L

        for i in 0 .. queues.Length - 1 do
            if queues[i].Runnable && (not found || vless queues[i].Vruntime least) then
                least <- queues[i].Vruntime
                found <- true

        if found then
            vmax previous least
        elif ran >= 0 && ran < queues.Length then
            vmax previous queues[ran].Vruntime
        else
            previous

    /// Whether the queue went idle after its last run and has been woken since (rather than waiting all along).
    let private wokeFromIdle (q: QueueState) = q.RunnableSinceNs > q.LastRanNs

    /// Whether `a` should run before `b`: less virtual runtime first; on a tie a latency-sensitive queue, then a
    /// queue woken from idle (it sits at the watermark only because idle time is not banked: it must not wait a
    /// hog's slice behind a queue that has been runnable all along, as a periodic timer would on every other tick),
    /// then the one whose last run ended longer ago (round robin).
    let private runsBefore (a: QueueState) (b: QueueState) =
        if a.Vruntime <> b.Vruntime then
            vless a.Vruntime b.Vruntime
        else
            let aMatters = LatencyClass.matters a.Latency

            if aMatters <> LatencyClass.matters b.Latency then aMatters
            elif wokeFromIdle a <> wokeFromIdle b then wokeFromIdle a
            else a.LastRanNs < b.LastRanNs

    /// The index of the queue to run next, or -1 when none is runnable. Ties go to the lower index.
    let pickNext (queues: ReadOnlySpan<QueueState>) =
        let mutable best = -1

        for i in 0 .. queues.Length - 1 do
            if queues[i].Runnable && (best < 0 || runsBefore queues[i] queues[best]) then
                best <- i

        best

    /// When the queue `running` must give the CPU back: after one preempt interval, or when the next timer is due
    /// (a timer may wake a queue), or when a latency-sensitive queue that is next in line would overrun its budget.
    /// "Next in line": it has the least vruntime of the waiting queues. It can take the CPU only once the running
    /// queue's vruntime has overtaken its own, so the deadline is never before that: cutting runs short for a queue
    /// the scheduler would not pick yet only makes runs of one task.
    /// Latency promise: a Matters queue runs within its budget while it stays within its shares; one that used
    /// more waits until the others catch up, as shares say.
    let preemptDeadline
        (queues: ReadOnlySpan<QueueState>)
        (running: int)
        (preemptIntervalNs: int64)
        (nextTimerNs: int64)
        (nowNs: int64)
        =
        let mutable deadline = min (Time.addSaturating nowNs preemptIntervalNs) nextTimerNs
        let mutable next = -1

        for i in 0 .. queues.Length - 1 do
            if
                i <> running
                && queues[i].Runnable
                && (next < 0 || runsBefore queues[i] queues[next])
            then
                next <- i

        if
            next >= 0
            && running >= 0
            && running < queues.Length
            && LatencyClass.matters queues[next].Latency
        then
            let waiting = queues[next]
            let current = queues[running]
            let gap = waiting.Vruntime - current.Vruntime

            let overtakes =
                if gap < 0L then
                    nowNs
                else
                    // +1: pass it, not tie.
                    Time.addSaturating nowNs (ShareMath.realTime current.Shares gap + 1L)

            let budgetEnds =
                Time.addSaturating waiting.RunnableSinceNs (LatencyClass.budget waiting.Latency)

            deadline <- min deadline (max budgetEnds overtakes)

        max nowNs deadline

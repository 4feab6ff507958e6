namespace Scipio.Core

open System

/// One task queue as the scheduler sees it. The shell keeps these in an array indexed by queue id and writes back
/// what the transitions below return; nothing here allocates.
[<Struct>]
type QueueState =
    {
        /// CPU shares, Shares.Min..Shares.Max.
        Shares: int
        /// Latency class: how soon the queue must run once runnable.
        Latency: LatencyClass
        /// Virtual runtime: CPU time scaled by Shares.Max / Shares. The runnable queue with the least runs next.
        Vruntime: int64
        /// True while the queue has work to run.
        Runnable: bool
        /// When the queue last became runnable or was last descheduled while still runnable.
        RunnableSinceNs: int64
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
[<RequireQualifiedAccess>]
module TaskQueues =
    /// A new, idle queue.
    let create (shares: int) (latency: LatencyClass) =
        {
            Shares = shares
            Latency = latency
            Vruntime = 0L
            Runnable = false
            RunnableSinceNs = 0L
            RuntimeNs = 0L
            TasksRun = 0L
            TimesSelected = 0L
            MaxQueueDelayNs = 0L
        }

    /// The queue gets work while idle. Its virtual runtime is raised to just below the shard's watermark: time
    /// spent idle is not banked (a queue that slept does not burst past the queues that kept running), yet it goes
    /// before the queues sitting at the watermark, so its wake-up waits for no one's extra slice.
    let wake (watermark: int64) (nowNs: int64) (queue: QueueState) =
        if queue.Runnable then
            queue
        else
            { queue with
                Runnable = true
                RunnableSinceNs = nowNs
                Vruntime = max queue.Vruntime (watermark - 1L)
            }

    /// The scheduler picked the queue at `nowNs`: count it and record how long it waited.
    let select (nowNs: int64) (queue: QueueState) =
        { queue with
            TimesSelected = queue.TimesSelected + 1L
            MaxQueueDelayNs = max queue.MaxQueueDelayNs (nowNs - queue.RunnableSinceNs)
        }

    /// The queue ran `elapsedNs` of CPU and `tasksRun` work items, ending at `nowNs`; `stillRunnable` says whether
    /// work is left. Charges the virtual runtime in inverse proportion to the shares.
    let account (nowNs: int64) (elapsedNs: int64) (tasksRun: int64) (stillRunnable: bool) (queue: QueueState) =
        let elapsed = max 0L elapsedNs

        { queue with
            Vruntime = queue.Vruntime + Shares.virtualRuntime queue.Shares elapsed
            RuntimeNs = queue.RuntimeNs + elapsed
            TasksRun = queue.TasksRun + tasksRun
            Runnable = stillRunnable
            RunnableSinceNs = nowNs
        }

    /// New shares for a queue; its virtual runtime so far stands.
    let withShares (shares: int) (queue: QueueState) = { queue with Shares = shares }

    /// The shard's watermark after queue `ran` was accounted: the least virtual runtime among runnable queues and
    /// `ran` itself (runnable or not: a queue that runs alone and then goes idle must still move the watermark, or
    /// a queue that wakes later would start far behind it and burst), never moving backwards. `ran` = -1: none.
    let watermark (queues: ReadOnlySpan<QueueState>) (previous: int64) (ran: int) =
        let mutable least = Int64.MaxValue

        for i in 0 .. queues.Length - 1 do
            if (queues[i].Runnable || i = ran) && queues[i].Vruntime < least then
                least <- queues[i].Vruntime

        if least = Int64.MaxValue then previous else max previous least

    /// Whether `a` should run before `b`: less virtual runtime first; on a tie a latency-sensitive queue, then the
    /// one that has waited longer.
    let private runsBefore (a: QueueState) (b: QueueState) =
        if a.Vruntime <> b.Vruntime then
            a.Vruntime < b.Vruntime
        else
            let aMatters = Latency.matters a.Latency

            if aMatters <> Latency.matters b.Latency then
                aMatters
            else
                a.RunnableSinceNs < b.RunnableSinceNs

    /// The index of the queue to run next, or -1 when none is runnable. Ties go to the lower index.
    let pickNext (queues: ReadOnlySpan<QueueState>) =
        let mutable best = -1

        for i in 0 .. queues.Length - 1 do
            if queues[i].Runnable && (best < 0 || runsBefore queues[i] queues[best]) then
                best <- i

        best

    /// When the queue `running` must give the CPU back: after one preempt interval, earlier if a runnable
    /// latency-sensitive queue's budget runs out first, or when the next timer is due (a timer may wake one).
    let preemptDeadline
        (queues: ReadOnlySpan<QueueState>)
        (running: int)
        (preemptIntervalNs: int64)
        (nextTimerNs: int64)
        (nowNs: int64)
        =
        let mutable deadline = min (Time.addSaturating nowNs preemptIntervalNs) nextTimerNs

        for i in 0 .. queues.Length - 1 do
            if i <> running && queues[i].Runnable then
                let budget = Latency.budget queues[i].Latency

                if budget <> Time.Never then
                    deadline <- min deadline (Time.addSaturating queues[i].RunnableSinceNs budget)

        max nowNs deadline

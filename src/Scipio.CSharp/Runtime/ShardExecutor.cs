using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Scipio.Core;
using Scipio.Interop;

namespace Scipio.Runtime;

/// <summary>One shard: its thread's run loop, task queues, timers and cross-thread inbox, over a
/// <see cref="ShardReactor"/>. The F# core decides (which queue runs, until when, how long to park); this class acts.
/// Everything here runs on the shard thread except <see cref="PostFromAnotherThread"/>.</summary>
internal sealed class ShardExecutor : IDisposable
{
    [ThreadStatic] private static ShardExecutor? t_current;

    private readonly List<TaskQueue> _queues = [];
    private QueueState[] _states = new QueueState[8];
    private long _watermark;
    private long _now; // the loop's latest clock reading; good enough for "became runnable at"

    private readonly TimerHeap _timers = new(64);
    private readonly List<TimerOperation> _timerOps = [];
    private readonly Stack<TimerOperation> _freeTimers = new();

    private readonly ConcurrentQueue<(TaskQueue? Queue, WorkItem Item)> _inbox = new();
    private int _inboxSignal; // set by other threads when they post; makes NeedPreempt true
    private volatile bool _stopRequested;

    private bool _yieldRequested;
    private bool _loopTurnRequested; // Sleep(0): end the run so the loop turns
    private int _runnableQueues;
    private int _running = -1; // the queue RunQueue is running, -1 between runs
    private bool _preemptArmed; // the preemption timer was armed for the current run
    private readonly Ring.Ring _latencyRing; // read on every NeedPreempt: one hop fewer than through Reactor
    private readonly long _preemptIntervalNs, _spinNs;
    private readonly Func<bool> _hasWork;
    private long _tasksRun, _loopTurns, _parks, _preemptions, _runtimeNs;

    public ShardExecutor(int id, ShardOptions options, int pinnedCpu)
    {
        Id = id;
        PinnedCpu = pinnedCpu;
        _preemptIntervalNs = Clock.ToNs(options.PreemptInterval);
        _spinNs = Clock.ToNs(options.SpinBeforePark);
        _hasWork = HasWork;
        _now = Clock.NowNs;
        Reactor = new ShardReactor(options.RingEntries, Cpus.AllowedAtStart);
        _latencyRing = Reactor.Latency.Ring;
        YieldSource = new YieldIfNeededSource(this);
        DefaultQueue = CreateQueue("default", Shares.Static(100), Latency.NotImportant);
        CurrentQueue = DefaultQueue;
        t_current = this;
    }

    /// <summary>The shard running on this thread, or null.</summary>
    public static ShardExecutor? Current
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => t_current;
    }

    /// <summary>The shard running on this thread; throws the not-on-a-shard error otherwise.</summary>
    public static ShardExecutor Require(string member)
    {
        var e = t_current;
        if (e is null) ThrowHelper.ThrowNotOnShard(member);
        return e;
    }

    public static void ThrowIfOnShard(string member)
    {
        if (t_current is not null)
            throw new InvalidOperationException($"{member} blocks the calling thread, so it cannot be called on a shard: await the Completion task instead.");
    }

    public int Id { get; }
    public int PinnedCpu { get; }
    public ShardReactor Reactor { get; }
    public TaskQueue DefaultQueue { get; }
    public TaskQueue CurrentQueue { get; private set; }
    public IValueTaskSource YieldSource { get; }

    /// <summary>Whether the running queue should give the CPU back: the latency ring has an event (the preemption
    /// timer fired) or another thread posted work. Two memory reads.</summary>
    public bool NeedPreempt
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _latencyRing.HasCompletions || Volatile.Read(ref _inboxSignal) != 0;
    }

    // ---- task queues ----

    public TaskQueue CreateQueue(string name, Shares shares, Latency latency)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(shares);
        if (_queues.Any(q => q.Name == name))
            throw new ArgumentException($"This shard already has a task queue named '{name}'; names are unique per shard.", nameof(name));
        var queue = new TaskQueue(this, _queues.Count, name, shares, latency);
        _queues.Add(queue);
        if (_states.Length < _queues.Count) Array.Resize(ref _states, _states.Length * 2);
        _states[queue.Index] = TaskQueues.create(shares.Current, latency.ToCore());
        return queue;
    }

    public void MarkRunnable(int index)
    {
        if (_states[index].Runnable) return;
        _states[index] = TaskQueues.wake(_watermark, _now, _states[index]);
        _runnableQueues++;
        // The running queue woke another (spawned into it, say): it now competes for the CPU, so the running
        // queue needs the preemption timer even if it did not when it was picked.
        if (_running >= 0 && index != _running && !_preemptArmed) ArmPreemption(Clock.NowNs);
    }

    public void OnSharesChanged(TaskQueue queue) =>
        _states[queue.Index] = TaskQueues.withShares(queue.Shares.Current, _states[queue.Index]);

    public TaskQueueStats QueueStats(TaskQueue queue)
    {
        var s = _states[queue.Index];
        return new TaskQueueStats(queue.Name, s.Shares, Clock.FromNs(s.RuntimeNs), s.TasksRun, s.TimesSelected, Clock.FromNs(s.MaxQueueDelayNs));
    }

    public ShardStats Stats()
    {
        return new ShardStats(
            Clock.FromNs(_runtimeNs), _tasksRun, _loopTurns, _parks, Reactor.Wakeups, _preemptions, Reactor.PollFallbacks,
            Reactor.Main.Stats(), Reactor.Latency.Stats(), Reactor.Poll.Stats(),
            _queues.Select(QueueStats).ToArray());
    }

    public Task<T> Spawn<T>(TaskQueue queue, Func<Task> work)
    {
        if (queue.Executor != this)
            throw new ArgumentException($"Task queue '{queue.Name}' belongs to another shard; spawn into a queue of this shard.", nameof(queue));
        var spawned = new SpawnedWork<T>(work);
        queue.EnqueueLocal(new WorkItem(spawned, null));
        return spawned.Task;
    }

    // ---- preemption ----

    /// <summary>Arms the preemption timer for the running queue if the core says it is needed: another queue is
    /// runnable, a timer is pending, or I/O is in flight. Also called when the run itself sets a timer or submits
    /// I/O, since that can make it needed (or needed sooner) after the queue was picked.</summary>
    private void ArmPreemption(long nowNs)
    {
        long nextTimer = _timers.NextDeadline;
        if (!Core.Reactor.preemptionNeeded(AnotherQueueRunnable(_running), nextTimer, Reactor.OperationsInFlight)) return;
        _preemptArmed = true;
        Reactor.PreparePreempt(TaskQueues.preemptDeadline(States, _running, _preemptIntervalNs, nextTimer, nowNs), nowNs);
    }

    /// <summary>A pooled operation set up for a use on behalf of the running queue; then Set* it and submit it.</summary>
    public IoOperation RentOperation(string what, string? path, CancellationToken ct) =>
        Reactor.RentOperation(this).Prepare(what, path, ct);

    /// <summary>Submits an operation to the ring the core routes it to.</summary>
    public void Submit(IoOperation op)
    {
        Reactor.Submit(op);
        if (_running >= 0 && !_preemptArmed) ArmPreemption(Clock.NowNs);
    }

    // ---- yielding ----

    public void YieldContinuation(Action continuation)
    {
        _yieldRequested = true;
        CurrentQueue.EnqueueLocal(new WorkItem(continuation, null));
    }

    /// <summary>The source behind YieldIfNeeded's ValueTask when a yield is due. Stateless: it always reports
    /// pending and queues the continuation, so one instance serves every awaiter.</summary>
    private sealed class YieldIfNeededSource(ShardExecutor executor) : IValueTaskSource
    {
        public ValueTaskSourceStatus GetStatus(short token) => ValueTaskSourceStatus.Pending;

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            executor.CurrentQueue.EnqueueLocal(new WorkItem(continuation, state));

        public void GetResult(short token) { }
    }

    // ---- timers ----

    public ValueTask Sleep(TimeSpan delay, CancellationToken ct)
    {
        if (delay < TimeSpan.Zero && delay != Timeout.InfiniteTimeSpan)
            ThrowHelper.ThrowArgumentOutOfRange(nameof(delay), delay, "The delay must be zero or positive, or Timeout.InfiniteTimeSpan.");
        if (ct.IsCancellationRequested) return ValueTask.FromCanceled(ct);
        if (delay == TimeSpan.Zero)
        {
            // Due at once: what it owes the caller is one turn of the run loop (reap, timers, a fresh pick), not a
            // clock read and a trip through the timer heap.
            _loopTurnRequested = true;
            return new ValueTask(YieldSource, 0);
        }
        if (!_freeTimers.TryPop(out var timer))
        {
            timer = new TimerOperation(this, _timerOps.Count);
            _timerOps.Add(timer);
        }
        timer.Start(ct);
        if (delay != Timeout.InfiniteTimeSpan)
        {
            long now = Clock.NowNs;
            _timers.Push(Time.addSaturating(now, Clock.ToNs(delay)), timer.Id, timer.Arming);
            if (_running >= 0) ArmPreemption(now); // the running queue must stop in time for it
        }
        return new ValueTask(timer, timer.Version);
    }

    public void ReturnTimer(TimerOperation timer) => _freeTimers.Push(timer);

    private void FireDueTimers(long now)
    {
        while (_timers.TryPopDue(now, out var entry))
        {
            var timer = _timerOps[entry.Id];
            if (timer.Arming == entry.Version) timer.Fire(0);
        }
    }

    // ---- cancellation (the token's callback may run on any thread) ----

    public void RequestCancel(IoOperation op, short version)
    {
        if (t_current != this)
        {
            PostFromAnotherThread(null, new WorkItem((Action)(() => RequestCancel(op, version)), null));
            return;
        }
        if (op.Version == version) Reactor.Cancel(op);
    }

    public void RequestTimerCancel(TimerOperation timer, short version)
    {
        if (t_current != this)
        {
            PostFromAnotherThread(null, new WorkItem((Action)(() => RequestTimerCancel(timer, version)), null));
            return;
        }
        if (timer.Version == version) timer.Fire(-Errno.ECANCELED);
    }

    // ---- cross-thread inbox ----

    /// <summary>Queues work from another thread (a null queue: run it in the loop itself) and wakes the shard.</summary>
    public void PostFromAnotherThread(TaskQueue? queue, WorkItem item)
    {
        _inbox.Enqueue((queue, item));
        // A full fence, not a release store: Wake reads _parked next, and a store followed by a load may be
        // reordered — the shard could park after reading _inboxSignal = 0 while we read _parked = 0 (a lost wake).
        Interlocked.Exchange(ref _inboxSignal, 1);
        Reactor.Wake();
    }

    private void DrainInbox()
    {
        if (Volatile.Read(ref _inboxSignal) == 0) return;
        // Cleared with a full fence before draining: a post that lands after the drain has set it again.
        Interlocked.Exchange(ref _inboxSignal, 0);
        while (_inbox.TryDequeue(out var posted))
        {
            if (posted.Queue is null) posted.Item.Run();
            else posted.Queue.EnqueueLocal(posted.Item);
        }
    }

    /// <summary>Whether a queue other than <paramref name="index"/> (which is runnable: it is running) is runnable.</summary>
    private bool AnotherQueueRunnable(int index) => _runnableQueues > (_states[index].Runnable ? 1 : 0);

    private bool HasWork() => Volatile.Read(ref _inboxSignal) != 0 || _runnableQueues > 0;

    private ReadOnlySpan<QueueState> States => _states.AsSpan(0, _queues.Count);

    // ---- the run loop ----

    public void RequestStop()
    {
        _stopRequested = true;
        Interlocked.Exchange(ref _inboxSignal, 1); // a full fence before Wake reads _parked, as in posting
        Reactor.Wake();
    }

    /// <summary>Runs until <see cref="RequestStop"/>: reap completions of the three rings → take posted work → fire due
    /// timers → let the core pick a queue and run it until it is empty or must yield → submit what it prepared →
    /// if nothing is runnable, spin or park until the next timer.</summary>
    public void RunLoop()
    {
        _now = Clock.NowNs;
        long idleSince = -1;
        while (!_stopRequested)
        {
            _loopTurns++;
            Reactor.Reap();
            DrainInbox();
            _now = Clock.NowNs;
            FireDueTimers(_now);

            int next = TaskQueues.pickNext(States);
            if (next >= 0)
            {
                idleSince = -1;
                RunQueue(next);
                Reactor.Flush();
                continue;
            }

            Reactor.Flush();
            if (idleSince < 0) idleSince = _now;
            var decision = Core.Reactor.idle(false, Reactor.Poll.Busy > 0, _now, idleSince, _spinNs, _timers.NextDeadline);
            if (decision.IsPark)
            {
                _parks++;
                Reactor.Park(decision.timeoutNs, _hasWork);
                idleSince = -1;
            }
        }
    }

    private void RunQueue(int index)
    {
        var queue = _queues[index];
        long start = _now;
        if (queue.Shares.IsDynamic) _states[index] = TaskQueues.withShares(queue.Shares.Current, _states[index]);
        _states[index] = TaskQueues.select(start, _states[index]);
        _running = index;
        _preemptArmed = false;
        ArmPreemption(start);

        CurrentQueue = queue;
        SynchronizationContext.SetSynchronizationContext(queue);
        var work = queue.Work;
        long ran = 0;
        bool preempted = false;
        while (work.TryDequeue(out var item))
        {
            ran++;
            _tasksRun++; // counted as it runs: one run may last as long as the program (Shard.Stats reads it mid-run)
            item.Run();
            if (NeedPreempt)
            {
                preempted = true;
                break;
            }
            if (_loopTurnRequested) break;
            if (_yieldRequested)
            {
                // The scheduler would pick this queue again unless another is runnable or a completion waits to
                // be reaped; the slice's end, due timers and cross-thread posts all show up in NeedPreempt. So the
                // loop turn (two clock reads) is skipped and the yielded continuation runs from the queue's back.
                _yieldRequested = false;
                if (Reactor.CompletionsWaiting || AnotherQueueRunnable(index)) break;
            }
        }
        _yieldRequested = false;
        _loopTurnRequested = false;
        _running = -1;
        if (preempted) _preemptions++;
        SynchronizationContext.SetSynchronizationContext(null);
        CurrentQueue = DefaultQueue;

        long end = Clock.NowNs;
        _now = end;
        _runtimeNs += end - start;
        _states[index] = TaskQueues.account(end, end - start, ran, work.Count > 0, _states[index]);
        if (!_states[index].Runnable) _runnableQueues--;
        _watermark = TaskQueues.watermark(States, _watermark, index);
    }

    /// <summary>Stops I/O for good: cancels and reaps what is in flight, then closes the rings.</summary>
    public void Dispose()
    {
        try { Reactor.Drain(); }
        finally
        {
            Reactor.Dispose();
            t_current = null;
        }
    }
}

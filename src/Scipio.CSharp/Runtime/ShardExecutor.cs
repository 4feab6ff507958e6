using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Scipio.Core;
using Scipio.Interop;
using Scipio.Ring;

namespace Scipio.Runtime;

/// <summary>One shard: its thread's run loop, task queues, timers and cross-thread inbox, over an
/// <see cref="IShardBackend"/>. The core's <see cref="Loop"/> keeps the loop's books (watermark, which queue runs,
/// the runnable count, the preemption timer, yields) and decides; this class reads the clock, runs work and acts.
/// Everything here runs on the shard thread except <see cref="PostFromAnotherThread"/> and
/// <see cref="RequestStop"/>.</summary>
internal sealed class ShardExecutor : IDisposable
{
    [ThreadStatic] private static ShardExecutor? t_current;

    private readonly List<TaskQueue> _queues = [];
    private QueueState[] _states = new QueueState[8];
    private LoopState _loop = Loop.initial;
    private long _now; // the loop's latest clock reading: "became runnable at" for wakes during a turn

    /// <summary>The loop's latest clock reading (taken just before it reaps completions): when a completion reaped
    /// in this turn arrived, as the I/O histograms count it, without a clock read of their own.</summary>
    public long LoopNowNs => _now;

    private readonly TimerHeap _timers = new(64);
    private readonly SlotTable<ITimerTarget> _timerOps = new();
    private readonly Stack<TimerOperation> _freeTimers = new();

    private const int InboxBatch = 1024;
    private readonly ConcurrentQueue<(TaskQueue? Queue, WorkItem Item)> _inbox = new();
    private int _inboxSignal; // set by other threads when they post; makes NeedPreempt true
    private volatile bool _stopRequested;

    private readonly PreemptSignal _preempt; // read on every NeedPreempt
    private readonly long _preemptIntervalNs, _spinNs;
    private readonly long _stallNs; // 0: stall detection off
    private readonly Action<Diagnostics.StallReport>? _onStall;
    private long _stalls;
    private readonly Func<bool> _hasWork;
    private long _tasksRun, _loopTurns, _parks, _preemptions, _runtimeNs;

    public ShardExecutor(int id, ShardOptions options, int pinnedCpu, ShardPool? pool = null)
    {
        Id = id;
        Pool = pool;
        PinnedCpu = pinnedCpu;
        _preemptIntervalNs = Clock.ToNs(options.PreemptInterval);
        _spinNs = Clock.ToNs(options.SpinBeforePark);
        _stallNs = options.StallThreshold is { } threshold ? Clock.ToNs(threshold) : 0;
        _onStall = options.OnStall;
        _hasWork = HasWork;
        _now = Clock.NowNs;
        Operations = new OperationTable(this);
        (Backend, BackendKind) = BackendChoice.Create(options.Backend, id, options.RingEntries, Operations);
        _preempt = Backend.PreemptSignal;
        YieldSource = new YieldIfNeededSource(this);
        DefaultQueue = CreateQueue("default", Shares.Static(100), Latency.NotImportant);
        if (options.DiskModel is { } model) Disk = new DiskScheduler(this, model.ToCore());
        CurrentQueue = DefaultQueue;
        t_current = this;
        IdTag = id;
        Diagnostics.ScipioMetrics.Register(this);
    }

    /// <summary>The shard's id, boxed once: a metric tag's value (KeyValuePair&lt;string, object?&gt;) without an
    /// allocation per measurement.</summary>
    public object IdTag { get; }

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

    /// <summary>The shard's index in its pool; 0 for a lone shard.</summary>
    public int Id { get; }
    public int PinnedCpu { get; }

    /// <summary>The pool the shard belongs to; null for a lone shard.</summary>
    public ShardPool? Pool { get; }
    public IShardBackend Backend { get; }

    /// <summary>Which backend that is.</summary>
    public ShardBackend BackendKind { get; }
    public OperationTable Operations { get; }
    public SpawnedWorkList Spawned { get; } = new();
    public TaskQueue DefaultQueue { get; }
    public TaskQueue CurrentQueue { get; private set; }
    public IValueTaskSource YieldSource { get; }

    /// <summary>Whether the running queue should give the CPU back: the backend's signal (the preemption timer fired,
    /// a latency-sensitive completion arrived) or another thread posted work. Two memory compares.</summary>
    public bool NeedPreempt
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _preempt.Raised || Volatile.Read(ref _inboxSignal) != 0;
    }

    private Span<QueueState> States => _states.AsSpan(0, _queues.Count);

    // ---- task queues ----

    public TaskQueue CreateQueue(string name, Shares shares, Latency latency)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(shares);
        if (_queues.Any(q => q.Name == name))
            throw new ArgumentException($"This shard already has a task queue named '{name}'; names are unique per shard.", nameof(name));
        var queue = new TaskQueue(this, _queues.Count, name, shares, latency);
        int initial = queue.ReadShares(ShareMath.Min);
        _queues.Add(queue);
        if (_states.Length < _queues.Count) Array.Resize(ref _states, _states.Length * 2);
        _states[queue.Index] = TaskQueues.create(initial, latency.ToCore());
        return queue;
    }

    public void MarkRunnable(int index)
    {
        if (_states[index].Runnable) return;
        var (loop, recheck) = Loop.wake(States, index, _now, _loop);
        _loop = loop;
        // The running queue woke another (spawned into it, say): it now competes for the CPU.
        if (recheck) CheckPreemption(Clock.NowNs);
    }

    public void OnSharesChanged(TaskQueue queue) =>
        Loop.setShares(States, queue.Index, queue.ReadShares(_states[queue.Index].Shares));

    public TaskQueueStats QueueStats(TaskQueue queue)
    {
        var s = _states[queue.Index];
        var io = Disk?.QueueStats(queue.Index) ?? default;
        return new TaskQueueStats(queue.Name, s.Shares, Clock.FromNs(s.RuntimeNs), s.TasksRun, s.TimesSelected, Clock.FromNs(s.MaxQueueDelayNs))
        {
            IoDispatched = io.Dispatched,
            IoBytes = io.Bytes,
            IoSchedulerWait = Clock.FromNs(io.WaitNs),
            IoDeviceTime = Clock.FromNs(io.DeviceNs),
        };
    }

    public ShardStats Stats()
    {
        var b = Backend.Stats();
        return new ShardStats(
            Clock.FromNs(_runtimeNs), _tasksRun, _loopTurns, _parks, b.Wakeups, _preemptions, b.PollFallbacks,
            b.Main, b.Latency, b.Poll, _queues.Select(QueueStats).ToArray())
        {
            MsgRingWakeups = b.MsgRingWakeups,
            RegisteredBuffers = b.Fixed.Registered,
            FixedBufferIo = b.Fixed.FixedIo,
            BufferRegistrationFailures = b.Fixed.Failures,
            InlineWrites = InlineWrites,
            ReceiveFallbacks = ReceiveFallbacks,
            PendingTimers = PendingTimers,
            Stalls = _stalls,
            Shard = Id,
            Backend = BackendKind,
            CrossShardSent = Pool?.Transport.SentBy(Id) ?? 0,
            CrossShardReceived = Pool?.Transport.ReceivedBy(Id) ?? 0,
        };
    }

    /// <summary>Buffered-file writes done by pwrite on this thread (counted by BufferedFile).</summary>
    public long InlineWrites;

    /// <summary>Socket reads into the reader's memory after ENOBUFS (counted by SocketConnection).</summary>
    public long ReceiveFallbacks;

    public Task<T> Spawn<T>(TaskQueue queue, Func<Task> work)
    {
        if (queue.Executor != this)
            throw new ArgumentException($"Task queue '{queue.Name}' belongs to another shard; spawn into a queue of this shard.", nameof(queue));
        var spawned = new SpawnedWork<T>(work, Spawned);
        queue.EnqueueLocal(new WorkItem(spawned, null));
        return spawned.Task;
    }

    // ---- preemption ----

    /// <summary>Lets the core arm, move or keep the preemption timer for the running queue, now that something may
    /// want the CPU: another queue is runnable, a timer is pending, or I/O is in flight.</summary>
    private void CheckPreemption(long nowNs)
    {
        var (loop, decision) = Loop.checkPreemption(States, nowNs, _timers.NextDeadline, Backend.IoInFlight, _preemptIntervalNs, _loop);
        if (decision.IsKeep || Backend.SetPreemptTimer(decision)) _loop = loop; // else the books keep the timer as it is
    }

    /// <summary>Submits an operation to the backend; a run that starts I/O may now need the preemption timer.</summary>
    private static readonly long DiskSpinNs = Clock.ToNs(TimeSpan.FromMicroseconds(200));

    /// <summary>The I/O scheduler, when <see cref="ShardOptions.DiskModel"/> is set; else null.</summary>
    public DiskScheduler? Disk { get; }

    /// <summary>Submits an O_DIRECT read or write of <paramref name="bytes"/>: through the I/O scheduler when the
    /// shard has one, straight to the rings otherwise.</summary>
    public void SubmitDirect(IoOperation op, bool write, int bytes)
    {
        if (Disk is { } disk) disk.Submit(op, write, bytes);
        else Submit(op);
    }

    /// <summary>The task queue with index <paramref name="index"/>, or null.</summary>
    public TaskQueue? QueueAt(int index) => index < _queues.Count ? _queues[index] : null;

    public void Submit(IoOperation op)
    {
        Backend.Submit(op);
        if (Loop.needsCheck(Time.Never, _loop)) CheckPreemption(Clock.NowNs);
    }

    // ---- yielding ----

    public void YieldContinuation(Action continuation)
    {
        _loop = Loop.requestYield(_loop);
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
            _loop = Loop.requestLoopTurn(_loop);
            return new ValueTask(YieldSource, 0);
        }
        if (!_freeTimers.TryPop(out var timer))
        {
            timer = new TimerOperation(this);
            timer.Id = AddTimer(timer);
        }
        timer.Start(ct);
        if (delay != Timeout.InfiniteTimeSpan)
        {
            long now = Clock.NowNs;
            ArmTimer(timer.Id, Time.addSaturating(now, Clock.ToNs(delay)), now);
        }
        return new ValueTask(timer, timer.Version);
    }

    public void ReturnTimer(TimerOperation timer) => _freeTimers.Push(timer);

    /// <summary>Gives <paramref name="target"/> a slot in the timer table: its id for <see cref="ArmTimer"/>. Keep
    /// it for the target's life (pooled sleeps, a periodic timer) or give it back with <see cref="RemoveTimer"/>.</summary>
    public int AddTimer(ITimerTarget target) => _timerOps.Add(target);

    /// <summary>Disarms timer <paramref name="id"/> and frees its slot.</summary>
    public void RemoveTimer(int id)
    {
        _timers.Remove(id);
        _timerOps.Remove(id);
    }

    /// <summary>Arms timer <paramref name="id"/> for <paramref name="deadlineNs"/> (re-arming moves it), read at
    /// <paramref name="nowNs"/>.</summary>
    public void ArmTimer(int id, long deadlineNs, long nowNs)
    {
        _timers.Push(deadlineNs, id);
        if (Loop.needsCheck(deadlineNs, _loop)) CheckPreemption(nowNs); // the running queue must stop in time for it
    }

    /// <summary>Takes timer <paramref name="id"/> out of the heap at once (O(log n)), so a canceled timer neither
    /// holds memory until its deadline nor keeps the preemption timer armed; false when it was not armed.</summary>
    public bool DisarmTimer(int id) => _timers.Remove(id);

    /// <summary>Timers armed in the heap now: exactly the live ones (a canceled timer leaves at once).</summary>
    public int PendingTimers => _timers.Count;

    /// <summary>What the timer heap's entry array holds on to (it shrinks when the shard parks after a peak).</summary>
    internal int TimerCapacity => _timers.Capacity;

    private void FireDueTimers(long now)
    {
        while (_timers.TryPopDue(now, out var entry)) _timerOps[entry.Id]!.OnTimerDue(now);
    }

    // ---- cancellation (the token's callback may run on any thread) ----

    public void RequestCancel(IoOperation op, short version)
    {
        if (t_current != this)
        {
            PostFromAnotherThread(null, new WorkItem((Action)(() => RequestCancel(op, version)), null));
            return;
        }
        if (op.Version == version) Backend.Cancel(op);
    }

    public void RequestTimerCancel(TimerOperation timer, short version)
    {
        if (t_current != this)
        {
            PostFromAnotherThread(null, new WorkItem((Action)(() => RequestTimerCancel(timer, version)), null));
            return;
        }
        if (timer.Version != version) return;
        DisarmTimer(timer.Id); // at once: a canceled timer must not keep the preemption timer armed
        timer.Fire(-Errno.ECANCELED);
    }

    // ---- cross-thread inbox ----

    /// <summary>Queues work from another thread (a null queue: run it in the loop itself) and wakes the shard.</summary>
    public void PostFromAnotherThread(TaskQueue? queue, WorkItem item)
    {
        _inbox.Enqueue((queue, item));
        // A full fence, not a release store: Wake reads _parked next, and a store followed by a load may be
        // reordered — the shard could park after reading _inboxSignal = 0 while we read _parked = 0 (a lost wake).
        Interlocked.Exchange(ref _inboxSignal, 1);
        Backend.Wake();
    }

    /// <summary>The shard has stopped: calls posted to it that it never took end canceled (or with the pool's
    /// fault); other posted work is dropped (nothing will run it). Any thread; safe to repeat.</summary>
    public void AbandonInbox(Exception? fault)
    {
        while (_inbox.TryDequeue(out var posted))
            if (posted.Item.State is ICrossShardItem call) call.Abandon(fault);
    }

    /// <summary>Another shard of the pool sent something through its ring to this one: it will be drained.</summary>
    public void Signal()
    {
        Interlocked.Exchange(ref _inboxSignal, 1); // a full fence before Wake reads _parked, as in posting
        Backend.Wake();
    }

    /// <summary>Takes at most one batch of posted work, and of what each peer shard sent, per loop turn: threads
    /// posting flat out must not keep the loop from everything else (they would, were it to drain until empty).</summary>
    private void DrainInbox()
    {
        if (Volatile.Read(ref _inboxSignal) == 0) return;
        // Cleared with a full fence before draining: a post that lands after the drain has set it again.
        Interlocked.Exchange(ref _inboxSignal, 0);
        for (int i = 0; i < InboxBatch && _inbox.TryDequeue(out var posted); i++)
        {
            if (posted.Queue is null) posted.Item.Run();
            else posted.Queue.EnqueueLocal(posted.Item);
        }
        bool more = Pool is { } pool && pool.Transport.Drain(this);
        if (more || !_inbox.IsEmpty) Interlocked.Exchange(ref _inboxSignal, 1); // the rest next turn
    }

    /// <summary>Signals and wakes, once each, the peers this shard sent to since the last flush.</summary>
    private void FlushToPeers()
    {
        if (Pool is { } pool) pool.Transport.Flush(Id, pool.Shards);
    }

    /// <summary>Checked after a park is announced. The stop request counts: the signal RequestStop raised may have
    /// been consumed by this very turn's drain, after the loop last looked at the stop flag.</summary>
    private bool HasWork() =>
        _stopRequested || Volatile.Read(ref _inboxSignal) != 0 || _loop.RunnableCount > 0
        || (Pool is { } pool && pool.Transport.HasOverflow(Id));

    // ---- the run loop ----

    public void RequestStop()
    {
        _stopRequested = true;
        Interlocked.Exchange(ref _inboxSignal, 1); // a full fence before Wake reads _parked, as in posting
        Backend.Wake();
    }

    /// <summary>Runs until <see cref="RequestStop"/>: read the clock → reap completions → take posted work → fire due
    /// timers → let the core pick a queue and run it until it is empty or must yield → submit what it prepared →
    /// if nothing is runnable, spin or park until the next timer.</summary>
    public void RunLoop()
    {
        while (!_stopRequested)
        {
            _loopTurns++;
            // Read before reaping: a queue a completion wakes became runnable when the shard woke, not when it last
            // read the clock (before it parked).
            _now = Clock.NowNs;
            if (Backend.Reap()) _loop = Loop.preemptFired(_loop);
            DrainInbox();
            FireDueTimers(_now);
            if (_now >= _nextPublishNs || _publishRequested != 0) PublishStats();
            if (Disk is { } disk)
            {
                if (_now >= disk.NextDispatchNs) disk.Pump(_now);
                if (disk.TakeDispatched()) Backend.Flush();
            }

            int next = Loop.pick(States);
            if (next >= 0)
            {
                RunQueue(next);
                FlushToPeers();
                // Submit now only when more work is runnable, so the I/O proceeds while it runs. Otherwise the loop
                // is about to park, and the park's io_uring_enter submits with its wait: one syscall per
                // request-response turn, not two.
                if (Loop.pick(States) >= 0) Backend.Flush();
                continue;
            }

            FlushToPeers();
            // Tokens due within a park's timer slack (tens of µs) are waited for by spinning: a park would oversleep
            // them, and the device would idle.
            bool mustSpin = Backend.MustPoll || (Pool is { } pool && pool.Transport.HasOverflow(Id))
                || (Disk is { } scheduler && scheduler.NextDispatchNs - _now < DiskSpinNs);
            var (loop, decision) = Loop.idle(_now, _spinNs, Math.Min(_timers.NextDeadline, Disk?.NextDispatchNs ?? Time.Never), mustSpin, _loop);
            _loop = loop;
            if (decision.IsPark)
            {
                _parks++;
                Trim();
                Backend.Park(decision.timeoutNs, _hasWork); // submits what is prepared
                _loop = Loop.woke(_loop);
            }
            else Backend.Flush();
        }
    }

    /// <summary>Closes <paramref name="fd"/> through the ring: takes it from its SafeHandle (so the finalizer will
    /// not close it, and later calls see it closed), cancels what is still pending on it (each ends through its own
    /// CQE), then submits the close. <paramref name="what"/> and <paramref name="path"/> name it in errors.</summary>
    public ValueTask CloseThroughRing(FileDescriptor fd, string what, string? path = null)
    {
        int descriptor = fd.Fd;
        fd.SetHandleAsInvalid();
        Backend.CancelDescriptor(descriptor);
        var op = Operations.RentReadWrite().Start(what, path, null, default);
        op.PrepareClose(descriptor);
        Submit(op);
        return new ValueTask(op, op.Version);
    }

    // ---- metrics: a snapshot published for the meter's observable instruments ----

    private long _nextPublishNs;
    private int _publishRequested;
    private long _publishedAtNs = long.MinValue;
    private static readonly long s_publishIntervalNs = Clock.ToNs(Diagnostics.ScipioMetrics.PublishInterval);

    /// <summary>The latest snapshot this shard published for the meter (null before the first); any thread.</summary>
    public volatile ShardStats? PublishedStats;

    /// <summary>Publishes a snapshot when a listener is attached or one was asked for; otherwise only looks again
    /// one interval later. On the shard thread, once per interval at most: nothing per loop turn.</summary>
    internal void PublishStats()
    {
        bool asked = Interlocked.Exchange(ref _publishRequested, 0) != 0;
        _nextPublishNs = _now + s_publishIntervalNs;
        if (!asked && !Diagnostics.ScipioMetrics.Listening) return;
        PublishedStats = Stats();
        Volatile.Write(ref _publishedAtNs, _now);
    }

    /// <summary>From a collection (any thread): a snapshot older than the interval is refreshed on the shard's
    /// next loop turn, and a parked shard is woken for it.</summary>
    internal void RequestPublishIfStale()
    {
        if (Clock.NowNs - Volatile.Read(ref _publishedAtNs) < s_publishIntervalNs) return;
        if (Interlocked.Exchange(ref _publishRequested, 1) == 0) Backend.Wake();
    }

    /// <summary>Runs a work item under the stall detector: timed, and reported when it ran past the threshold.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RunTimed(in WorkItem item, TaskQueue queue)
    {
        var subject = item.Subject; // before running: a spawned item lets go of its function as it starts
        long start = Clock.NowNs;
        try
        {
            item.Run();
        }
        finally
        {
            long took = Clock.NowNs - start;
            if (took >= _stallNs) ReportStall(queue, took, subject);
        }
    }

    private void ReportStall(TaskQueue queue, long tookNs, (object?, object) subject)
    {
        _stalls++;
        var report = new Diagnostics.StallReport(Id, queue.Name, Clock.FromNs(tookNs), WorkItemNames.Of(subject));
        try
        {
            if (_onStall is { } onStall) onStall(report);
            else Console.Error.WriteLine(report.ToString());
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"Scipio: ShardOptions.OnStall threw for {report}: {e}");
        }
    }

    private void RunQueue(int index)
    {
        var queue = _queues[index];
        long start = _now;
        _loop = Loop.beginRun(States, index, queue.ReadShares(_states[index].Shares), start, _loop);
        CheckPreemption(start);

        CurrentQueue = queue;
        SynchronizationContext.SetSynchronizationContext(queue);
        var work = queue.Work;
        long ran = 0;
        bool preempted = false;
        while (work.TryDequeue(out var item))
        {
            ran++;
            _tasksRun++; // counted as it runs: one run may last as long as the program (Shard.Stats reads it mid-run)
            if (_stallNs == 0) item.Run();
            else RunTimed(item, queue);
            // Nothing to decide unless the slice is over or the work asked for a yield or a loop turn.
            if (!NeedPreempt && !_loop.YieldRequested && !_loop.LoopTurnRequested) continue;
            // Work posted from other threads joins its queues now, like a completion; it does not end the run by
            // itself (threads posting flat out would otherwise cut every run to one item): a queue it wakes gets
            // the CPU when the core says so — at the slice's end, or sooner for a latency-sensitive one.
            DrainInbox();
            var (loop, verdict) = Loop.afterTask(_preempt.Raised, _loop.YieldRequested && Backend.CompletionsWaiting, _loop);
            _loop = loop;
            if (verdict.IsContinue) continue;
            preempted = verdict.IsPreempted;
            break;
        }
        if (preempted) _preemptions++;
        SynchronizationContext.SetSynchronizationContext(null);
        CurrentQueue = DefaultQueue;

        long end = Clock.NowNs;
        _now = end;
        _runtimeNs += end - start;
        _loop = Loop.endRun(States, end, ran, work.Count > 0, _loop);
    }

    /// <summary>The shard is about to park: drop what a peak of timers and operations left behind.</summary>
    private void Trim()
    {
        Backend.Trim();
        if (_freeTimers.Count <= 256) return;
        while (_freeTimers.Count > 64) _timerOps.Remove(_freeTimers.Pop().Id);
        _timerOps.Compact();
        _timers.Trim();
    }

    /// <summary>Stops for good: cancels and reaps the I/O in flight, closes the rings, and ends the Tasks of spawned
    /// work that will never run again as canceled.</summary>
    public void Dispose() => Dispose(null);

    /// <summary>Stops for good; the Tasks of work that will never run again end canceled, or faulted with
    /// <paramref name="fault"/> when the shard's pool stopped because of it.</summary>
    public void Dispose(Exception? fault)
    {
        Diagnostics.ScipioMetrics.Unregister(this);
        try { Backend.Drain(); }
        finally
        {
            Backend.Dispose();
            t_current = null;
            SynchronizationContext.SetSynchronizationContext(null);
            Spawned.AbandonAll(fault);
            AbandonInbox(fault);
            IO.DmaBufferPool.ReleaseAll();
        }
    }
}

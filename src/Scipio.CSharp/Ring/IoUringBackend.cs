using Scipio.Core;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio.Ring;

/// <summary>The io_uring backend: a shard's three rings and what flows through them. Operations go where the core's
/// <see cref="Routing"/> says: O_DIRECT I/O on a device that polls to the poll ring, a latency-sensitive queue's
/// operations to the latency ring, the rest to the main ring. Each CQE goes to its operation, which decides what it
/// means. The preemption timer lives on the latency ring, so any latency event raises NeedPreempt; before parking
/// on the main ring the shard polls the latency ring's fd from it (POLL_ADD), and keeps an eventfd read armed there
/// so other threads can wake it. Shard thread only, except <see cref="Wake"/>.</summary>
internal sealed class IoUringBackend : IShardBackend
{
    private const uint PollIn = 0x1;

    public readonly RingLane Main, Latency, Poll;
    private readonly RingLane[] _lanes;
    private readonly OperationTable _operations;
    private readonly Dictionary<ulong, PollSupport> _devices = [];
    private long _pollFallbacks;

    private readonly nint _timespec; // the preemption timer's timespec; the kernel copies it at submission
    private bool _latencyPollArmed;

    private readonly FileDescriptor _eventFd;
    private readonly nint _eventBuffer; // 8 bytes the eventfd read fills
    private bool _wakeArmed;
    private int _parked, _wakePending;
    private long _wakeups, _msgRingWakeups;
    private readonly bool _msgRingSupported;

    /// <param name="ringEntries">SQ entries of the main and poll rings.</param>
    /// <param name="workerCpus">CPUs for the kernel's io-wq workers (buffered writes and other work io_uring cannot
    /// do without blocking).</param>
    /// <param name="operations">The shard's operation table, where CQEs find their operations.</param>
    public IoUringBackend(int ringEntries, int[] workerCpus, OperationTable operations)
    {
        _operations = operations;
        var made = new List<RingLane>();
        try
        {
            Main = Lane(RingKind.Main, RingRole.Main, (uint)ringEntries, made);
            Main.Ring.RequireOpcodes([Opcode.Nop, Opcode.Read, Opcode.Write, Opcode.OpenAt, Opcode.Close, Opcode.Fsync,
                Opcode.Statx, Opcode.Timeout, Opcode.TimeoutRemove, Opcode.AsyncCancel, Opcode.PollAdd]);
            Latency = Lane(RingKind.Latency, RingRole.Latency, (uint)Math.Max(32, ringEntries / 4), made);
            Poll = Lane(RingKind.Poll, RingRole.Poll, (uint)ringEntries, made);
            _lanes = [Main, Latency, Poll];
            // Every ring: routing may send an O_DIRECT operation to any of them (see FixedBuffers).
            FixedBuffers = new FixedBuffers([Main.Ring, Latency.Ring, Poll.Ring]);
            _msgRingSupported = Main.Ring.Supports(Opcode.MsgRing);
            foreach (var lane in made) lane.Ring.SetWorkerAffinity(workerCpus);
            int fd = Libc.EventFd(0, Libc.EfdCloexec);
            if (fd < 0) throw Errno.ToException(Libc.LastErrno, "eventfd for waking the shard");
            _eventFd = new FileDescriptor(fd);
            _timespec = Pinning.AllocZeroed(16);
            _eventBuffer = Pinning.AllocZeroed(8);
            PreemptSignal = Latency.Ring.CreatePreemptSignal();
        }
        catch
        {
            foreach (var lane in made) lane.Dispose();
            throw;
        }
    }

    private static RingLane Lane(RingKind kind, RingRole role, uint entries, List<RingLane> made)
    {
        var lane = new RingLane(kind, Ring.Create(role, entries));
        made.Add(lane);
        return lane;
    }

    public PreemptSignal PreemptSignal { get; }

    public bool IoInFlight => Main.UserOperations + Poll.UserOperations > 0;

    public bool MustPoll => Poll.Busy > 0;

    public bool CompletionsWaiting => Main.Ring.HasCompletions || Main.Ring.KernelHasPendingWork || Poll.Busy > 0;

    /// <summary>The main ring's provided buffers for socket receives, registered on first use; null when the
    /// kernel refused them (receives then go into the reader's memory).</summary>
    public ProvidedBufferRing? ReceiveBuffers
    {
        get
        {
            if (!_receiveBuffersTried)
            {
                _receiveBuffersTried = true;
                _receiveBuffers = ProvidedBufferRing.TryCreate(Main.Ring);
            }
            return _receiveBuffers;
        }
    }

    private ProvidedBufferRing? _receiveBuffers;
    private bool _receiveBuffersTried;

    public FixedBuffers FixedBuffers { get; }

    public BackendStats Stats() =>
        new(Main.Stats(), Latency.Stats(), Poll.Stats(), _wakeups, _msgRingWakeups, _pollFallbacks)
        { Fixed = (FixedBuffers.Registered, FixedBuffers.Failures, FixedBuffers.FixedIo) };

    // ---- operations ----

    public void Submit(IoOperation op)
    {
        if (op.CancellationRequested)
        {
            // Canceled before it reached a ring (the token's callback found nothing in flight to cancel).
            op.FinishUnsubmitted();
            return;
        }
        if (Diagnostics.ScipioMetrics.IoDuration.Enabled) op.SubmittedNs = Clock.NowNs;
        var device = op.DirectIo ? DeviceSupport(op.DeviceKey) : PollSupport.Unknown;
        LaneOf(Routing.routeSelecting(op.SelectsBuffer, op.DirectIo, device, op.Queue.Latency.ToCore())).Submit(op);
    }

    private RingLane LaneOf(RingKind kind) => kind.IsPoll ? Poll : kind.IsLatency ? Latency : Main;

    /// <summary>Whether the block device behind <paramref name="deviceKey"/> ((major &lt;&lt; 32) | minor, from statx)
    /// polls: sysfs's io_poll, read once per device; a poll-ring EOPNOTSUPP overrides it for good.</summary>
    public PollSupport DeviceSupport(ulong deviceKey)
    {
        if (_devices.TryGetValue(deviceKey, out var known)) return known;
        var support = Routing.ofSysfs(ReadIoPoll((uint)(deviceKey >> 32), (uint)deviceKey));
        _devices[deviceKey] = support;
        if (support.IsDoesNotPoll) _pollFallbacks++;
        return support;
    }

    private static string? ReadIoPoll(uint major, uint minor)
    {
        // A partition has no queue of its own: its disk's is one directory up.
        foreach (var path in new[] { $"/sys/dev/block/{major}:{minor}/queue/io_poll", $"/sys/dev/block/{major}:{minor}/../queue/io_poll" })
        {
            try { return File.ReadAllText(path); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return null;
    }

    /// <summary>Out of the backlog at once (O(1)), or by IORING_OP_ASYNC_CANCEL on its ring — once per use, and
    /// only while the kernel has it. Polled I/O cannot be canceled; it completes within microseconds anyway.</summary>
    public void Cancel(IoOperation op)
    {
        switch (op.State)
        {
            case OperationState.Backlogged:
                op.Lane!.RemoveFromBacklog(op);
                op.FinishUnsubmitted();
                break;
            case OperationState.Submitted when !op.Lane!.Kind.IsPoll && op.TryMarkCancelSent():
                var cancel = _operations.RentCancel();
                cancel.PrepareCancel(op.UserData);
                op.Lane.Submit(cancel);
                break;
        }
    }

    public void CancelDescriptor(int fd)
    {
        foreach (var lane in _lanes)
        {
            foreach (var op in lane.BackloggedWhere(o => o.Sqe.Fd == fd))
            {
                lane.RemoveFromBacklog(op);
                op.FinishUnsubmitted();
            }
            if (lane.UserOperations > 0 && !lane.Kind.IsPoll)
            {
                var cancel = _operations.RentCancel();
                cancel.PrepareCancelDescriptor(fd);
                lane.Submit(cancel);
            }
        }
    }

    // ---- submission and completion ----

    public void Flush()
    {
        Main.Flush();
        Latency.Flush();
        Poll.Flush();
    }

    /// <summary>Latency first (it is what preemption is about), then polled I/O, then the main ring — entering the
    /// kernel only where completions wait there.</summary>
    public bool Reap()
    {
        bool fired = Reap(Latency);
        if (Poll.Busy > 0)
        {
            Poll.Poll();
            Reap(Poll);
        }
        Main.Poll();
        return Reap(Main) | fired;
    }

    private bool Reap(RingLane lane)
    {
        bool any = false, fired = false;
        while (lane.TryRead(out var cqe))
        {
            any = true;
            fired |= Dispatch(lane, cqe);
        }
        if (any) lane.DrainBacklog();
        return fired;
    }

    /// <summary>Hands a CQE to its operation and accounts it; true for the preemption timer's.</summary>
    private bool Dispatch(RingLane lane, in IoUringCqe cqe)
    {
        ulong ud = cqe.UserData;
        if (UserData.IsInternal(ud)) return OnInternalEvent(lane, UserData.Event(ud));
        var op = _operations.Find(ud);
        if (op is null || op.State != OperationState.Submitted) return false;
        if (lane.Kind.IsPoll)
        {
            var (support, resend) = Routing.onPollCompletion(cqe.Res, DeviceSupport(op.DeviceKey));
            if (resend)
            {
                _devices[op.DeviceKey] = support;
                _pollFallbacks++;
                lane.Retire(op);
                op.State = OperationState.Idle;
                Submit(op); // routed again: the device no longer polls
                return false;
            }
        }
        switch (op.OnCqe(cqe))
        {
            case CqeAction.Resubmit:
                lane.Resubmit(op);
                break;
            case CqeAction.Complete:
                lane.Retire(op);
                op.Finish(lane.Kind);
                break;
        }
        return false;
    }

    private bool OnInternalEvent(RingLane lane, InternalEvent e)
    {
        if (e == InternalEvent.MsgWake)
        {
            // Posted by another shard's MSG_RING: never submitted here, so not ours to account.
            _wakeups++;
            _msgRingWakeups++;
            Volatile.Write(ref _wakePending, 0);
            return false;
        }
        lane.RetireInternal();
        switch (e)
        {
            case InternalEvent.Preempt: return true;
            case InternalEvent.LatencyPoll: _latencyPollArmed = false; break;
            case InternalEvent.Wake:
                _wakeArmed = false;
                _wakeups++;
                Volatile.Write(ref _wakePending, 0);
                break;
        }
        return false;
    }

    // ---- preemption timer ----

    /// <summary>A syscall only when the timer changes: the core decided Arm or Move.</summary>
    public bool SetPreemptTimer(PreemptTimerDecision decision)
    {
        if (decision.IsKeep) return true;
        ref var sqe = ref Latency.TryGetInternalSqe(out bool ok);
        if (!ok) return false;
        long after = decision.afterNs;
        var ts = KernelTimespec.FromNanoseconds(after);
        System.Runtime.InteropServices.MemoryMarshal.Write(Pinning.Span(_timespec, 16), in ts);
        if (decision.IsArm) SqeWriter.Timeout(ref sqe, (ulong)_timespec, 0, 0);
        else SqeWriter.TimeoutRemove(ref sqe, UserData.Of(InternalEvent.Preempt), (ulong)_timespec, IoUringConst.TimeoutUpdate);
        sqe.UserData = UserData.Of(decision.IsArm ? InternalEvent.Preempt : InternalEvent.PreemptUpdate);
        Latency.Flush(); // now: the timespec is reused, and the timer must start counting
        if (decision.IsMove) ConsumeMoveCompletions();
        return true;
    }

    /// <summary>A move (TIMEOUT_REMOVE with UPDATE) completes inline, and its CQE on the latency ring would raise
    /// NeedPreempt as if the timer had fired, cutting the run before the deadline the core chose: take it at once
    /// when it heads the CQ. (Behind another CQE it changes nothing: NeedPreempt is raised already.)</summary>
    private void ConsumeMoveCompletions()
    {
        ulong update = UserData.Of(InternalEvent.PreemptUpdate);
        while (Latency.Ring.TryPeekCompletion(out var cqe) && cqe.UserData == update)
        {
            Latency.TryRead(out _);
            Latency.RetireInternal();
        }
    }

    // ---- park and wake ----

    public void Park(long timeoutNs, Func<bool> hasWork)
    {
        Latency.Flush();
        Poll.Flush();
        ArmWake();
        ArmLatencyPoll();
        Volatile.Write(ref _parked, 1);
        Interlocked.MemoryBarrier();
        // The main ring's prepared SQEs go in with the wait: one io_uring_enter submits them and blocks.
        if (!hasWork() && !Latency.Ring.HasCompletions)
            Main.Wait(timeoutNs == Time.Never ? -1 : timeoutNs);
        else
            Main.Flush();
        Volatile.Write(ref _parked, 0);
    }

    private void ArmWake()
    {
        if (_wakeArmed) return;
        ref var sqe = ref Main.TryGetInternalSqe(out bool ok);
        if (!ok) return; // the kernel would not take SQEs: completions are waiting, which wake the shard anyway
        SqeWriter.Read(ref sqe, _eventFd.Fd, (ulong)_eventBuffer, 8, 0);
        sqe.UserData = UserData.Of(InternalEvent.Wake);
        _wakeArmed = true;
    }

    private void ArmLatencyPoll()
    {
        if (_latencyPollArmed) return;
        ref var sqe = ref Main.TryGetInternalSqe(out bool ok);
        if (!ok) return;
        SqeWriter.PollAdd(ref sqe, Latency.Ring.Fd, PollIn);
        sqe.UserData = UserData.Of(InternalEvent.LatencyPoll);
        _latencyPollArmed = true;
    }

    /// <summary>How another shard wakes this one: IORING_OP_MSG_RING from its own main ring (one io_uring_enter
    /// that posts a CQE here), or a write to this shard's eventfd, which every thread that owns no ring uses.
    /// Measured with <c>bench -- latency</c> (cross-shard round trip, CPUs 0 and 1, both parked between
    /// messages): MSG_RING 32 µs p50, eventfd 45 µs, on a quiet machine, three runs. So MSG_RING is the default;
    /// the switch stays for the benchmark.</summary>
    internal static bool WakeShardsByMsgRing { get; set; } = true;

    public void Wake()
    {
        if (Volatile.Read(ref _parked) == 0 || Interlocked.Exchange(ref _wakePending, 1) != 0) return;
        if (WakeShardsByMsgRing && ShardExecutor.Current?.Backend is IoUringBackend sender && sender != this && sender._msgRingSupported)
            sender.SendWake(this);
        else
            WriteEventFd();
    }

    /// <summary>Adds one to the eventfd, unless it is closed: the reference held across the write keeps a closing
    /// shard from closing it (and the number from being reused by another file) in between.</summary>
    private void WriteEventFd()
    {
        bool added = false;
        try
        {
            _eventFd.DangerousAddRef(ref added);
            Libc.WriteEventFd(_eventFd.Fd, 1);
        }
        catch (ObjectDisposedException)
        {
            // The shard has stopped: there is nobody to wake.
        }
        finally
        {
            if (added) _eventFd.DangerousRelease();
        }
    }

    /// <summary>Posts a wake-up CQE to <paramref name="target"/>'s main ring, now (on this, the sender's, thread).</summary>
    private void SendWake(IoUringBackend target)
    {
        ref var sqe = ref Main.TryGetInternalSqe(out bool ok);
        if (!ok)
        {
            target.WriteEventFd(); // no room on this ring: the target's eventfd does it
            return;
        }
        SqeWriter.MsgRing(ref sqe, target.Main.Ring.Fd, UserData.Of(InternalEvent.MsgWake));
        sqe.UserData = UserData.Of(InternalEvent.MsgSent);
        Main.Flush();
    }

    public void Trim() => _operations.Trim();

    // ---- shutdown ----

    /// <summary>Cancels everything in flight and reaps until the kernel has returned every operation, so no buffer
    /// is written after the shard is gone. Bounded: gives up after a second.</summary>
    public void Drain()
    {
        foreach (var lane in _lanes)
        {
            lane.ClearBacklog();
            if (lane.Busy > 0 && !lane.Kind.IsPoll)
            {
                var cancel = _operations.RentCancel();
                cancel.PrepareCancelAll();
                lane.Submit(cancel);
            }
            lane.Flush();
        }
        long giveUp = Clock.NowNs + 1_000_000_000;
        while (_lanes.Any(l => l.Book.InFlight > 0) && Clock.NowNs < giveUp)
        {
            foreach (var lane in _lanes)
            {
                if (lane.Book.InFlight == 0) continue;
                if (lane.Kind.IsPoll) lane.Poll();
                else lane.Wait(10_000_000);
                while (lane.TryRead(out var cqe))
                {
                    if (UserData.IsInternal(cqe.UserData))
                    {
                        if (UserData.Event(cqe.UserData) != InternalEvent.MsgWake) lane.RetireInternal();
                    }
                    else if (_operations.Find(cqe.UserData) is { State: OperationState.Submitted } op
                             && (cqe.Flags & IoUringConst.CqeFMore) == 0)
                    {
                        lane.Retire(op);
                        op.State = OperationState.Done;
                    }
                }
            }
        }
        foreach (var op in _operations.All()) op.ReleaseResources();
    }

    public void Dispose()
    {
        _receiveBuffers?.Dispose(); // the rings are drained: no receive still writes into its buffers
        foreach (var lane in _lanes) lane.Dispose();
        FixedBuffers.Dispose(); // after the rings: their tables went with them
        _eventFd.Dispose();
        _operations.FreeAll();
        Pinning.Free(_timespec);
        Pinning.Free(_eventBuffer);
    }
}

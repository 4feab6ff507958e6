using Scipio.Core;
using Scipio.Interop;
using Scipio.Ring;

namespace Scipio.Runtime;

/// <summary>A shard's three rings and what flows through them. Operations go where the core's
/// <see cref="Routing"/> says: O_DIRECT I/O on a device that polls to the poll ring, a latency-sensitive queue's
/// operations to the latency ring, the rest to the main ring. Completions come back to their operations. The
/// preemption timer lives on the latency ring, so any latency event makes NeedPreempt true; before parking on the
/// main ring the shard polls the latency ring's fd from it (POLL_ADD), and keeps an eventfd read armed there so
/// other threads can wake it. Shard thread only, except <see cref="Wake"/>.</summary>
internal sealed class ShardReactor : IDisposable
{
    // user_data of internal events: bit 63 set, so they never collide with an operation's slot|version.
    internal const ulong TagPreempt = 1ul << 63 | 1, TagPreemptUpdate = 1ul << 63 | 2, TagWake = 1ul << 63 | 3,
        TagCancel = 1ul << 63 | 4, TagLatencyPoll = 1ul << 63 | 5, TagMsgWake = 1ul << 63 | 6, TagMsgSent = 1ul << 63 | 7;
    private const uint AsyncCancelAny = 1u << 2; // IORING_ASYNC_CANCEL_ANY (5.19)
    private const uint PollIn = 0x1;

    public readonly RingChannel Main, Latency, Poll;
    private readonly List<IoOperation> _ops = [];
    private readonly Stack<IoOperation> _free = new();
    private readonly Dictionary<ulong, PollSupport> _devices = [];
    private long _pollFallbacks;

    private long _preemptArmedUntil = Time.Never;
    private readonly nint _timespec; // the preemption timer's timespec; the kernel copies it at submission
    private bool _latencyPollArmed;

    private readonly int _eventFd;
    private readonly nint _eventBuffer; // 8 bytes the eventfd read fills
    private bool _wakeArmed;
    private int _parked, _wakePending;
    private long _wakeups;
    private readonly bool _msgRingSupported;

    /// <param name="ringEntries">SQ entries of the main and poll rings.</param>
    /// <param name="workerCpus">CPUs for the kernel's io-wq workers (buffered writes and other work io_uring cannot
    /// do without blocking): the process's CPUs other than the shard's own, so that they do not compete with it.</param>
    public ShardReactor(int ringEntries, int[] workerCpus)
    {
        var made = new List<IDisposable>();
        try
        {
            Main = Channel(RingKind.Main, RingRole.Main, (uint)ringEntries, made);
            Main.Ring.RequireOpcodes([Opcode.Nop, Opcode.Read, Opcode.Write, Opcode.OpenAt, Opcode.Close, Opcode.Fsync,
                Opcode.Statx, Opcode.Timeout, Opcode.TimeoutRemove, Opcode.AsyncCancel, Opcode.PollAdd]);
            Latency = Channel(RingKind.Latency, RingRole.Latency, (uint)Math.Max(32, ringEntries / 4), made);
            Poll = Channel(RingKind.Poll, RingRole.Poll, (uint)ringEntries, made);
            _msgRingSupported = Main.Ring.Supports(Opcode.MsgRing);
            foreach (var c in made) ((RingChannel)c).Ring.SetWorkerAffinity(workerCpus);
            _eventFd = Libc.EventFd(0, Libc.EfdCloexec);
            if (_eventFd < 0) throw Errno.ToException(Libc.LastErrno, "eventfd for waking the shard");
            _timespec = Pinning.AllocZeroed(16);
            _eventBuffer = Pinning.AllocZeroed(8);
        }
        catch
        {
            foreach (var d in made) d.Dispose();
            throw;
        }
    }

    private static RingChannel Channel(RingKind kind, RingRole role, uint entries, List<IDisposable> made)
    {
        var channel = new RingChannel(kind, Ring.Ring.Create(role, entries));
        made.Add(channel);
        return channel;
    }

    /// <summary>True while operations are in flight on the main or poll ring: a completion there could make a queue
    /// runnable, so the running queue must be preempted now and then to let the loop reap it.</summary>
    public bool OperationsInFlight => Main.UserOperations + Poll.UserOperations > 0;

    /// <summary>Completions of the main or poll ring may be waiting to be reaped (memory reads, no syscall).</summary>
    public bool CompletionsWaiting => Main.Ring.HasCompletions || Main.Ring.KernelHasPendingWork || Poll.Busy > 0;

    public long Wakeups => _wakeups;
    public long PollFallbacks => _pollFallbacks;

    // ---- operations ----

    public IoOperation RentOperation(ShardExecutor owner)
    {
        if (_free.TryPop(out var op)) return op;
        op = new IoOperation(owner, _ops.Count);
        _ops.Add(op);
        return op;
    }

    public void ReturnOperation(IoOperation op) => _free.Push(op);

    /// <summary>Puts an operation on the ring the core routes it to.</summary>
    public void Submit(IoOperation op)
    {
        if (op.CancellationRequested)
        {
            // Canceled before it reached a ring (the token's callback found nothing in flight to cancel).
            op.Complete(-Errno.ECANCELED);
            return;
        }
        var device = op.DirectIo ? DeviceSupport(op.DeviceKey) : PollSupport.Unknown;
        var channel = ChannelOf(Routing.route(op.DirectIo, device, op.Queue.Latency.ToCore()));
        channel.Submit(op);
    }

    private RingChannel ChannelOf(RingKind kind) => kind.IsPoll ? Poll : kind.IsLatency ? Latency : Main;

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

    /// <summary>Cancels an operation (shard thread): out of the backlog at once, or by IORING_OP_ASYNC_CANCEL on its
    /// ring — the operation then completes with its own CQE, so its buffer is never touched afterwards. Polled I/O
    /// cannot be canceled; it completes within microseconds anyway.</summary>
    public void Cancel(IoOperation op)
    {
        if (!op.InFlight || op.Channel is not { } channel) return;
        if (channel.RemoveFromBacklog(op))
        {
            op.InFlight = false;
            op.Complete(-Errno.ECANCELED);
            return;
        }
        if (!channel.Kind.IsPoll) channel.SubmitCancel(op.UserData, 0);
    }

    // ---- submission and completion ----

    /// <summary>Hands every ring's prepared SQEs to the kernel: at most one syscall per ring with work.</summary>
    public void Flush()
    {
        Main.Flush();
        Latency.Flush();
        Poll.Flush();
    }

    /// <summary>Reaps all three rings: latency first (it is what preemption is about), then polled I/O, then the
    /// main ring — entering the kernel only where completions wait there.</summary>
    public void Reap()
    {
        Reap(Latency);
        if (Poll.Busy > 0)
        {
            Poll.Poll();
            Reap(Poll);
        }
        Main.Poll();
        Reap(Main);
    }

    private void Reap(RingChannel channel)
    {
        bool any = false;
        while (channel.TryRead(out var cqe))
        {
            any = true;
            Dispatch(channel, cqe);
        }
        if (any) channel.DrainBacklog();
    }

    private void Dispatch(RingChannel channel, in IoUringCqe cqe)
    {
        ulong ud = cqe.UserData;
        if ((ud >> 63) != 0)
        {
            switch (ud)
            {
                case TagPreempt: _preemptArmedUntil = Time.Never; break;
                case TagLatencyPoll: _latencyPollArmed = false; break;
                case TagWake:
                    _wakeArmed = false;
                    _wakeups++;
                    Volatile.Write(ref _wakePending, 0);
                    break;
                case TagMsgWake:
                    _wakeups++;
                    Volatile.Write(ref _wakePending, 0);
                    break;
            }
            return; // TagCancel, TagPreemptUpdate: what they act on reports through its own CQE
        }
        var op = _ops[(int)(uint)ud];
        if ((ushort)op.Version != (ushort)(ud >> 32) || !op.InFlight) return;
        if (channel.Kind.IsPoll)
        {
            var (support, resend) = Routing.onPollCompletion(cqe.Res, DeviceSupport(op.DeviceKey));
            if (resend)
            {
                _devices[op.DeviceKey] = support;
                _pollFallbacks++;
                Submit(op); // routed again: the device no longer polls
                return;
            }
        }
        if (!op.OnCompletion(cqe.Res))
        {
            channel.Submit(op); // the rest of a short write
            return;
        }
    }

    // ---- preemption timer ----

    /// <summary>Makes sure the preemption timer fires by <paramref name="deadlineNs"/> (Time.Never: none is
    /// needed): arms it, moves it earlier, or leaves it — the core decides. A syscall only when it changes.</summary>
    public void PreparePreempt(long deadlineNs, long nowNs)
    {
        var decision = Core.Reactor.preemptTimer(_preemptArmedUntil, deadlineNs, nowNs);
        if (decision.IsKeep) return;
        ref var sqe = ref Latency.TryGetSqe(out bool ok);
        if (!ok) return; // the latency ring is full of completions to reap: NeedPreempt is already true
        var ts = KernelTimespec.FromNanoseconds(decision.afterNs);
        System.Runtime.InteropServices.MemoryMarshal.Write(Pinning.Span(_timespec, 16), in ts);
        if (decision.IsArm) SqeWriter.Timeout(ref sqe, (ulong)_timespec, 0, TagPreempt);
        else SqeWriter.TimeoutRemove(ref sqe, TagPreempt, (ulong)_timespec, IoUringConst.TimeoutUpdate, TagPreemptUpdate);
        Latency.Flush(); // now: the timespec is reused, and the timer must start counting
        _preemptArmedUntil = deadlineNs;
    }

    // ---- park and wake ----

    /// <summary>Blocks in the kernel on the main ring until a completion arrives there, a latency event (its fd is
    /// polled from the main ring), a wake from another thread, or <paramref name="timeoutNs"/> (Time.Never: none).
    /// <paramref name="hasWork"/> is checked after announcing the park, so a wake racing with it is never lost.</summary>
    public void Park(long timeoutNs, Func<bool> hasWork)
    {
        ArmWake();
        ArmLatencyPoll();
        Volatile.Write(ref _parked, 1);
        Interlocked.MemoryBarrier();
        if (!hasWork() && !Latency.Ring.HasCompletions)
            Main.Wait(timeoutNs == Time.Never ? -1 : timeoutNs);
        Volatile.Write(ref _parked, 0);
    }

    private void ArmWake()
    {
        if (_wakeArmed) return;
        ref var sqe = ref Main.TryGetSqe(out bool ok);
        if (!ok) return; // the CQ is full of operations in flight: their completions will wake the shard anyway
        SqeWriter.Read(ref sqe, _eventFd, (ulong)_eventBuffer, 8, 0, TagWake);
        _wakeArmed = true;
    }

    private void ArmLatencyPoll()
    {
        if (_latencyPollArmed) return;
        ref var sqe = ref Main.TryGetSqe(out bool ok);
        if (!ok) return;
        SqeWriter.PollAdd(ref sqe, Latency.Ring.Fd, PollIn, TagLatencyPoll);
        _latencyPollArmed = true;
    }

    /// <summary>How another shard wakes this one: IORING_OP_MSG_RING from its own main ring (one io_uring_enter
    /// that posts a CQE here), or a write to this shard's eventfd, which every thread that owns no ring uses.
    /// Measured with <c>bench -- latency</c> (cross-shard round trip, CPUs 0 and 1, both parked between
    /// messages): MSG_RING 32 µs p50, eventfd 45 µs, on a quiet machine, three runs. So MSG_RING is the default;
    /// the switch stays for the benchmark.</summary>
    internal static bool WakeShardsByMsgRing { get; set; } = true;

    /// <summary>Wakes the shard if it is parked. Any thread.</summary>
    public void Wake()
    {
        if (Volatile.Read(ref _parked) == 0 || Interlocked.Exchange(ref _wakePending, 1) != 0) return;
        if (WakeShardsByMsgRing && ShardExecutor.Current is { } sender && sender.Reactor != this && sender.Reactor._msgRingSupported)
            sender.Reactor.SendWake(this);
        else
            Libc.WriteEventFd(_eventFd, 1);
    }

    /// <summary>Posts a wake-up CQE to <paramref name="target"/>'s main ring, now (on this, the sender's, thread).</summary>
    private void SendWake(ShardReactor target)
    {
        ref var sqe = ref Main.TryGetSqe(out bool ok);
        if (!ok)
        {
            Libc.WriteEventFd(target._eventFd, 1); // no room on this ring: the target's eventfd does it
            return;
        }
        SqeWriter.MsgRing(ref sqe, target.Main.Ring.Fd, TagMsgWake, TagMsgSent);
        Main.Flush();
    }

    // ---- shutdown ----

    /// <summary>Cancels everything in flight and reaps until the kernel has returned every operation, so no buffer
    /// is written after the shard is gone. Bounded: gives up after a second.</summary>
    public void Drain()
    {
        RingChannel[] channels = [Main, Latency, Poll];
        foreach (var c in channels)
        {
            c.ClearBacklog();
            if (c.Busy > 0 && !c.Kind.IsPoll) c.SubmitCancel(0, AsyncCancelAny);
            c.Flush();
        }
        long giveUp = Clock.NowNs + 1_000_000_000;
        while (channels.Any(c => c.Book.InFlight > 0) && Clock.NowNs < giveUp)
        {
            foreach (var c in channels)
            {
                if (c.Book.InFlight == 0) continue;
                if (c.Kind.IsPoll) c.Poll();
                else c.Wait(10_000_000);
                while (c.TryRead(out var cqe))
                    if ((cqe.UserData >> 63) == 0 && _ops[(int)(uint)cqe.UserData] is { InFlight: true } op) op.InFlight = false;
            }
        }
        foreach (var op in _ops) op.ReleaseBuffers();
    }

    public void Dispose()
    {
        Main.Dispose();
        Latency.Dispose();
        Poll.Dispose();
        Libc.Close(_eventFd);
        Pinning.Free(_timespec);
        Pinning.Free(_eventBuffer);
    }
}

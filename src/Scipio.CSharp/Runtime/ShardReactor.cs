using Scipio.Core;
using Scipio.Interop;
using Scipio.Ring;
using RingBooks = Scipio.Core.RingBookModule;

namespace Scipio.Runtime;

/// <summary>A shard's rings and what flows through them: operations in (admitted by the core's RingBook, held in a
/// backlog when the CQ could overflow), completions out (dispatched to their operations), the preemption timer on
/// the latency ring, and the eventfd that lets other threads wake a parked shard. Shard thread only, except
/// <see cref="Wake"/>.</summary>
internal sealed class ShardReactor : IDisposable
{
    // user_data of internal events: bit 63 set, so they never collide with an operation's slot|version.
    private const ulong TagPreempt = 1ul << 63 | 1, TagPreemptUpdate = 1ul << 63 | 2, TagWake = 1ul << 63 | 3,
        TagCancel = 1ul << 63 | 4;
    private const uint AsyncCancelAny = 1u << 2; // IORING_ASYNC_CANCEL_ANY (5.19)

    public readonly Ring.Ring Main;
    public readonly Ring.Ring Latency;
    private RingBook _book;
    private readonly List<IoOperation> _ops = [];
    private readonly Stack<IoOperation> _free = new();
    private readonly Queue<IoOperation> _backlog = new();
    private readonly Queue<ulong> _pendingCancels = new();
    private long _backlogged;

    private long _preemptArmedUntil = Time.Never;
    private readonly nint _timespec; // the preemption timer's timespec; the kernel copies it at submission
    private long _latencySubmitted, _latencyCompleted;

    private readonly int _eventFd;
    private readonly nint _eventBuffer; // 8 bytes the eventfd read fills
    private bool _wakeArmed;
    private int _parked, _wakePending;

    public ShardReactor(int ringEntries)
    {
        Main = Ring.Ring.Create(RingRole.Main, (uint)ringEntries);
        try
        {
            Main.RequireOpcodes([Opcode.Nop, Opcode.Read, Opcode.Write, Opcode.OpenAt, Opcode.Close, Opcode.Fsync,
                Opcode.Statx, Opcode.Timeout, Opcode.TimeoutRemove, Opcode.AsyncCancel]);
            Latency = Ring.Ring.Create(RingRole.Latency, 8);
            _book = RingBooks.create((int)Main.SqEntries, (int)Main.CqEntries);
            _eventFd = Libc.EventFd(0, Libc.EfdCloexec);
            if (_eventFd < 0) throw Errno.ToException(Libc.LastErrno, "eventfd for waking the shard");
            _timespec = Pinning.AllocZeroed(16);
            _eventBuffer = Pinning.AllocZeroed(8);
        }
        catch
        {
            Latency?.Dispose();
            Main.Dispose();
            throw;
        }
    }

    /// <summary>True when the latency ring has a completion: the preemption timer fired (or, later, latency I/O
    /// completed). A memory compare, no syscall.</summary>
    public bool LatencyEventPending => Latency.HasCompletions;

    public int InFlight => _book.InFlight + _book.Prepared;

    public long Backlogged => _backlogged;

    public RingBook Book => _book;

    public (long Submitted, long Completed) LatencyCounts => (_latencySubmitted, _latencyCompleted);

    // ---- operations ----

    public IoOperation RentOperation(ShardExecutor owner)
    {
        if (_free.TryPop(out var op)) return op;
        op = new IoOperation(owner, _ops.Count);
        _ops.Add(op);
        return op;
    }

    public void ReturnOperation(IoOperation op) => _free.Push(op);

    /// <summary>Puts an operation on the main ring: written now, after flushing a full SQ, or held in the
    /// backlog until completions make room.</summary>
    public void Submit(IoOperation op)
    {
        op.InFlight = true;
        if (_backlog.Count == 0)
        {
            ref var sqe = ref TryGetSqe(out bool ok);
            if (ok)
            {
                op.WriteSqe(ref sqe);
                return;
            }
        }
        _backlog.Enqueue(op);
        _backlogged++;
    }

    /// <summary>An SQE of the main ring if the core's RingBook admits one more operation (flushing a full SQ
    /// first), counted as prepared; otherwise ok = false and the caller keeps the operation back.</summary>
    private ref IoUringSqe TryGetSqe(out bool ok)
    {
        var admission = RingBooks.admit(_book);
        if (admission.IsSubmitFirst)
        {
            Flush();
            admission = RingBooks.admit(_book);
        }
        if (!admission.IsPrepare)
        {
            ok = false;
            return ref System.Runtime.CompilerServices.Unsafe.NullRef<IoUringSqe>();
        }
        ref var sqe = ref Main.TryGetSqe(out ok);
        if (ok) _book = RingBooks.prepared(_book);
        return ref sqe;
    }

    /// <summary>Hands prepared SQEs to the kernel (one syscall), if there are any.</summary>
    public void Flush()
    {
        if (Main.Prepared == 0) return;
        Account(Main.Enter(0, -1));
    }

    private void Account(int entered)
    {
        if (entered > 0) _book = RingBooks.submitted(entered, _book);
        else if (entered < 0 && entered is not (-Errno.EINTR) and not (-Errno.EAGAIN) and not (-Errno.EBUSY) and not (-Errno.ETIME))
            ThrowHelper.ThrowErrno(-entered, "io_uring_enter on the main ring");
    }

    /// <summary>Cancels an operation (shard thread): out of the backlog at once, or by IORING_OP_ASYNC_CANCEL —
    /// the operation then completes when its own CQE arrives, so its buffer is never touched afterwards.</summary>
    public void Cancel(IoOperation op)
    {
        if (!op.InFlight) return;
        if (_backlog.Contains(op))
        {
            int n = _backlog.Count;
            for (int i = 0; i < n; i++)
            {
                var queued = _backlog.Dequeue();
                if (!ReferenceEquals(queued, op)) _backlog.Enqueue(queued);
            }
            op.InFlight = false;
            op.Complete(-Errno.ECANCELED);
            return;
        }
        SubmitCancel(op.UserData, 0);
    }

    private void SubmitCancel(ulong target, uint flags)
    {
        if (_pendingCancels.Count > 0 || !TryPrepareCancel(target, flags)) _pendingCancels.Enqueue(target);
    }

    private bool TryPrepareCancel(ulong target, uint flags)
    {
        ref var sqe = ref TryGetSqe(out bool ok);
        if (!ok) return false;
        SqeWriter.AsyncCancel(ref sqe, target, TagCancel);
        sqe.OpFlags = flags; // cancel_flags
        return true;
    }

    // ---- completions ----

    /// <summary>Reaps the main ring: enters the kernel first only if it holds completions back (DEFER_TASKRUN),
    /// dispatches each CQE, then moves backlogged operations into the room that freed.</summary>
    public int ReapMain()
    {
        if (Main.KernelHasPendingWork) Account(Main.Enter(0, -1));
        int n = 0;
        while (Main.TryReadCompletion(out var cqe))
        {
            n++;
            _book = RingBooks.completed(_book);
            Dispatch(cqe);
        }
        if (n > 0) DrainBacklog();
        return n;
    }

    private void Dispatch(in IoUringCqe cqe)
    {
        ulong ud = cqe.UserData;
        if ((ud >> 63) != 0)
        {
            if (ud == TagWake)
            {
                _wakeArmed = false;
                Volatile.Write(ref _wakePending, 0);
            }
            return; // TagCancel: the canceled operation reports through its own CQE
        }
        var op = _ops[(int)(uint)ud];
        if ((ushort)op.Version != (ushort)(ud >> 32) || !op.InFlight) return;
        op.InFlight = false;
        if (!op.OnCompletion(cqe.Res)) Submit(op); // the rest of a short write
    }

    private void DrainBacklog()
    {
        while (_pendingCancels.Count > 0 && TryPrepareCancel(_pendingCancels.Peek(), 0)) _pendingCancels.Dequeue();
        while (_backlog.Count > 0)
        {
            ref var sqe = ref TryGetSqe(out bool ok);
            if (!ok) break;
            _backlog.Dequeue().WriteSqe(ref sqe);
        }
    }

    /// <summary>Reaps the latency ring; returns true if the preemption timer fired.</summary>
    public bool ReapLatency()
    {
        bool fired = false;
        while (Latency.TryReadCompletion(out var cqe))
        {
            _latencyCompleted++;
            if (cqe.UserData == TagPreempt)
            {
                _preemptArmedUntil = Time.Never;
                fired = true;
            }
        }
        return fired;
    }

    // ---- preemption timer ----

    /// <summary>Makes sure the preemption timer fires by <paramref name="deadlineNs"/>: arms it, moves it earlier,
    /// or leaves it (the core decides). Costs a syscall only when it changes.</summary>
    public void PreparePreempt(long deadlineNs, long nowNs)
    {
        var decision = Reactor.preemptTimer(_preemptArmedUntil, deadlineNs, nowNs);
        if (decision.IsKeep) return;
        long after = decision.afterNs;
        var ts = KernelTimespec.FromNanoseconds(after);
        Pinning.Span(_timespec, 16).Clear();
        System.Runtime.InteropServices.MemoryMarshal.Write(Pinning.Span(_timespec, 16), in ts);
        ref var sqe = ref Latency.TryGetSqe(out bool ok);
        if (!ok) return; // cannot happen with one timer and one update in flight; if it did, the next turn retries
        if (decision.IsArm) SqeWriter.Timeout(ref sqe, (ulong)_timespec, 0, TagPreempt);
        else SqeWriter.TimeoutRemove(ref sqe, TagPreempt, (ulong)_timespec, IoUringConst.TimeoutUpdate, TagPreemptUpdate);
        int r = Latency.Enter(0, -1);
        if (r > 0) _latencySubmitted += r;
        _preemptArmedUntil = deadlineNs;
    }

    // ---- park and wake ----

    /// <summary>Blocks in the kernel until a completion arrives, another thread wakes the shard, or
    /// <paramref name="timeoutNs"/> passes (Time.Never: no timeout). <paramref name="hasWork"/> is re-checked after
    /// announcing the park, so a wake-up racing with it is never lost.</summary>
    public void Park(long timeoutNs, Func<bool> hasWork)
    {
        ArmWake();
        Volatile.Write(ref _parked, 1);
        Interlocked.MemoryBarrier();
        if (!hasWork())
            Account(Main.Enter(1, timeoutNs == Time.Never ? -1 : timeoutNs));
        Volatile.Write(ref _parked, 0);
    }

    private void ArmWake()
    {
        if (_wakeArmed) return;
        ref var sqe = ref TryGetSqe(out bool ok);
        if (!ok) return; // the CQ is full of operations in flight: their completions will wake the shard anyway
        SqeWriter.Read(ref sqe, _eventFd, (ulong)_eventBuffer, 8, 0, TagWake);
        _wakeArmed = true;
    }

    /// <summary>Wakes the shard if it is parked. Any thread.</summary>
    public void Wake()
    {
        if (Volatile.Read(ref _parked) == 0 || Interlocked.Exchange(ref _wakePending, 1) != 0) return;
        Libc.WriteEventFd(_eventFd, 1);
    }

    // ---- shutdown ----

    /// <summary>Cancels everything in flight and reaps until the kernel has returned every operation, so no buffer
    /// is written after the shard is gone. Bounded: gives up after a second.</summary>
    public void Drain()
    {
        _backlog.Clear();
        _pendingCancels.Clear();
        if (_book.InFlight + _book.Prepared == 0) return;
        SubmitCancel(0, AsyncCancelAny);
        Flush();
        long giveUp = Clock.NowNs + 1_000_000_000;
        while (_book.InFlight > 0 && Clock.NowNs < giveUp)
        {
            Account(Main.Enter(1, 10_000_000));
            while (Main.TryReadCompletion(out var cqe))
            {
                _book = RingBooks.completed(_book);
                ulong ud = cqe.UserData;
                if ((ud >> 63) == 0 && _ops[(int)(uint)ud] is { InFlight: true } op) op.InFlight = false;
            }
        }
        foreach (var op in _ops) op.ReleaseBuffers();
    }

    public void Dispose()
    {
        Main.Dispose();
        Latency.Dispose();
        Libc.Close(_eventFd);
        Pinning.Free(_timespec);
        Pinning.Free(_eventBuffer);
    }
}

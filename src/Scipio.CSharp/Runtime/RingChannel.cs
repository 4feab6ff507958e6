using Scipio.Core;
using Scipio.Interop;
using Scipio.Ring;
using RingBooks = Scipio.Core.RingBookModule;

namespace Scipio.Runtime;

/// <summary>One of a shard's rings with its bookkeeping: the core's <see cref="RingBook"/> admits each operation
/// (so the CQ can never overflow), operations it does not admit wait in a backlog, and the counts feed
/// <see cref="RingStats"/>. Shard thread only.</summary>
internal sealed class RingChannel(RingKind kind, Ring.Ring ring) : IDisposable
{
    private RingBook _book = RingBooks.create((int)ring.SqEntries, (int)ring.CqEntries);
    private readonly Queue<IoOperation> _backlog = new();
    private readonly Queue<(ulong Target, uint Flags)> _pendingCancels = new();
    private long _backlogged;

    public RingKind Kind { get; } = kind;
    public Ring.Ring Ring { get; } = ring;
    public RingBook Book => _book;

    /// <summary>Operations prepared or in flight.</summary>
    public int Busy => _book.InFlight + _book.Prepared;

    /// <summary>User operations submitted here and not completed: in the backlog, prepared or in flight.</summary>
    public int UserOperations => _book.UserOps + _backlog.Count;

    public RingStats Stats() => new(_book.Submitted, _book.Completed, Busy, _backlogged, Ring.Flags.ToString());

    /// <summary>An SQE if the book admits one more operation — a user operation, or one of the shard's own, which
    /// has room kept for it — flushing a full SQ first, counted as prepared; otherwise ok = false and the caller
    /// keeps the operation back.</summary>
    public ref IoUringSqe TryGetSqe(out bool ok, bool user = false)
    {
        Admission Admit() => user ? RingBooks.admit(_book) : RingBooks.admitInternal(_book);
        var admission = Admit();
        if (admission.IsSubmitFirst)
        {
            Flush();
            admission = Admit();
        }
        if (!admission.IsPrepare)
        {
            ok = false;
            return ref System.Runtime.CompilerServices.Unsafe.NullRef<IoUringSqe>();
        }
        ref var sqe = ref Ring.TryGetSqe(out ok);
        if (ok) _book = RingBooks.prepared(user, _book);
        return ref sqe;
    }

    /// <summary>Writes the operation's SQE now, or keeps it in the backlog (behind anything already there).</summary>
    public void Submit(IoOperation op)
    {
        op.Channel = this;
        op.InFlight = true;
        if (_backlog.Count == 0)
        {
            ref var sqe = ref TryGetSqe(out bool ok, user: true);
            if (ok)
            {
                op.WriteSqe(ref sqe);
                return;
            }
        }
        _backlog.Enqueue(op);
        _backlogged++;
    }

    /// <summary>Takes an operation out of the backlog; false if it is not there (its SQE was written).</summary>
    public bool RemoveFromBacklog(IoOperation op)
    {
        if (!_backlog.Contains(op)) return false;
        int n = _backlog.Count;
        for (int i = 0; i < n; i++)
        {
            var queued = _backlog.Dequeue();
            if (!ReferenceEquals(queued, op)) _backlog.Enqueue(queued);
        }
        return true;
    }

    /// <summary>IORING_OP_ASYNC_CANCEL for <paramref name="target"/> on this ring, now or once there is room.</summary>
    public void SubmitCancel(ulong target, uint flags)
    {
        if (_pendingCancels.Count > 0 || !TryPrepareCancel(target, flags)) _pendingCancels.Enqueue((target, flags));
    }

    private bool TryPrepareCancel(ulong target, uint flags)
    {
        ref var sqe = ref TryGetSqe(out bool ok);
        if (!ok) return false;
        SqeWriter.AsyncCancel(ref sqe, target, ShardReactor.TagCancel);
        sqe.OpFlags = flags; // cancel_flags
        return true;
    }

    /// <summary>Hands prepared SQEs to the kernel (one syscall), if there are any.</summary>
    public void Flush()
    {
        if (Ring.Prepared > 0) Account(Ring.Enter(0, -1));
    }

    /// <summary>Enters the kernel if completions wait there: deferred task work (DEFER_TASKRUN), an overflow, or
    /// polled I/O in flight (IOPOLL completions appear only when the ring is polled).</summary>
    public void Poll()
    {
        if (Ring.KernelHasPendingWork || (Kind.IsPoll && _book.InFlight > 0) || Ring.Prepared > 0)
            Account(Ring.Enter(0, -1));
    }

    /// <summary>Blocks until a completion arrives or the timeout passes (negative: none).</summary>
    public void Wait(long timeoutNs) => Account(Ring.Enter(1, timeoutNs));

    /// <summary>Reads one completion and counts it (a user operation's, or — bit 63 of its user_data set — one of the
    /// shard's own).</summary>
    public bool TryRead(out IoUringCqe cqe)
    {
        if (!Ring.TryReadCompletion(out cqe)) return false;
        // A wake-up another shard posted with MSG_RING was never submitted here: not ours to count.
        if (cqe.UserData != ShardReactor.TagMsgWake) _book = RingBooks.completed((cqe.UserData >> 63) == 0, _book);
        return true;
    }

    /// <summary>Moves pending cancels and backlogged operations into the room completions made.</summary>
    public void DrainBacklog()
    {
        while (_pendingCancels.Count > 0 && TryPrepareCancel(_pendingCancels.Peek().Target, _pendingCancels.Peek().Flags))
            _pendingCancels.Dequeue();
        while (_backlog.Count > 0)
        {
            ref var sqe = ref TryGetSqe(out bool ok, user: true);
            if (!ok) break;
            _backlog.Dequeue().WriteSqe(ref sqe);
        }
    }

    /// <summary>Forgets the backlog (shutdown: those operations never reached the kernel).</summary>
    public void ClearBacklog()
    {
        _backlog.Clear();
        _pendingCancels.Clear();
    }

    private void Account(int entered)
    {
        if (entered > 0) _book = RingBooks.submitted(entered, _book);
        else if (entered < 0 && entered is not (-Errno.EINTR) and not (-Errno.EAGAIN) and not (-Errno.EBUSY) and not (-Errno.ETIME))
            ThrowHelper.ThrowErrno(-entered, $"io_uring_enter on the {Kind} ring");
    }

    public void Dispose() => Ring.Dispose();
}

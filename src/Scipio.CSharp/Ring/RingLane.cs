using Scipio.Core;
using Scipio.Interop;
using RingBooks = Scipio.Core.RingBookModule;

namespace Scipio.Ring;

/// <summary>One of a shard's rings with its bookkeeping: the core's <see cref="RingBook"/> admits each operation by
/// its class, operations it does not admit wait in a backlog (an intrusive FIFO: removing a canceled one is O(1)),
/// and an operation is counted complete once, at its final CQE. Shard thread only.</summary>
internal sealed class RingLane(RingKind kind, Ring ring) : IDisposable
{
    private RingBook _book = RingBooks.create((int)ring.SqEntries, (int)ring.CqEntries);
    private OperationList _backlog;
    private long _backlogged;

    public RingKind Kind { get; } = kind;
    public Ring Ring { get; } = ring;
    public RingBook Book => _book;

    /// <summary>Operations prepared or in flight, the shard's own included.</summary>
    public int Busy => _book.InFlight + _book.Prepared;

    /// <summary>User operations submitted here and not completed: in the backlog, prepared or in flight.</summary>
    public int UserOperations => RingBooks.userOps(_book) + _backlog.Count;

    /// <summary>Prompt user operations not completed: those whose completion is coming without outside help.</summary>
    public int PromptOperations => _book.Prompt + _backlog.Count;

    public RingStats Stats() => new(_book.Submitted, _book.Completed, Busy, _backlogged, Ring.Flags.ToString());

    /// <summary>An SQE for one of the shard's own events (never backlogged: NODROP keeps its CQE), flushing a full
    /// SQ first; ok = false only when the kernel would not take the SQ's entries.</summary>
    public ref IoUringSqe TryGetInternalSqe(out bool ok)
    {
        if (!Admit(OpClass.Internal))
        {
            ok = false;
            return ref System.Runtime.CompilerServices.Unsafe.NullRef<IoUringSqe>();
        }
        ref var sqe = ref Ring.TryGetSqe(out ok);
        if (ok) _book = RingBooks.prepared(OpClass.Internal, _book);
        return ref sqe;
    }

    /// <summary>Puts the operation's SQE on the ring now, or at the back of the backlog. The shard's own operations
    /// do not queue behind user operations waiting for room.</summary>
    public void Submit(IoOperation op)
    {
        op.Lane = this;
        if ((_backlog.Count == 0 || op.Class.IsInternal) && TryPrepare(op)) return;
        op.State = OperationState.Backlogged;
        _backlog.Append(op);
        _backlogged++;
    }

    private bool Admit(OpClass cls)
    {
        var admission = RingBooks.admit(cls, _book);
        if (admission.IsSubmitFirst)
        {
            Flush();
            admission = RingBooks.admit(cls, _book);
        }
        return admission.IsPrepare;
    }

    private bool TryPrepare(IoOperation op)
    {
        if (!Admit(op.Class)) return false;
        ref var sqe = ref Ring.TryGetSqe(out bool ok);
        if (!ok) return false;
        sqe = op.Sqe;
        sqe.UserData = op.UserData;
        _book = RingBooks.prepared(op.Class, _book);
        op.State = OperationState.Submitted;
        return true;
    }

    /// <summary>Takes a backlogged operation out of the backlog.</summary>
    public void RemoveFromBacklog(IoOperation op) => _backlog.Remove(op);

    /// <summary>Backlogged operations for which <paramref name="match"/> holds (a file being closed).</summary>
    public List<IoOperation> BackloggedWhere(Func<IoOperation, bool> match)
    {
        var found = new List<IoOperation>();
        for (var op = _backlog.Head; op is not null; op = op.BacklogNext)
            if (match(op)) found.Add(op);
        return found;
    }

    /// <summary>An operation's final CQE arrived.</summary>
    public void Retire(IoOperation op) => _book = RingBooks.completed(op.Class, _book);

    /// <summary>One of the shard's own events completed.</summary>
    public void RetireInternal() => _book = RingBooks.completed(OpClass.Internal, _book);

    /// <summary>The operation goes round again (the rest of a short write, a multishot request re-armed).</summary>
    public void Resubmit(IoOperation op)
    {
        Retire(op);
        Submit(op);
    }

    /// <summary>Moves backlogged operations into the room completions made, in order.</summary>
    public void DrainBacklog()
    {
        while (_backlog.Head is { } op && TryPrepare(op)) _backlog.Remove(op);
    }

    /// <summary>Hands prepared SQEs to the kernel (one syscall), if there are any.</summary>
    public void Flush()
    {
        if (Ring.Prepared > 0) Account(Ring.Enter(0, -1));
    }

    /// <summary>Enters the kernel if completions wait there: deferred task work (DEFER_TASKRUN), an overflow kept
    /// by NODROP, or polled I/O in flight (IOPOLL completions appear only when the ring is polled). Prepared SQEs
    /// alone are no reason: the loop submits them after a run that leaves work runnable, or with its park.</summary>
    public void Poll()
    {
        if (Ring.KernelHasPendingWork || (Kind.IsPoll && _book.InFlight > 0))
            Account(Ring.Enter(0, -1));
    }

    /// <summary>Blocks until a completion arrives or the timeout passes (negative: none).</summary>
    public void Wait(long timeoutNs) => Account(Ring.Enter(1, timeoutNs));

    /// <summary>Reads one CQE; the backend hands it to its operation, which decides what it means.</summary>
    public bool TryRead(out IoUringCqe cqe) => Ring.TryReadCompletion(out cqe);

    /// <summary>Forgets the backlog (shutdown: those operations never reached the kernel); returns them.</summary>
    public List<IoOperation> ClearBacklog()
    {
        var dropped = BackloggedWhere(static _ => true);
        _backlog.Clear();
        return dropped;
    }

    private void Account(int entered)
    {
        if (entered > 0) _book = RingBooks.submitted(entered, _book);
        else if (entered < 0 && entered is not (-Errno.EINTR) and not (-Errno.EAGAIN) and not (-Errno.EBUSY) and not (-Errno.ETIME))
            ThrowHelper.ThrowErrno(-entered, $"io_uring_enter on the {Kind} ring");
    }

    public void Dispose() => Ring.Dispose();
}

using System.Diagnostics;
using System.Threading.Tasks.Sources;
using Scipio.Core;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio.Ring;

/// <summary>One CQE of a multishot operation, as its reader gets it.</summary>
/// <param name="Result">The CQE's res: a count, an fd, or a negated errno.</param>
/// <param name="Flags">The CQE's flags (IORING_CQE_F_MORE, IORING_CQE_F_BUFFER and the buffer id…).</param>
internal readonly record struct MultishotCqe(int Result, uint Flags)
{
    /// <summary>More CQEs follow: this is not the last of the stream.</summary>
    public bool HasMore => (Flags & IoUringConst.CqeFMore) != 0;
}

/// <summary>One SQE, many CQEs (IORING_CQE_F_MORE): multishot accept, receive, poll, timeout. Each CQE goes to the
/// reader in order (<see cref="ReadAsync"/>), buffered while the reader is busy. When the kernel ends the request
/// with a result that is not an error (it does so, for instance, when the completion queue overflowed) and the
/// operation was prepared to re-arm, the same SQE goes back to the ring and the reader sees no end; otherwise the
/// CQE without F_MORE is the stream's last. Lingering: it holds no completion-queue room.</summary>
/// <remarks>The owner disposes it when done: before the last CQE that cancels the request, and the operation goes
/// back to its pool once the kernel has let go of it.</remarks>
internal sealed unsafe class MultishotOperation : IoOperation
{
    private readonly ShardWaiter<MultishotCqe> _reader;
    private IMultishotListener? _listener; // takes each CQE as it arrives, before any reader
    private unsafe KernelTimespec* _timespec; // a timeout's interval: the kernel reads it when the SQE is submitted
    private ProvidedBufferRing? _buffers; // a receive's buffer ring: a CQE dropped unread gives its buffer back
    private bool _accepts; // an accept: a CQE dropped unread holds a connection's descriptor, which is closed
    private MultishotCqe[] _pending = new MultishotCqe[8];
    private int _head, _count;
    private bool _rearm, _ended, _disposed;

    public MultishotOperation(ShardExecutor owner, OperationTable table) : base(owner, table)
    {
        _reader = new ShardWaiter<MultishotCqe>(owner, "multishot read", ShardWaiter<MultishotCqe>.EndOnCancel);
        Class = OpClass.Lingering;
    }

    /// <summary>Starts a use; then one Prepare* and submit.</summary>
    public MultishotOperation Start(string what, bool rearm)
    {
        Begin(what, null, null, default);
        _reader.What = what;
        _rearm = rearm;
        return this;
    }

    /// <summary>A multishot accept on listening socket <paramref name="fd"/>: a CQE per connection, its result the
    /// new descriptor (SOCK_CLOEXEC).</summary>
    public void PrepareAccept(int fd)
    {
        SetSocketErrors();
        _accepts = true;
        SqeWriter.AcceptMultishot(ref Sqe, fd, SocketCalls.SockCloexec);
    }

    /// <summary>A multishot receive on socket <paramref name="fd"/> into <paramref name="buffers"/>: a CQE per
    /// arrival naming its buffer; the result 0 is the end of the stream.</summary>
    public void PrepareReceive(int fd, ProvidedBufferRing buffers)
    {
        SetSocketErrors();
        _buffers = buffers;
        SqeWriter.RecvMultishot(ref Sqe, fd, ProvidedBufferRing.Group);
    }

    /// <summary>IORING_POLL_ADD_MULTI: a CQE each time <paramref name="fd"/> signals <paramref name="events"/>.</summary>
    public void PreparePoll(int fd, uint events) => SqeWriter.PollMultishot(ref Sqe, fd, events);

    /// <summary>IORING_TIMEOUT_MULTISHOT (6.4): a CQE every <paramref name="intervalNs"/>, <paramref name="count"/>
    /// times (0: until canceled).</summary>
    public unsafe void PrepareTimeout(long intervalNs, uint count)
    {
        if (_timespec == null) _timespec = (KernelTimespec*)System.Runtime.InteropServices.NativeMemory.Alloc((nuint)sizeof(KernelTimespec));
        *_timespec = KernelTimespec.FromNanoseconds(intervalNs);
        SqeWriter.Timeout(ref Sqe, (ulong)_timespec, IoUringConst.TimeoutMultishot, count);
    }

    /// <summary>Frees the timespec: the pool dropped the operation.</summary>
    public override unsafe void FreeScratch()
    {
        System.Runtime.InteropServices.NativeMemory.Free(_timespec);
        _timespec = null;
    }

    public override CqeAction OnCqe(in IoUringCqe cqe)
    {
        bool more = (cqe.Flags & IoUringConst.CqeFMore) != 0;
        if (!more && _rearm && !_disposed && cqe.Res >= 0)
        {
            Deliver(new MultishotCqe(cqe.Res, cqe.Flags | IoUringConst.CqeFMore));
            return CqeAction.Resubmit;
        }
        if (!_disposed) Deliver(new MultishotCqe(cqe.Res, cqe.Flags));
        else Drop(new MultishotCqe(cqe.Res, cqe.Flags));
        return more ? CqeAction.More : CqeAction.Complete;
    }

    public override void OnRetired()
    {
        base.OnRetired();
        _ended = true;
        if (_disposed) Release();
    }

    /// <summary>The next CQE, in order; the one without <see cref="MultishotCqe.HasMore"/> is the last.</summary>
    /// <remarks>Canceling <paramref name="ct"/> ends the wait with <see cref="OperationCanceledException"/> and
    /// leaves the request armed: a CQE that arrives later is kept for the next read (nothing is lost, and the
    /// kernel holds no memory of the reader's).</remarks>
    /// <exception cref="InvalidOperationException">The last CQE was already read, or a read is already waiting.</exception>
    public ValueTask<MultishotCqe> ReadAsync(CancellationToken ct = default)
    {
        if (_count > 0) return new ValueTask<MultishotCqe>(Dequeue());
        if (_ended) throw new InvalidOperationException("The multishot operation has ended: its last CQE was read.");
        if (ct.IsCancellationRequested) return ValueTask.FromCanceled<MultishotCqe>(ct);
        return _reader.Wait(ct);
    }

    /// <summary>Hands each CQE to <paramref name="listener"/> as it arrives (on the shard thread, while reaping);
    /// what it declines is kept for <see cref="ReadAsync"/>. Null stops it.</summary>
    public void Listen(IMultishotListener? listener) => _listener = listener;

    /// <summary>CQEs are waiting to be read.</summary>
    public bool HasPending => _count > 0;

    /// <summary>Stops the stream: cancels the request if the kernel still has it; the operation goes back to its
    /// pool once the final CQE has arrived. Pending CQEs are dropped; a waiting read gets a last CQE of -ECANCELED.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        while (_count > 0) Drop(Dequeue());
        _reader.TrySetResult(new MultishotCqe(-Errno.ECANCELED, 0)); // a waiting read ends: nothing more will come
        if (_ended) Release();
        else Owner.RequestCancel(this, Version);
    }

    /// <summary>A CQE nobody will read: its provided buffer, if it holds one, goes back to the kernel; a connection
    /// the kernel accepted for a listener that is gone is closed (its client sees the connection end instead of
    /// waiting on it forever, as for one still in the backlog when a listening socket closes).</summary>
    private void Drop(MultishotCqe cqe)
    {
        if (_buffers is { } buffers && ProvidedBufferRing.BufferOf(cqe.Flags) is int id and >= 0) buffers.Recycle((ushort)id);
        if (_accepts && cqe.Result >= 0) Libc.Close(cqe.Result);
    }

    private void Deliver(MultishotCqe cqe)
    {
        if (_listener is { } listener && listener.OnCqe(cqe)) return;
        if (_reader.TrySetResult(cqe)) return;
        if (_count == _pending.Length)
        {
            var bigger = new MultishotCqe[_pending.Length * 2];
            for (int i = 0; i < _count; i++) bigger[i] = _pending[(_head + i) & (_pending.Length - 1)];
            _pending = bigger;
            _head = 0;
        }
        _pending[(_head + _count) & (_pending.Length - 1)] = cqe;
        _count++;
    }

    private MultishotCqe Dequeue()
    {
        var cqe = _pending[_head];
        _head = (_head + 1) & (_pending.Length - 1);
        _count--;
        return cqe;
    }

    protected override void ReturnToPool() => Table.Return(this);

    protected override void Reset()
    {
        base.Reset();
        Class = OpClass.Lingering;
        _head = _count = 0;
        _rearm = _ended = _disposed = _accepts = false;
        _buffers = null;
        _listener = null;
    }
}

/// <summary>Takes a multishot operation's CQEs as they arrive (<see cref="MultishotOperation.Listen"/>).</summary>
internal interface IMultishotListener
{
    /// <summary>A CQE arrived; false leaves it queued for a reader.</summary>
    bool OnCqe(MultishotCqe cqe);
}

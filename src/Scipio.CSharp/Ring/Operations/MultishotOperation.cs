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
    private readonly Reader _reader;
    private unsafe KernelTimespec* _timespec; // a timeout's interval: the kernel reads it when the SQE is submitted
    private MultishotCqe[] _pending = new MultishotCqe[8];
    private int _head, _count;
    private bool _rearm, _ended, _disposed;

    public MultishotOperation(ShardExecutor owner, OperationTable table) : base(owner, table)
    {
        _reader = new Reader(this);
        Class = OpClass.Lingering;
    }

    /// <summary>Starts a use; then one Prepare* and submit.</summary>
    public MultishotOperation Start(string what, bool rearm)
    {
        Begin(what, null, null, default);
        _rearm = rearm;
        return this;
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
    public unsafe void FreeScratch()
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
        return more ? CqeAction.More : CqeAction.Complete;
    }

    public override void OnRetired()
    {
        base.OnRetired();
        _ended = true;
        if (_disposed) Release();
    }

    /// <summary>The next CQE, in order; the one without <see cref="MultishotCqe.HasMore"/> is the last.</summary>
    /// <exception cref="InvalidOperationException">The last CQE was already read, or a read is already waiting.</exception>
    public ValueTask<MultishotCqe> ReadAsync()
    {
        if (_count > 0) return new ValueTask<MultishotCqe>(Dequeue());
        if (_ended) throw new InvalidOperationException("The multishot operation has ended: its last CQE was read.");
        return _reader.Wait();
    }

    /// <summary>Stops the stream: cancels the request if the kernel still has it; the operation goes back to its
    /// pool once the final CQE has arrived. Pending CQEs are dropped.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _count = 0;
        if (_ended) Release();
        else Owner.RequestCancel(this, Version);
    }

    private void Deliver(MultishotCqe cqe)
    {
        if (_reader.TryHandOver(cqe)) return;
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
        _rearm = _ended = _disposed = false;
    }

    /// <summary>The reader's side: one pending read at a time, continued on the task queue that read.</summary>
    private sealed class Reader(MultishotOperation op) : IValueTaskSource<MultishotCqe>
    {
        private Action<object?>? _continuation;
        private object? _state;
        private TaskQueue? _queue;
        private MultishotCqe _result;
        private bool _waiting, _ready;
        private short _token;

        public ValueTask<MultishotCqe> Wait()
        {
            if (_waiting) throw new InvalidOperationException("A read of this multishot operation is already waiting.");
            _waiting = true;
            _ready = false;
            _queue = op.Owner.CurrentQueue;
            return new ValueTask<MultishotCqe>(this, _token);
        }

        /// <summary>Gives the CQE to a waiting read; false when none waits.</summary>
        public bool TryHandOver(MultishotCqe cqe)
        {
            if (!_waiting || _ready) return false;
            _result = cqe;
            _ready = true;
            if (_continuation is { } c) _queue!.EnqueueLocal(new WorkItem(c, _state));
            return true;
        }

        public ValueTaskSourceStatus GetStatus(short token) =>
            _ready ? ValueTaskSourceStatus.Succeeded : ValueTaskSourceStatus.Pending;

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        {
            Debug.Assert(token == _token);
            if (_ready)
            {
                _queue!.EnqueueLocal(new WorkItem(continuation, state));
                return;
            }
            _continuation = continuation;
            _state = state;
        }

        public MultishotCqe GetResult(short token)
        {
            if (token != _token || !_ready)
                throw new InvalidOperationException("This read's ValueTask was already awaited, or has not completed.");
            _token++;
            _waiting = _ready = false;
            _continuation = null;
            _state = null;
            _queue = null;
            return _result;
        }
    }
}

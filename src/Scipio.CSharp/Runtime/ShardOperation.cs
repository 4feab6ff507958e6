using System.Diagnostics;
using System.Threading.Tasks.Sources;

namespace Scipio.Runtime;

/// <summary>A pooled, reusable awaitable operation: the source behind every ValueTask the shard hands out.
/// When it completes, its continuation is enqueued on the task queue that issued it — never run inline — so the
/// stack stays bounded and the queue is charged for its own work. After <c>GetResult</c> it goes back to its
/// shard's free list; the version token makes a stale await of a reused operation fail loudly.</summary>
/// <remarks>Completion always happens on the shard thread. Registering a continuation may come from another
/// thread (a ValueTask handed off the shard), so that one step is an interlocked exchange.</remarks>
internal abstract class ShardOperation : IValueTaskSource<int>, IValueTaskSource<long>, IValueTaskSource
{
    private static readonly Action<object?> s_completedSentinel = static _ => Debug.Fail("sentinel ran");

    private Action<object?>? _continuation;
    private object? _continuationState;
    private ExecutionContext? _executionContext;
    private short _version;
    private bool _completed;
    private long _result; // ≥ 0: the value (a count, an fd, a file size); < 0: a negated errno
    private long _completedNs; // for scipio.io.resume_delay; 0 when nobody listens
    private CancellationTokenRegistration _cancellation;

    protected ShardOperation(ShardExecutor owner) => Owner = owner;

    /// <summary>The shard the operation belongs to.</summary>
    public ShardExecutor Owner { get; }

    /// <summary>The queue its continuation goes to: the one running when it was issued.</summary>
    public TaskQueue Queue { get; private set; } = null!;

    /// <summary>The token of the current use.</summary>
    public short Version => _version;

    /// <summary>The token the operation was issued with, if it can be canceled.</summary>
    protected CancellationToken CancellationToken { get; private set; }

    public bool IsCompleted => _completed;

    /// <summary>The use's token has been canceled.</summary>
    public bool CancellationRequested => CancellationToken.IsCancellationRequested;

    /// <summary>Starts a use of the operation on behalf of the running queue.</summary>
    protected void Begin(CancellationToken cancellationToken)
    {
        Queue = Owner.CurrentQueue;
        CancellationToken = cancellationToken;
        if (cancellationToken.CanBeCanceled)
            _cancellation = cancellationToken.UnsafeRegister(static (s, _) => ((ShardOperation)s!).OnCancelRequested(), this);
    }

    /// <summary>The token was canceled: on any thread, possibly after completion.</summary>
    protected abstract void OnCancelRequested();

    /// <summary>The result is in (on the shard thread): record it and schedule the continuation.</summary>
    public void Complete(long result)
    {
        Debug.Assert(!_completed);
        _result = result;
        _completed = true;
        if (Diagnostics.ScipioMetrics.ResumeDelay.Enabled) _completedNs = Owner.LoopNowNs; // reaped in this loop turn
        _cancellation.Dispose();
        _cancellation = default;
        var continuation = Interlocked.CompareExchange(ref _continuation, s_completedSentinel, null);
        if (continuation is not null)
            Schedule(continuation);
    }

    private void Schedule(Action<object?> continuation) =>
        Continuations.Schedule(Queue, continuation, _continuationState, _executionContext);


    public ValueTaskSourceStatus GetStatus(short token)
    {
        CheckToken(token);
        if (!_completed) return ValueTaskSourceStatus.Pending;
        if (_result >= 0) return ValueTaskSourceStatus.Succeeded;
        return _result == -Interop.Errno.ECANCELED && CancellationToken.IsCancellationRequested
            ? ValueTaskSourceStatus.Canceled
            : ValueTaskSourceStatus.Faulted;
    }

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        CheckToken(token);
        _continuationState = state;
        _executionContext = Continuations.CaptureIfAsked(flags);
        var previous = Interlocked.CompareExchange(ref _continuation, continuation, null);
        if (previous is not null)
        {
            if (!ReferenceEquals(previous, s_completedSentinel))
                throw new InvalidOperationException("This ValueTask is already being awaited; a ValueTask may be awaited only once.");
            Schedule(continuation); // it completed in between
        }
    }

    public int GetResult(short token) => (int)GetResult64(token);

    long IValueTaskSource<long>.GetResult(short token) => GetResult64(token);

    private long GetResult64(short token)
    {
        CheckToken(token);
        if (!_completed)
            throw new InvalidOperationException("The operation has not completed: await the ValueTask instead of reading its result.");
        long result = _result;
        if (_completedNs != 0)
        {
            Diagnostics.ScipioMetrics.RecordResume(Owner, Queue, _completedNs);
            _completedNs = 0;
        }
        var ct = CancellationToken;
        Exception? error = result < 0 ? CreateException((int)-result, ct) : null;
        Recycle();
        if (error is not null) throw error;
        return result;
    }

    void IValueTaskSource.GetResult(short token) => GetResult(token);

    /// <summary>The exception for a failed use; the operation is still intact when this is called.</summary>
    protected abstract Exception CreateException(int errno, CancellationToken ct);

    /// <summary>Ends a use that nobody awaits (the shard's own operations): back to the pool.</summary>
    protected void Release() => Recycle();

    /// <summary>Clears the use's state and hands the operation back to its pool.</summary>
    private void Recycle()
    {
        _version++;
        _completed = false;
        _continuation = null;
        _continuationState = null;
        _executionContext = null;
        CancellationToken = default;
        Queue = null!;
        Reset();
        if (ShardExecutor.Current == Owner) ReturnToPool();
    }

    /// <summary>Clears the derived type's fields.</summary>
    protected abstract void Reset();

    /// <summary>Puts the operation on its shard's free list.</summary>
    protected abstract void ReturnToPool();

    private void CheckToken(short token)
    {
        if (token != _version)
            throw new InvalidOperationException("This ValueTask was already awaited: its operation has been reused. Await each ValueTask once.");
    }
}

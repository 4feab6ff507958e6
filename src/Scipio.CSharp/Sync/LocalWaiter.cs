using System.Diagnostics;
using System.Threading.Tasks.Sources;
using Scipio.Runtime;

namespace Scipio.Sync;

/// <summary>One wait on a shard-local primitive: a pooled node that sits in its owner's <see cref="WaiterQueue"/>
/// and is the source behind the ValueTask the waiter awaits. When the owner grants the wait (or the wait is
/// canceled), the continuation is enqueued on the task queue that was running when the wait began — never run
/// inline. After <c>GetResult</c> the node goes back to its shard's free list; the version token makes a stale
/// await of a reused node fail loudly.</summary>
/// <remarks>Everything runs on the owner's shard except the cancellation callback, which may run on any thread: it
/// only reads the node's shard and version (the registration is disposed, waiting out a callback in flight, before
/// the node can be reused) and posts the cancellation to the shard, where the version is checked again. No
/// atomics on the shard's own paths.</remarks>
internal sealed class LocalWaiter : IValueTaskSource, IValueTaskSource<IDisposable>
{
    // Per shard thread: a node is rented and returned on its shard only. Bounded, so a burst of waiters does not
    // stay allocated for ever.
    private const int PoolLimit = 1024;
    [ThreadStatic] private static LocalWaiter? t_free;
    [ThreadStatic] private static int t_freeCount;

    private enum State : byte { Idle, Waiting, Granted, Canceled }

    private ShardExecutor _executor = null!;
    private IWaiterOwner _owner = null!;
    private TaskQueue _queue = null!;
    private Action<object?>? _continuation;
    private object? _continuationState;
    private ExecutionContext? _executionContext;
    private CancellationToken _cancellationToken;
    private CancellationTokenRegistration _registration;
    private IDisposable? _result;
    private State _state;
    private short _version;

    /// <summary>Links of the owner's <see cref="WaiterQueue"/>; <see cref="Next"/> also links the free list.</summary>
    public LocalWaiter? Next, Previous;

    /// <summary>What the owner waits for (a reader or a writer, say).</summary>
    public int Kind { get; private set; }

    /// <summary>The wait's token has been canceled (perhaps on another thread, its cancellation not yet posted).</summary>
    public bool CancellationRequested => _cancellationToken.IsCancellationRequested;

    public short Version => _version;

    /// <summary>A node for a new wait on <paramref name="owner"/>, on behalf of the running task queue.</summary>
    public static LocalWaiter Rent(ShardExecutor executor, IWaiterOwner owner, int kind)
    {
        var waiter = t_free;
        if (waiter is null) waiter = new LocalWaiter();
        else
        {
            t_free = waiter.Next;
            waiter.Next = null;
            t_freeCount--;
        }
        waiter._executor = executor;
        waiter._owner = owner;
        waiter._queue = executor.CurrentQueue;
        waiter.Kind = kind;
        waiter._state = State.Waiting;
        return waiter;
    }

    /// <summary>Registers for cancellation; called once the owner has queued the node, since a token canceled
    /// meanwhile runs the callback inline, which unlinks the node at once.</summary>
    public void WatchCancellation(CancellationToken cancellationToken)
    {
        if (!cancellationToken.CanBeCanceled) return;
        _cancellationToken = cancellationToken;
        var registration = cancellationToken.UnsafeRegister(static (s, _) => ((LocalWaiter)s!).OnCancelRequested(), this);
        if (_state == State.Waiting) _registration = registration; // else it already ran (inline): nothing to undo
    }

    /// <summary>The owner serves the wait: <paramref name="result"/> is what the await returns.</summary>
    public void Grant(IDisposable? result) => Finish(State.Granted, result);

    /// <summary>The owner, having unlinked the node, ends the wait as canceled.</summary>
    public void Cancel() => Finish(State.Canceled, null);

    private void Finish(State state, IDisposable? result)
    {
        Debug.Assert(_state == State.Waiting && Next is null && Previous is null);
        _state = state;
        _result = result;
        // Dispose, not Unregister: it waits for a callback running on another thread, so that the callback never
        // reads the version of the node's next use.
        var registration = _registration;
        _registration = default;
        registration.Dispose();
        if (_continuation is { } continuation) Schedule(continuation);
    }

    // On any thread, possibly after the wait ended.
    private void OnCancelRequested()
    {
        var executor = _executor;
        short version = _version;
        if (ShardExecutor.Current == executor) CancelOnShard(version);
        else executor.PostFromAnotherThread(null, new WorkItem((Action)(() => CancelOnShard(version)), null));
    }

    private void CancelOnShard(short version)
    {
        if (version != _version || _state != State.Waiting) return; // granted first, or the node moved on
        _owner.RemoveCanceled(this);
    }

    private void Schedule(Action<object?> continuation) =>
        Continuations.Schedule(_queue, continuation, _continuationState, _executionContext);


    public ValueTaskSourceStatus GetStatus(short token)
    {
        CheckToken(token);
        return _state switch
        {
            State.Granted => ValueTaskSourceStatus.Succeeded,
            State.Canceled => ValueTaskSourceStatus.Canceled,
            _ => ValueTaskSourceStatus.Pending,
        };
    }

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        CheckToken(token);
        if (ShardExecutor.Current != _executor) ShardAffinity.ThrowWrongShard(_executor, "Awaiting a Scipio.Sync wait");
        if (_continuation is not null)
            throw new InvalidOperationException("This ValueTask is already being awaited; a ValueTask may be awaited only once.");
        _continuationState = state;
        _executionContext = Continuations.CaptureIfAsked(flags);
        if (_state == State.Waiting) _continuation = continuation;
        else Schedule(continuation); // ended between the wait and the await: still never inline
    }

    public IDisposable GetResult(short token)
    {
        CheckToken(token);
        var state = _state;
        if (state == State.Waiting)
            throw new InvalidOperationException("The wait has not completed: await the ValueTask instead of reading its result.");
        var result = _result;
        var ct = _cancellationToken;
        Recycle();
        if (state == State.Canceled) throw new OperationCanceledException(ct);
        return result!;
    }

    void IValueTaskSource.GetResult(short token) => GetResult(token);

    private void Recycle()
    {
        var executor = _executor;
        _version++;
        _state = State.Idle;
        _continuation = null;
        _continuationState = null;
        _executionContext = null;
        _cancellationToken = default;
        _result = null;
        _owner = null!;
        _queue = null!;
        _executor = null!;
        if (ShardExecutor.Current != executor || t_freeCount >= PoolLimit) return;
        Next = t_free;
        t_free = this;
        t_freeCount++;
    }

    private void CheckToken(short token)
    {
        if (token != _version)
            throw new InvalidOperationException("This ValueTask was already awaited: its wait has been reused. Await each ValueTask once.");
    }
}

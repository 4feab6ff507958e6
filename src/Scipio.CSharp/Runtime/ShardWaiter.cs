using System.Diagnostics;
using System.Threading.Tasks.Sources;

namespace Scipio.Runtime;

/// <summary>A reusable source for one pending wait at a time on a shard (a multishot reader, a socket read), set on
/// the shard thread by whoever produces the result. The continuation goes straight to the task queue that waited —
/// never inline, and never through a SynchronizationContext post (which would allocate per completion).</summary>
/// <remarks>A canceled token does not end the wait by itself: it calls <c>onCancel</c> on the shard thread, and the
/// owner decides — end it at once (nothing of the caller's is in the kernel's hands) or cancel the kernel operation
/// first and end it when that operation's last CQE arrives.</remarks>
internal sealed class ShardWaiter<T>(ShardExecutor owner, string what, Action<ShardWaiter<T>> onCancel) : IValueTaskSource<T>
{
    /// <summary>What is waited for, in messages ("TcpListener accept").</summary>
    public string What { get; set; } = what;

    private Action<object?>? _continuation;
    private object? _state;
    private TaskQueue? _queue;
    private T _result = default!;
    private Exception? _error;
    private CancellationToken _ct;
    private CancellationTokenRegistration _registration;
    private bool _waiting, _ready;
    private short _token;

    /// <summary>For an owner whose wait has nothing in the kernel's hands: a canceled token ends it at once.</summary>
    public static readonly Action<ShardWaiter<T>> EndOnCancel = static w => w.TrySetCanceled();

    /// <summary>A wait is pending and nothing has ended it yet.</summary>
    public bool IsWaiting => _waiting && !_ready;

    /// <summary>The token of the pending wait.</summary>
    public CancellationToken Token => _ct;

    /// <summary>Starts a wait on behalf of the running queue.</summary>
    /// <exception cref="InvalidOperationException">A wait is already pending.</exception>
    public ValueTask<T> Wait(CancellationToken ct)
    {
        if (_waiting) throw new InvalidOperationException($"A {What} is already pending; await it before starting another.");
        _waiting = true;
        _ready = false;
        _error = null;
        _queue = owner.CurrentQueue;
        _ct = ct;
        if (ct.CanBeCanceled)
            _registration = ct.UnsafeRegister(static (s, _) => ((ShardWaiter<T>)s!).OnCanceled(), this);
        return new ValueTask<T>(this, _token);
    }

    /// <summary>The token's callback, on any thread: the owner hears of it on the shard thread.</summary>
    private void OnCanceled()
    {
        short token = _token;
        if (ShardExecutor.Current == owner) CancelIfCurrent(token);
        else owner.PostFromAnotherThread(null, new WorkItem((Action)(() => CancelIfCurrent(token)), null));
    }

    private void CancelIfCurrent(short token)
    {
        if (token == _token && IsWaiting) onCancel(this);
    }

    /// <summary>Ends the wait with a result; false when none is pending.</summary>
    public bool TrySetResult(T result)
    {
        if (!IsWaiting) return false;
        _result = result;
        Finish();
        return true;
    }

    /// <summary>Ends the wait with an exception; false when none is pending.</summary>
    public bool TrySetException(Exception error)
    {
        if (!IsWaiting) return false;
        _error = error;
        Finish();
        return true;
    }

    /// <summary>Ends the wait as canceled by its token.</summary>
    public bool TrySetCanceled() => TrySetException(new OperationCanceledException($"{What} was canceled.", _ct));

    private void Finish()
    {
        _ready = true;
        _registration.Dispose(); // on the shard thread; a callback running elsewhere only posts, so this cannot wait long
        _registration = default;
        if (_continuation is { } c) _queue!.EnqueueLocal(new WorkItem(c, _state));
    }

    public ValueTaskSourceStatus GetStatus(short token) =>
        !_ready ? ValueTaskSourceStatus.Pending
        : _error is null ? ValueTaskSourceStatus.Succeeded
        : _error is OperationCanceledException ? ValueTaskSourceStatus.Canceled
        : ValueTaskSourceStatus.Faulted;

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

    public T GetResult(short token)
    {
        if (token != _token || !_ready)
            throw new InvalidOperationException($"This {What}'s ValueTask was already awaited, or has not completed.");
        _token++;
        var error = _error;
        var result = _result;
        _waiting = _ready = false;
        _error = null;
        _result = default!;
        _ct = default;
        _continuation = null;
        _state = null;
        _queue = null;
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        return result;
    }
}

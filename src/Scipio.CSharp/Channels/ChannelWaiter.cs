using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Threading.Tasks.Sources;
using Scipio.Runtime;

namespace Scipio.Channels;

/// <summary>What a channel waiter waits for.</summary>
internal enum WaitKind : byte
{
    /// <summary>ReadAsync: completes with an item.</summary>
    Read,

    /// <summary>WaitToReadAsync: completes with true (something to read) or false (completed).</summary>
    WaitToRead,

    /// <summary>WriteAsync: holds the item until there is room.</summary>
    Write,

    /// <summary>WaitToWriteAsync: completes with true (room) or false (completed).</summary>
    WaitToWrite,
}

/// <summary>The side of a channel a waiter belongs to: it removes a canceled waiter and takes waiters back.</summary>
internal interface IWaiterOwner<T>
{
    /// <summary>On the waiter's shard: the waiter's token was canceled while it still waited.</summary>
    void OnCanceled(ChannelWaiter<T> waiter);

    /// <summary>On the waiter's shard: the waiter's result was read; it may be reused.</summary>
    void Return(ChannelWaiter<T> waiter);
}

/// <summary>A pooled, reusable wait on a channel: the source behind the ValueTasks of ReadAsync, WriteAsync,
/// WaitToReadAsync and WaitToWriteAsync when they cannot complete at once. Everything but the cancellation
/// callback runs on the waiter's own shard (the shard that waited), so it needs no atomics. When it completes, its
/// continuation is enqueued on the task queue that was running when the wait began — never run inline.</summary>
/// <remarks>A version token guards reuse: awaiting a ValueTask twice fails loudly, as with ShardOperation. A token
/// canceled on another thread posts the cancellation to the waiter's queue, so it, too, is acted on on the shard.</remarks>
internal sealed class ChannelWaiter<T> : IValueTaskSource<T>, IValueTaskSource
{
    private static readonly SendOrPostCallback s_cancelOnShard = static s =>
    {
        var (waiter, version) = ((ChannelWaiter<T>, short))s!;
        if (waiter._version == version && waiter.IsPending) waiter._owner.OnCanceled(waiter);
    };

    private readonly IWaiterOwner<T> _owner;
    private Action<object?>? _continuation;
    private object? _continuationState;
    private ExecutionContext? _executionContext;
    private CancellationTokenRegistration _registration;
    private ExceptionDispatchInfo? _error;
    private short _version;
    private bool _completed, _flag;

    public ChannelWaiter(IWaiterOwner<T> owner)
    {
        _owner = owner;
        AsBool = new BoolSource(this);
    }

    /// <summary>The same waiter as the source of a ValueTask&lt;bool&gt; (a class cannot implement both
    /// IValueTaskSource&lt;T&gt; and IValueTaskSource&lt;bool&gt;); made once, pooled with the waiter.</summary>
    public IValueTaskSource<bool> AsBool { get; }

    private sealed class BoolSource(ChannelWaiter<T> waiter) : IValueTaskSource<bool>
    {
        public ValueTaskSourceStatus GetStatus(short token) => waiter.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            waiter.OnCompleted(continuation, state, token, flags);

        public bool GetResult(short token) => waiter.GetFlag(token);
    }

    /// <summary>What the wait is for.</summary>
    public WaitKind Kind { get; private set; }

    /// <summary>A Write's item (until it is written), or a Read's result.</summary>
    public T Item = default!;

    /// <summary>The queue its continuation goes to: the one running when the wait began.</summary>
    public TaskQueue Queue { get; private set; } = null!;

    /// <summary>The token the wait was begun with.</summary>
    public CancellationToken CancellationToken { get; private set; }

    /// <summary>Links of the owner's intrusive FIFO.</summary>
    public ChannelWaiter<T>? Next, Previous;

    /// <summary>Started and not yet completed.</summary>
    public bool IsPending => Queue is not null && !_completed;

    public short Version => _version;

    /// <summary>Starts a use on the running shard, on behalf of its running queue.</summary>
    public void Begin(WaitKind kind, T item, CancellationToken cancellationToken)
    {
        Debug.Assert(Queue is null);
        Kind = kind;
        Item = item;
        Queue = ShardExecutor.Current!.CurrentQueue;
        CancellationToken = cancellationToken;
        if (cancellationToken.CanBeCanceled)
            _registration = cancellationToken.UnsafeRegister(static (s, _) =>
            {
                var w = (ChannelWaiter<T>)s!;
                // Any thread; post to the shard, which checks that this use still waits. Rare: it may allocate.
                w.Queue?.Post(s_cancelOnShard, (w, w._version));
            }, this);
    }

    /// <summary>Completes a Read with its item.</summary>
    public void SetItem(T item)
    {
        Item = item;
        Finish(true, null);
    }

    /// <summary>Completes a wait (true or false) or a Write (true).</summary>
    public void SetResult(bool result) => Finish(result, null);

    /// <summary>Completes with an exception, thrown by GetResult.</summary>
    public void SetException(Exception error) => Finish(false, ExceptionDispatchInfo.Capture(error));

    /// <summary>Completes as canceled by its token.</summary>
    public void SetCanceled() => SetException(new OperationCanceledException(CancellationToken));

    private void Finish(bool flag, ExceptionDispatchInfo? error)
    {
        Debug.Assert(IsPending);
        _flag = flag;
        _error = error;
        _completed = true;
        _registration.Unregister(); // never blocks; a callback already running finds the use over
        _registration = default;
        if (_continuation is { } continuation) Schedule(continuation);
    }

    private void Schedule(Action<object?> continuation) =>
        Continuations.Schedule(Queue, continuation, _continuationState, _executionContext);


    public ValueTaskSourceStatus GetStatus(short token)
    {
        CheckToken(token);
        if (!_completed) return ValueTaskSourceStatus.Pending;
        if (_error is null) return ValueTaskSourceStatus.Succeeded;
        return _error.SourceException is OperationCanceledException ? ValueTaskSourceStatus.Canceled : ValueTaskSourceStatus.Faulted;
    }

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        CheckToken(token);
        if (_continuation is not null)
            throw new InvalidOperationException("This ValueTask is already being awaited; a ValueTask may be awaited only once.");
        if (ShardExecutor.Current?.CurrentQueue.Executor != Queue.Executor)
            throw new InvalidOperationException("A Scipio channel's ValueTask must be awaited on the shard that called the channel.");
        _continuationState = state;
        _executionContext = Continuations.CaptureIfAsked(flags);
        _continuation = continuation;
        if (_completed) Schedule(continuation);
    }

    T IValueTaskSource<T>.GetResult(short token)
    {
        End(token);
        T item = Item;
        Recycle();
        return item;
    }

    private bool GetFlag(short token)
    {
        End(token);
        bool flag = _flag;
        Recycle();
        return flag;
    }

    void IValueTaskSource.GetResult(short token)
    {
        End(token);
        Recycle();
    }

    /// <summary>Checks the token and throws the use's exception (after recycling).</summary>
    private void End(short token)
    {
        CheckToken(token);
        if (!_completed)
            throw new InvalidOperationException("The channel operation has not completed: await the ValueTask instead of reading its result.");
        if (_error is { } error)
        {
            Recycle();
            error.Throw();
        }
    }

    private void Recycle()
    {
        _version++;
        _completed = false;
        _flag = false;
        _error = null;
        _continuation = null;
        _continuationState = null;
        _executionContext = null;
        Item = default!;
        Next = Previous = null;
        Queue = null!;
        CancellationToken = default;
        if (ShardExecutor.Current is not null) _owner.Return(this);
    }

    private void CheckToken(short token)
    {
        if (token != _version)
            throw new InvalidOperationException("This ValueTask was already awaited: its channel wait has been reused. Await each ValueTask once.");
    }
}

/// <summary>An intrusive FIFO of waiters (shard-local).</summary>
internal struct WaiterList<T>
{
    private ChannelWaiter<T>? _head, _tail;

    public readonly bool IsEmpty => _head is null;

    public void Add(ChannelWaiter<T> waiter)
    {
        waiter.Previous = _tail;
        waiter.Next = null;
        if (_tail is null) _head = waiter;
        else _tail.Next = waiter;
        _tail = waiter;
    }

    public ChannelWaiter<T>? TakeFirst()
    {
        var first = _head;
        if (first is not null) Remove(first);
        return first;
    }

    public void Remove(ChannelWaiter<T> waiter)
    {
        if (waiter.Previous is null) _head = waiter.Next;
        else waiter.Previous.Next = waiter.Next;
        if (waiter.Next is null) _tail = waiter.Previous;
        else waiter.Next.Previous = waiter.Previous;
        waiter.Next = waiter.Previous = null;
    }
}

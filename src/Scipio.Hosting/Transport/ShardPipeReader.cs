using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading.Tasks.Sources;

namespace Scipio.Hosting.Transport;

/// <summary>A connection's input as Kestrel sees it: the input pipe's reader, except that a read started off the
/// connection's shard resumes on it. Kestrel starts every connection on a ThreadPool thread; if its first read found
/// the request already buffered it would parse it, and run the application, right there. So a read from elsewhere hops
/// to the shard, reads there, and resumes its caller on the shard — once, since from then on the caller runs there
/// and the pipe's scheduler (the shard's task queue) keeps it there. On the shard a read is the pipe's own.</summary>
internal sealed class ShardPipeReader(PipeReader inner, TaskQueue queue) : PipeReader, IValueTaskSource<ReadResult>
{
    private static readonly SendOrPostCallback s_readOnShard = static state => ((ShardPipeReader)state!).ReadOnShard();

    // The hop's state: the result and the caller's continuation meet here, from two threads; whichever arrives second
    // dispatches the continuation (on the shard either way).
    private const int Waiting = 0, HasResult = 1, HasContinuation = 2, Dispatched = 3;
    private int _state;
    private short _version;
    private CancellationToken _hopToken;
    private ReadResult _result;
    private ExceptionDispatchInfo? _error;
    private Action<object?>? _continuation;
    private object? _continuationState;
    private ExecutionContext? _executionContext;
    private ConfiguredValueTaskAwaitable<ReadResult>.ConfiguredValueTaskAwaiter _innerRead;
    private Action? _onInnerRead;

    /// <summary>Whether the caller runs in the connection's task queue (so on its shard).</summary>
    private bool OnShard
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => SynchronizationContext.Current == queue;
    }

    /// <inheritdoc/>
    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (OnShard) return inner.ReadAsync(cancellationToken);
        // One read at a time is the PipeReader contract, so one hop's state serves.
        _version++;
        _state = Waiting;
        _error = null;
        _continuation = null;
        _continuationState = null;
        _executionContext = null;
        _hopToken = cancellationToken;
        queue.Post(s_readOnShard, this);
        return new ValueTask<ReadResult>(this, _version);
    }

    /// <inheritdoc/>
    protected override ValueTask<ReadResult> ReadAtLeastAsyncCore(int minimumSize, CancellationToken cancellationToken) =>
        OnShard ? inner.ReadAtLeastAsync(minimumSize, cancellationToken) : base.ReadAtLeastAsyncCore(minimumSize, cancellationToken);

    /// <inheritdoc/>
    public override bool TryRead(out ReadResult result) => inner.TryRead(out result);

    /// <inheritdoc/>
    public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);

    /// <inheritdoc/>
    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);

    /// <inheritdoc/>
    public override void CancelPendingRead() => inner.CancelPendingRead();

    /// <inheritdoc/>
    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    /// <inheritdoc/>
    public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

    /// <summary>On the shard: the read itself. Done at once when the bytes are buffered; else when they arrive (the
    /// pipe schedules that on the shard too).</summary>
    private void ReadOnShard()
    {
        try
        {
            var read = inner.ReadAsync(_hopToken).ConfigureAwait(false);
            _innerRead = read.GetAwaiter();
            if (_innerRead.IsCompleted) OnInnerRead();
            else _innerRead.UnsafeOnCompleted(_onInnerRead ??= OnInnerRead);
        }
        catch (Exception e)
        {
            Finish(default, ExceptionDispatchInfo.Capture(e));
        }
    }

    private void OnInnerRead()
    {
        var read = _innerRead;
        _innerRead = default;
        try
        {
            Finish(read.GetResult(), null);
        }
        catch (Exception e)
        {
            Finish(default, ExceptionDispatchInfo.Capture(e));
        }
    }

    /// <summary>On the shard: the result is in; resumes the caller here if it is already waiting.</summary>
    private void Finish(ReadResult result, ExceptionDispatchInfo? error)
    {
        _result = result;
        _error = error;
        if (Interlocked.CompareExchange(ref _state, HasResult, Waiting) == HasContinuation)
        {
            _state = Dispatched;
            Invoke();
        }
    }

    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token)
    {
        Check(token);
        // Pending until the continuation is dispatched: a caller that found the read done would resume where it is,
        // off the shard — the very thing the hop is for.
        if (Volatile.Read(ref _state) != Dispatched) return ValueTaskSourceStatus.Pending;
        return _error is null ? ValueTaskSourceStatus.Succeeded : ValueTaskSourceStatus.Faulted;
    }

    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        Check(token);
        _continuation = continuation;
        _continuationState = state;
        if ((flags & ValueTaskSourceOnCompletedFlags.FlowExecutionContext) != 0) _executionContext = ExecutionContext.Capture();
        if (Interlocked.CompareExchange(ref _state, HasContinuation, Waiting) == HasResult)
        {
            // The result came first: the caller is on another thread here, so it resumes through the shard's queue.
            _state = Dispatched;
            queue.PipeScheduler.Schedule(static s => ((ShardPipeReader)s!).Invoke(), this);
        }
    }

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token)
    {
        Check(token);
        int at = Volatile.Read(ref _state);
        if (at is not (Dispatched or HasResult))
            throw new InvalidOperationException("A connection's read was waited for synchronously before it completed; await it.");
        _error?.Throw();
        return _result;
    }

    /// <summary>Resumes the caller, on the shard.</summary>
    private void Invoke()
    {
        var continuation = _continuation!;
        var state = _continuationState;
        var context = _executionContext;
        _continuation = null;
        _continuationState = null;
        _executionContext = null;
        if (context is null) continuation(state);
        else ExecutionContext.Run(context, RunCaptured, (continuation, state)); // rare: OnCompleted, not UnsafeOnCompleted
    }

    private static void RunCaptured(object? pair)
    {
        var (continuation, state) = ((Action<object?>, object?))pair!;
        continuation(state);
    }

    private void Check(short token)
    {
        if (token != _version)
            throw new InvalidOperationException("This read's ValueTask was already awaited (a ValueTask may be awaited once).");
    }
}

using Scipio.Core;

namespace Scipio.Runtime;

/// <summary>One <see cref="Shard.WithTimeout{T}"/> call: the work's token, its deadline in the shard's timer heap,
/// and the Task the caller gets back (one object for the last two). Whichever comes first decides: the work's outcome
/// (the deadline leaves the heap at once) or the deadline (the Task faults with <see cref="TimeoutException"/> and
/// the token is canceled; what the work does afterwards is observed and dropped).</summary>
/// <remarks>A heap entry rather than IORING_OP_LINK_TIMEOUT: the work may be any number of operations, or none, and
/// for the usual case — the work finishes in time — a heap push and remove on the shard costs less than a linked
/// timeout, which the kernel arms and cancels and always answers with a CQE of its own.</remarks>
internal sealed class TimeoutRun<T>(ShardExecutor owner, TimeSpan timeout) : TaskCompletionSource<T>, ITimerTarget
{
    private readonly CancellationTokenSource _cts = new();
    private int _id = -1; // the timer slot while the deadline is armed
    private Task? _inner;

    public Task<T> Start(long timeoutNs, Func<CancellationToken, Task> work)
    {
        long now = Clock.NowNs;
        _id = owner.AddTimer(this);
        owner.ArmTimer(_id, Time.addSaturating(now, timeoutNs), now);
        Task inner;
        try
        {
            inner = work(_cts.Token) ?? throw new InvalidOperationException("The function given to Shard.WithTimeout returned null instead of a Task.");
        }
        catch (Exception e)
        {
            Disarm();
            TrySetException(e);
            return Task;
        }
        if (inner.IsCompleted) OnInnerCompleted(inner);
        else
        {
            _inner = inner;
            // The queue's context is captured: the work usually completes in the same queue, and .NET then runs this
            // inline (as SpawnedWork does, for the same reason).
            inner.GetAwaiter().UnsafeOnCompleted(OnInnerCompleted);
        }
        return Task;
    }

    private void OnInnerCompleted() => OnInnerCompleted(_inner!);

    private void OnInnerCompleted(Task inner)
    {
        _inner = null;
        Disarm();
        if (Task.IsCompleted) _ = inner.Exception; // timed out already: observed, so it is not reported as unobserved
        else TaskOutcome.CopyTo(this, inner);
    }

    /// <summary>The deadline (run loop, outside any queue's run).</summary>
    public void OnTimerDue(long nowNs)
    {
        Disarm();
        // Finished in time, its continuation not yet run (it waits in its queue): the outcome stands.
        if (_inner is { IsCompleted: true }) return;
        TrySetException(new TimeoutException(
            $"The work did not complete within {timeout} (Shard.WithTimeout); its CancellationToken was canceled and what it does from now on is ignored."));
        try
        {
            _cts.Cancel();
        }
        catch (AggregateException)
        {
            // A callback registered on the token threw: it belongs to the abandoned work, and the run loop must not
            // stop for it. The caller already has its TimeoutException.
        }
    }

    private void Disarm()
    {
        if (_id < 0) return;
        owner.RemoveTimer(_id);
        _id = -1;
    }
}

namespace Scipio.Runtime;

/// <summary>Work spawned on a task queue: the queue item that starts the user's function and the source of the
/// Task the spawner gets back (one object for both). The function runs when the queue gets to it, not inline.</summary>
internal sealed class SpawnedWork<T> : TaskCompletionSource<T>, IShardWorkItem
{
    private Func<Task>? _work;
    private Task? _inner;

    /// <param name="work">The user's function; a <c>Func&lt;Task&lt;T&gt;&gt;</c> or, for T = bool standing in
    /// for no result, a <c>Func&lt;Task&gt;</c>.</param>
    public SpawnedWork(Func<Task> work) => _work = work;

    public void Execute()
    {
        var work = _work!;
        _work = null;
        Task inner;
        try
        {
            inner = work() ?? throw new InvalidOperationException("The spawned function returned null instead of a Task.");
        }
        catch (Exception e)
        {
            TrySetException(e);
            return;
        }
        if (inner.IsCompleted)
        {
            Finish(inner);
        }
        else
        {
            _inner = inner;
            // ConfigureAwait(false): finish where the inner task completes (this shard, normally) instead of
            // posting a second hop through the queue; awaiters of our Task still resume in their own queues.
            inner.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(OnInnerCompleted);
        }
    }

    private void OnInnerCompleted() => Finish(_inner!);

    private void Finish(Task inner)
    {
        _inner = null;
        if (inner.IsCompletedSuccessfully)
            TrySetResult(inner is Task<T> typed ? typed.Result : default!);
        else if (inner.IsCanceled)
            TrySetCanceled(CanceledToken(inner));
        else
            TrySetException(inner.Exception!.InnerExceptions);
    }

    private static CancellationToken CanceledToken(Task canceled)
    {
        try
        {
            canceled.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException e)
        {
            return e.CancellationToken;
        }
        return default;
    }
}

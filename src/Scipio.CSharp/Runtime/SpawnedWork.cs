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
            // The queue's context is captured: when the inner task completes in the same queue (the usual case)
            // .NET runs this inline. Without it (ConfigureAwait(false)) .NET refuses to inline a context-free
            // continuation under a custom SynchronizationContext and sends it through the ThreadPool: a park and a
            // cross-CPU wake per spawn (measured: 6 µs instead of 0.2).
            inner.GetAwaiter().UnsafeOnCompleted(OnInnerCompleted);
        }
    }

    private void OnInnerCompleted() => Finish(_inner!);

    private void Finish(Task inner)
    {
        _inner = null;
        if (inner is Task<T> typed) TrySetFromTask(typed); // its result, exceptions, or cancellation with its own exception
        else if (inner.IsCompletedSuccessfully) TrySetResult(default!);
        else if (inner.IsFaulted) TrySetException(inner.Exception!.InnerExceptions);
        else TrySetFromTask(Rethrow(inner));
    }

    // A Task<T> canceled the way `inner` was, carrying its OperationCanceledException (subtype, message, token):
    // awaiting a canceled task rethrows that exception, and an async method keeps it in its own cancellation.
    private static async Task<T> Rethrow(Task canceled)
    {
        await canceled.ConfigureAwait(false);
        return default!;
    }
}

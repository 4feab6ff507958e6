namespace Scipio.Runtime;

/// <summary>Work spawned on a task queue: the queue item that starts the user's function and the source of the
/// Task the spawner gets back (one object for both). The function runs when the queue gets to it, not inline.
/// Until it finishes it holds a slot in its shard's <see cref="SpawnedWorkList"/>, so that a shard that stops can
/// end it.</summary>
internal sealed class SpawnedWork<T> : TaskCompletionSource<T>, IShardWorkItem, ISpawned
{
    private Func<Task>? _work;
    private Task? _inner;
    private readonly int _slot;

    /// <param name="work">The user's function; a <c>Func&lt;Task&lt;T&gt;&gt;</c> or, for T = bool standing in
    /// for no result, a <c>Func&lt;Task&gt;</c>.</param>
    /// <param name="list">The shard's list of unfinished spawned work.</param>
    public SpawnedWork(Func<Task> work, SpawnedWorkList list)
    {
        _work = work;
        _slot = list.Add(this);
    }

    /// <summary>The user's function, for a stall report.</summary>
    public object Subject => (object?)_work ?? this;

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
            Unlist();
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

    public void Abandon(Exception? fault)
    {
        if (fault is null) TrySetCanceled();
        else TrySetException(fault);
    }

    private void OnInnerCompleted() => Finish(_inner!);

    /// <summary>Leaves the shard's list (on the shard: the work finishes there).</summary>
    private void Unlist() => ShardExecutor.Current?.Spawned.Remove(_slot, this);

    private void Finish(Task inner)
    {
        _inner = null;
        Unlist();
        TaskOutcome.CopyTo(this, inner);
    }
}

/// <summary>How the Task a user gets back takes on the outcome of the Task their function returned.</summary>
internal static class TaskOutcome
{
    /// <summary>Completes <paramref name="target"/> as <paramref name="inner"/> completed: its result (default for a
    /// non-generic Task standing in for none), its exceptions, or its cancellation with its own exception.</summary>
    public static void CopyTo<T>(TaskCompletionSource<T> target, Task inner)
    {
        if (inner is Task<T> typed) target.TrySetFromTask(typed);
        else if (inner.IsCompletedSuccessfully) target.TrySetResult(default!);
        else if (inner.IsFaulted) target.TrySetException(inner.Exception!.InnerExceptions);
        else target.TrySetFromTask(Rethrow<T>(inner));
    }

    // A Task<T> canceled the way `inner` was, carrying its OperationCanceledException (subtype, message, token):
    // awaiting a canceled task rethrows that exception, and an async method keeps it in its own cancellation.
    private static async Task<T> Rethrow<T>(Task canceled)
    {
        await canceled.ConfigureAwait(false);
        return default!;
    }
}

/// <summary>Spawned work as its shard's list sees it.</summary>
internal interface ISpawned
{
    /// <summary>The shard stopped before the work finished: its Task ends canceled, or faulted with
    /// <paramref name="fault"/> when the shard (or its pool) stopped because of it.</summary>
    void Abandon(Exception? fault);
}

/// <summary>The shard's unfinished spawned work: a slot each (O(1) in and out, nothing allocated in steady state).
/// When the shard stops, what is left will never run again: <see cref="AbandonAll"/> ends those Tasks, so that
/// nobody awaiting them — off the shard, or on another shard — waits forever.</summary>
internal sealed class SpawnedWorkList
{
    private readonly SlotTable<ISpawned> _slots = new();

    public int Add(ISpawned work) => _slots.Add(work);

    public void Remove(int slot, ISpawned work)
    {
        if (ReferenceEquals(_slots[slot], work)) _slots.Remove(slot);
    }

    /// <summary>Ends every unfinished spawned work's Task: canceled, or faulted with <paramref name="fault"/> (off
    /// the shard: continuations may run inline).</summary>
    public void AbandonAll(Exception? fault)
    {
        for (int slot = 0; slot < _slots.Capacity; slot++)
        {
            if (_slots[slot] is not { } work) continue;
            _slots.Remove(slot);
            work.Abandon(fault);
        }
    }
}

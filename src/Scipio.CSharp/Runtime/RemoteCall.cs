namespace Scipio.Runtime;

/// <summary>Work submitted to one shard of a pool (<see cref="ShardPool.SubmitTo{T}"/>,
/// <see cref="Shard.SubmitTo{T}"/>), and the Task its caller gets back: one object for the request, the work item,
/// the reply and the Task. From a shard of the pool it travels both ways through the pool's rings, and its Task
/// completes on the caller's own shard, where the caller awaits it. From any other thread it goes through the
/// target's inbox, and its Task completes on the target with continuations run asynchronously (never on the
/// target's thread).</summary>
internal sealed class RemoteCall<T> : TaskCompletionSource<T>, ICrossShardItem, IShardWorkItem, ISpawned
{
    private readonly ShardPool _pool;
    private readonly int _caller; // the calling shard's index, -1 for a thread outside the pool
    private Func<Task>? _work;
    private Task? _inner;
    private int _slot = -1; // in the target's list of unfinished work while it runs there

    public RemoteCall(ShardPool pool, int caller, Func<Task> work)
        : base(caller < 0 ? TaskCreationOptions.RunContinuationsAsynchronously : TaskCreationOptions.None)
    {
        _pool = pool;
        _caller = caller;
        _work = work;
    }

    /// <summary>On the target (request) or back on the caller (reply).</summary>
    public void Arrive(ShardExecutor at)
    {
        if (_work is not null) Accept(at);
        else Reply();
    }

    /// <summary>The target takes the call: it runs in the target's default queue, and a stopping target ends it.</summary>
    public void Accept(ShardExecutor target)
    {
        _slot = target.Spawned.Add(this);
        target.DefaultQueue.EnqueueLocal(new WorkItem(this, null));
    }

    public void Execute()
    {
        var work = _work!;
        _work = null;
        try
        {
            _inner = work() ?? throw new InvalidOperationException("The submitted function returned null instead of a Task.");
        }
        catch (Exception e)
        {
            _inner = System.Threading.Tasks.Task.FromException(e);
        }
        if (_inner.IsCompleted) Done();
        // The target queue's context is captured, so the continuation runs on the target (see SpawnedWork).
        else _inner.GetAwaiter().UnsafeOnCompleted(Done);
    }

    /// <summary>On the target: the work finished. Its outcome goes back to the caller's shard, or, for a caller
    /// outside the pool, completes the Task here.</summary>
    private void Done()
    {
        var target = ShardExecutor.Current!;
        target.Spawned.Remove(_slot, this);
        if (_caller >= 0) _pool.Transport.Send(target.Id, _caller, this);
        else Reply();
    }

    private void Reply()
    {
        TaskOutcome.CopyTo(this, _inner!);
        _pool.OnCallEnded();
    }

    public void Abandon(Exception? fault)
    {
        bool ended = fault is null ? TrySetCanceled() : TrySetException(fault);
        if (ended) _pool.OnCallEnded();
    }
}

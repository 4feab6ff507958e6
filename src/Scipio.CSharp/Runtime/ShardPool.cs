using System.Runtime.ExceptionServices;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio;

/// <summary>Shards in a line: one per CPU by default, each pinned as its <see cref="PoolPlacement"/> says, with
/// lock-free rings between every pair for calls (<see cref="SubmitTo{T}"/>, <see cref="Shard.SubmitTo{T}"/>). In a
/// pool, <see cref="Shard.Id"/> is the shard's index, 0 to <see cref="Count"/> − 1, and <see cref="Shard.Pool"/> is
/// the pool.</summary>
/// <remarks>A fault in a shard's loop (an exception thrown out of a callback posted to a task queue) stops the whole
/// pool: pending calls end with that exception, and <see cref="DisposeAsync()"/> rethrows it. Nothing hangs.</remarks>
public sealed class ShardPool : IAsyncDisposable
{
    private static int s_nextPool;
    private static readonly Action<object?> s_arrive = static call => ((ICrossShardItem)call!).Arrive(ShardExecutor.Current!);
    private readonly ShardExecutor[] _shards;
    private readonly Thread[] _threads;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _running, _outstanding, _disposing;
    private Exception? _fault;

    private ShardPool(int count, int[][] cpuSets, ShardOptions perShard)
    {
        Count = count;
        Cpus = cpuSets.Select(set => set.Length == 1 ? set[0] : -1).ToArray();
        Transport = new CrossShardTransport(count);
        _shards = new ShardExecutor[count];
        _threads = new Thread[count];
        _running = count;
        int pool = Interlocked.Increment(ref s_nextPool);
        var started = new CountdownEvent(count);
        var failures = new Exception?[count];
        for (int i = 0; i < count; i++)
        {
            int index = i;
            _threads[i] = new Thread(() => ShardThread(index, cpuSets[index], perShard, started, failures))
            {
                IsBackground = true,
                Name = perShard.Name is { } name ? $"{name}-{i}" : $"pool{pool}-shard-{i}",
            };
            _threads[i].UnsafeStart();
        }
        started.Wait();
        if (failures.FirstOrDefault(f => f is not null) is { } failure)
        {
            foreach (var shard in _shards) shard?.RequestStop();
            foreach (var thread in _threads) thread.Join();
            ExceptionDispatchInfo.Throw(failure);
        }
    }

    /// <summary>Starts the shards, each on its own thread, pinned as <see cref="ShardPoolOptions.Placement"/> says;
    /// returns once every shard runs.</summary>
    /// <exception cref="ArgumentException">The placement cannot be honoured: more shards than allowed CPUs for a
    /// placement that pins one shard per CPU, or a CPU the process may not use. The message says what is allowed.</exception>
    /// <exception cref="IoUringUnavailableException">io_uring cannot be used by this process.</exception>
    public static ShardPool Start(ShardPoolOptions? options = null)
    {
        options ??= new ShardPoolOptions();
        var cpuSets = options.Placement.Resolve(options.Shards);
        return new ShardPool(cpuSets.Length, cpuSets, options.PerShard);
    }

    /// <summary>The number of shards.</summary>
    public int Count { get; }

    /// <summary>The CPU each shard is pinned to, by shard index; -1 where a shard is not pinned to exactly one CPU.</summary>
    public IReadOnlyList<int> Cpus { get; }

    internal CrossShardTransport Transport { get; }

    internal ShardExecutor[] Shards => _shards;

    private void ShardThread(int index, int[] cpus, ShardOptions options, CountdownEvent started, Exception?[] failures)
    {
        ShardExecutor executor;
        try
        {
            Scipio.Interop.Cpus.PinCurrentThread(cpus.Length > 0 ? cpus : Scipio.Interop.Cpus.AllowedAtStart);
            executor = new ShardExecutor(index, options, cpus.Length == 1 ? cpus[0] : -1, this);
            _shards[index] = executor;
        }
        catch (Exception e)
        {
            failures[index] = e;
            started.Signal();
            return;
        }
        started.Signal();
        Exception? fault = null;
        try
        {
            executor.RunLoop();
        }
        catch (Exception e)
        {
            fault = e;
        }
        if (fault is not null) Fail(fault);
        executor.Dispose(Volatile.Read(ref _fault));
        if (Interlocked.Decrement(ref _running) == 0) Stopped();
    }

    /// <summary>A shard's loop faulted: the pool stops, and everything pending ends with the fault.</summary>
    private void Fail(Exception fault)
    {
        Interlocked.CompareExchange(ref _fault, fault, null);
        foreach (var shard in _shards) shard?.RequestStop();
    }

    /// <summary>Every shard has stopped: what is still on its way ends. The stopped flag goes up before the inboxes
    /// are emptied, so a call posted concurrently from another thread is either emptied here or sees the flag and
    /// empties its target's inbox itself (<see cref="Submit{T}"/>).</summary>
    private void Stopped()
    {
        Transport.AbandonAll(_fault);
        if (_fault is { } fault) _stopped.TrySetException(fault);
        else _stopped.TrySetResult();
        foreach (var shard in _shards) shard.AbandonInbox(_fault);
    }

    /// <summary>Runs <paramref name="work"/> on shard <paramref name="shard"/>, in its default task queue; the
    /// result or exception (with its own type) comes back in the returned Task. Any thread: from a shard of this
    /// pool it goes through the pool's rings and completes on the calling shard; from elsewhere it goes through the
    /// target's inbox.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="shard"/> is not 0 to Count − 1.</exception>
    /// <exception cref="ObjectDisposedException">The pool is being disposed (or has stopped).</exception>
    public Task<T> SubmitTo<T>(int shard, Func<Task<T>> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        return Submit<T>(shard, work);
    }

    /// <summary>Runs <paramref name="work"/> on shard <paramref name="shard"/>, in its default task queue; its
    /// exception (with its own type) comes back in the returned Task.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="shard"/> is not 0 to Count − 1.</exception>
    /// <exception cref="ObjectDisposedException">The pool is being disposed (or has stopped).</exception>
    public Task SubmitTo(int shard, Func<Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        return Submit<bool>(shard, work);
    }

    /// <summary>Runs <paramref name="work"/> on every shard; the results in shard order.</summary>
    /// <exception cref="ObjectDisposedException">The pool is being disposed (or has stopped).</exception>
    public Task<T[]> RunOnAll<T>(Func<Task<T>> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var calls = new Task<T>[Count];
        for (int i = 0; i < Count; i++) calls[i] = Submit<T>(i, work);
        return Task.WhenAll(calls);
    }

    /// <summary>Runs <paramref name="work"/> on every shard; completes when all have.</summary>
    /// <exception cref="ObjectDisposedException">The pool is being disposed (or has stopped).</exception>
    public Task RunOnAll(Func<Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var calls = new Task[Count];
        for (int i = 0; i < Count; i++) calls[i] = Submit<bool>(i, work);
        return Task.WhenAll(calls);
    }

    private Task<T> Submit<T>(int shard, Func<Task> work)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(shard);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(shard, Count);
        Interlocked.Increment(ref _outstanding);
        if (Volatile.Read(ref _disposing) != 0 || _stopped.Task.IsCompleted)
        {
            OnCallEnded();
            throw new ObjectDisposedException(nameof(ShardPool), "The shard pool is being disposed or has stopped: it takes no more work.");
        }
        var current = ShardExecutor.Current;
        if (current is not null && current.Pool == this)
        {
            var call = new RemoteCall<T>(this, current.Id, work);
            if (shard == current.Id) call.Accept(current);
            else Transport.Send(current.Id, shard, call);
            return call.Task;
        }
        var remote = new RemoteCall<T>(this, -1, work);
        var target = _shards[shard];
        target.PostFromAnotherThread(null, new WorkItem(s_arrive, remote));
        if (_stopped.Task.IsCompleted) target.AbandonInbox(_fault); // the pool stopped meanwhile: nobody will take it
        return remote.Task;
    }

    /// <summary>A call ended (completed, faulted, canceled or abandoned); the last one of a disposing pool stops the
    /// shards, right here (not through a continuation that would need a ThreadPool thread).</summary>
    internal void OnCallEnded()
    {
        if (Interlocked.Decrement(ref _outstanding) == 0 && Volatile.Read(ref _disposing) != 0) StopShards();
    }

    private void StopShards()
    {
        foreach (var shard in _shards) shard.RequestStop();
    }

    /// <summary>Stops taking work, lets the work already submitted finish, then stops every shard and joins its
    /// thread. Work submitted meanwhile gets <see cref="ObjectDisposedException"/>. Rethrows the fault that stopped
    /// the pool, if one did.</summary>
    /// <remarks>Work that submitted calls spawned and did not await is abandoned when the shards stop: its Tasks end
    /// canceled. Calling it on a shard of the pool would wait for that shard: it throws
    /// <see cref="InvalidOperationException"/>.</remarks>
    public ValueTask DisposeAsync() => DisposeAsync(CancellationToken.None);

    /// <summary>As <see cref="DisposeAsync()"/>, with a limit on the wait for submitted work: once
    /// <paramref name="cancellationToken"/> is canceled the shards stop at their next loop turn whatever is still
    /// running, and that work is abandoned — its Tasks end canceled, as those of work the shards spawned do. For a
    /// host's shutdown timeout.</summary>
    /// <remarks>A shard blocked in a synchronous call never reaches its next loop turn: this waits for it. Canceling
    /// does not make the call throw; it returns once the shards have stopped.</remarks>
    /// <exception cref="InvalidOperationException">Called on a shard of this pool.</exception>
    public async ValueTask DisposeAsync(CancellationToken cancellationToken)
    {
        if (ShardExecutor.Current?.Pool == this)
            throw new InvalidOperationException("A shard pool cannot be disposed from one of its own shards: it would wait for itself. Dispose it from the code that started it.");
        // The disposing flag and the count of calls are each written before the other is read (full fences), so
        // either this thread or the last call's end sees both and stops the shards (twice is harmless).
        if (Interlocked.Exchange(ref _disposing, 1) == 0 && Volatile.Read(ref _outstanding) == 0) StopShards();
        using var giveUp = cancellationToken.UnsafeRegister(static pool => ((ShardPool)pool!).StopShards(), this);
        try
        {
            await _stopped.Task.ConfigureAwait(false);
        }
        finally
        {
            foreach (var thread in _threads) thread.Join();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"ShardPool ({Count} shards on CPUs {string.Join(",", Cpus)})";
}

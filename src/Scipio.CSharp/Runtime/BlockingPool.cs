using System.Collections.Concurrent;
using Scipio.Interop;

namespace Scipio.Runtime;

/// <summary>Threads for blocking work (<see cref="Shard.SpawnBlocking{T}"/>), kept apart from the ThreadPool so that
/// blocking calls neither starve it nor run on a shard. Threads start on demand, up to <see cref="MaxThreads"/>,
/// and leave after a minute idle. They run on all the CPUs the process may use, not on the pinned CPU of the shard
/// that happened to start them.</summary>
internal sealed class BlockingPool
{
    public static BlockingPool Shared { get; } = new(Math.Max(4, Environment.ProcessorCount * 2));

    private static readonly TimeSpan s_idleTimeout = TimeSpan.FromMinutes(1);
    private readonly ConcurrentQueue<IShardWorkItem> _work = new();
    private readonly SemaphoreSlim _available = new(0);
    private int _threads, _idle;

    private BlockingPool(int maxThreads) => MaxThreads = maxThreads;

    public int MaxThreads { get; }

    public void Queue(IShardWorkItem item)
    {
        _work.Enqueue(item);
        if (Volatile.Read(ref _idle) == 0) TryAddThread();
        _available.Release();
    }

    private void TryAddThread()
    {
        int n = Volatile.Read(ref _threads);
        while (n < MaxThreads)
        {
            if (Interlocked.CompareExchange(ref _threads, n + 1, n) == n)
            {
                new Thread(Work) { IsBackground = true, Name = "scipio-blocking" }.UnsafeStart();
                return;
            }
            n = Volatile.Read(ref _threads);
        }
    }

    private void Work()
    {
        Cpus.PinCurrentThread(Cpus.AllowedAtStart); // undo the pin inherited from a shard thread
        while (true)
        {
            Interlocked.Increment(ref _idle);
            bool got = _available.Wait(s_idleTimeout);
            Interlocked.Decrement(ref _idle);
            if (!got)
            {
                Interlocked.Decrement(ref _threads);
                if (_work.IsEmpty) return;
                Interlocked.Increment(ref _threads); // work raced in: keep going
                continue;
            }
            if (_work.TryDequeue(out var item)) item.Execute();
        }
    }
}

/// <summary>A blocking function and the Task of its result. The Task completes on the helper thread; an await of it
/// on a shard resumes there through the task queue's SynchronizationContext (inbox, then wake).</summary>
internal sealed class BlockingWork<T>(Func<T> work) : TaskCompletionSource<T>, IShardWorkItem
{
    public void Execute()
    {
        try
        {
            TrySetResult(work());
        }
        catch (OperationCanceledException e)
        {
            TrySetCanceled(e.CancellationToken);
        }
        catch (Exception e)
        {
            TrySetException(e);
        }
    }
}

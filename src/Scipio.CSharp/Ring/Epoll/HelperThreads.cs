using System.Collections.Concurrent;
using Scipio.Interop;

namespace Scipio.Ring.Epoll;

/// <summary>A shard's helper threads for the epoll backend: epoll cannot wait for a regular file, so its reads and
/// writes (O_DIRECT too), opens, syncs and metadata calls run here, as io_uring's io-wq workers would run them, and
/// their results go back to the shard through <paramref name="done"/>. Threads start on demand up to
/// <see cref="MaxThreads"/>, on all the CPUs the process may use (not the shard's pinned one), and leave after a
/// while idle.</summary>
internal sealed class HelperThreads(int shardId, Action<BlockingCall> done)
{
    /// <summary>Enough for a few blocking calls at once (a read on a FIFO may block one for good) without a thread
    /// per request.</summary>
    public const int MaxThreads = 8;

    private static readonly TimeSpan s_idleTimeout = TimeSpan.FromSeconds(30);
    private readonly ConcurrentQueue<BlockingCall> _work = new();
    private readonly SemaphoreSlim _available = new(0);
    private int _threads, _idle;
    private volatile bool _stopping;

    public void Queue(BlockingCall call)
    {
        _work.Enqueue(call);
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
                new Thread(Work) { IsBackground = true, Name = $"scipio-epoll-{shardId}" }.UnsafeStart();
                return;
            }
            n = Volatile.Read(ref _threads);
        }
    }

    private void Work()
    {
        Cpus.PinCurrentThread(Cpus.AllowedAtStart); // not the shard's CPU, inherited from the shard thread
        while (!_stopping)
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
            if (_work.TryDequeue(out var call))
            {
                call.Run();
                done(call);
            }
        }
    }

    /// <summary>Lets idle threads leave at once (the shard has drained what it submitted).</summary>
    public void Stop()
    {
        _stopping = true;
        _available.Release(MaxThreads);
    }
}

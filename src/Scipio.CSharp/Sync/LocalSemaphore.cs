using Scipio.Runtime;

namespace Scipio.Sync;

/// <summary>A counting semaphore for one shard: limits how many pieces of work on the shard do something at once
/// (in-flight requests, open files, buffered bytes). The shard-local counterpart of <see cref="SemaphoreSlim"/>:
/// no locks, no atomics, and waiting allocates nothing in steady state.</summary>
/// <remarks>
/// <para><b>Shard-local.</b> The semaphore belongs to the shard that created it; every member must be called on
/// that shard, and a wait must be awaited there. Elsewhere they throw <see cref="InvalidOperationException"/>. To
/// coordinate shards, send messages instead (Scipio.Channels).</para>
/// <para><b>FIFO.</b> Waiters are served in the order they began to wait. <see cref="Release"/> hands permits
/// straight to the waiters at the head of the queue, so a later <see cref="TryWait"/> or <see cref="WaitAsync"/>
/// never overtakes a waiter: while anyone waits, <see cref="CurrentCount"/> is 0.</para>
/// <para><b>Cancellation.</b> A wait whose token is canceled ends with <see cref="OperationCanceledException"/>
/// and never consumes a permit: it leaves the queue, and a permit released to it at the same moment (its token
/// canceled on another thread, the cancellation not yet on the shard) goes to the next waiter instead. A wait that
/// was granted before its token was canceled succeeds and holds its permit.</para>
/// <para>A granted waiter resumes in the task queue it was waiting from, when that queue next runs: never inline
/// inside <see cref="Release"/>.</para>
/// </remarks>
public sealed class LocalSemaphore : IWaiterOwner
{
    private readonly ShardExecutor _owner;
    private WaiterQueue _waiters;
    private int _count;

    /// <summary>Creates a semaphore with <paramref name="initialCount"/> permits, owned by the calling shard.</summary>
    /// <param name="initialCount">Permits available at first; zero or more. There is no maximum: each
    /// <see cref="Release"/> adds permits.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="initialCount"/> is negative.</exception>
    /// <exception cref="InvalidOperationException">Not called on a shard.</exception>
    public LocalSemaphore(int initialCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(initialCount);
        _owner = ShardAffinity.Creator(nameof(LocalSemaphore));
        _count = initialCount;
    }

    /// <summary>The permits available now; 0 while anyone waits.</summary>
    /// <exception cref="InvalidOperationException">Read off the semaphore's shard.</exception>
    public int CurrentCount
    {
        get
        {
            ShardAffinity.Check(_owner, "LocalSemaphore.CurrentCount");
            return _count;
        }
    }

    /// <summary>Takes a permit if one is available now, without waiting.</summary>
    /// <returns>True if a permit was taken; false if none was available (including while others wait: they come
    /// first).</returns>
    /// <exception cref="InvalidOperationException">Called off the semaphore's shard.</exception>
    public bool TryWait()
    {
        ShardAffinity.Check(_owner, "LocalSemaphore.TryWait");
        if (_count == 0) return false;
        _count--;
        return true;
    }

    /// <summary>Takes a permit: at once (completing synchronously) if one is available, otherwise after every
    /// earlier waiter has been served and a permit is released.</summary>
    /// <param name="cancellationToken">Ends the wait, without a permit, while it is still queued.</param>
    /// <remarks>FIFO; the continuation runs in the calling task queue; allocation-free in steady state. A token that
    /// is already canceled fails the call even when a permit is available, as <see cref="SemaphoreSlim"/> does.</remarks>
    /// <exception cref="OperationCanceledException">(When awaited.) <paramref name="cancellationToken"/> was
    /// canceled before the wait was served; no permit was taken.</exception>
    /// <exception cref="InvalidOperationException">Called, or awaited, off the semaphore's shard.</exception>
    public ValueTask WaitAsync(CancellationToken cancellationToken = default)
    {
        ShardAffinity.Check(_owner, "LocalSemaphore.WaitAsync");
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
        if (_count > 0)
        {
            _count--;
            return default;
        }
        var waiter = LocalWaiter.Rent(_owner, this, 0);
        _waiters.Enqueue(waiter);
        waiter.WatchCancellation(cancellationToken);
        return new ValueTask(waiter, waiter.Version);
    }

    /// <summary>Returns <paramref name="count"/> permits: they go to the waiters at the head of the queue, one each,
    /// in order; what is left is added to <see cref="CurrentCount"/>.</summary>
    /// <param name="count">How many permits; 1 or more.</param>
    /// <remarks>Served waiters resume later, in their own task queues, not inside this call. A queued waiter whose
    /// token has been canceled is skipped (it ends canceled) and its permit goes to the next.</remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is less than 1.</exception>
    /// <exception cref="SemaphoreFullException">The count would exceed <see cref="int.MaxValue"/>.</exception>
    /// <exception cref="InvalidOperationException">Called off the semaphore's shard.</exception>
    public void Release(int count = 1)
    {
        ShardAffinity.Check(_owner, "LocalSemaphore.Release");
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        // Exact: while anyone waits the count is 0, and otherwise all of count is added to it.
        if (count > int.MaxValue - _count)
            throw new SemaphoreFullException($"Releasing {count} permits would take LocalSemaphore.CurrentCount ({_count}) past int.MaxValue.");
        while (count > 0 && !_waiters.IsEmpty)
        {
            var waiter = _waiters.Dequeue();
            if (waiter.CancellationRequested)
            {
                waiter.Cancel();
                continue;
            }
            waiter.Grant(null);
            count--;
        }
        _count += count;
    }

    void IWaiterOwner.RemoveCanceled(LocalWaiter waiter)
    {
        _waiters.Remove(waiter);
        waiter.Cancel();
    }
}

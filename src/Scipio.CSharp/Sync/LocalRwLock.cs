using Scipio.Runtime;

namespace Scipio.Sync;

/// <summary>A reader-writer lock for one shard: any number of readers at once, or one writer. Useful across
/// awaits (a reader that awaits I/O keeps its hold), where code on a shard needs no lock otherwise. No locks, no
/// atomics; waiting and holding allocate nothing in steady state.</summary>
/// <remarks>
/// <para><b>Shard-local.</b> The lock belongs to the shard that created it; every member, and disposing a hold,
/// must happen on that shard (elsewhere: <see cref="InvalidOperationException"/>). Holds are not reentrant and
/// not tied to a task: whoever has the releaser may dispose it.</para>
/// <para><b>FIFO, writers not starved.</b> Requests are served in arrival order. Readers share the lock only with
/// the readers next to them in the queue: once a writer waits, readers that arrive later queue behind it, so a
/// stream of readers cannot keep a writer out. When a writer releases, the run of readers at the head of the queue
/// goes in together.</para>
/// <para><b>Cancellation.</b> A request whose token is canceled while it waits ends with
/// <see cref="OperationCanceledException"/> and never holds the lock; if it was a writer, the readers queued
/// behind it go ahead when the lock allows.</para>
/// <para><b>Releasing.</b> Disposing the returned <see cref="IDisposable"/> ends the hold; disposing it again
/// does nothing. Releasers are pooled (that is what makes holding allocation-free): once disposed, drop it — the
/// lock hands the same object out again only after several later holds, so a stray second Dispose is harmless
/// unless it comes after that.</para>
/// </remarks>
public sealed class LocalRwLock : IWaiterOwner, IReleaseTarget
{
    private const int Read = 0, Write = 1;

    private readonly ShardExecutor _owner;
    private readonly ReleaserPool _releasers;
    private WaiterQueue _waiters;
    private int _readers;
    private bool _writer;

    /// <summary>Creates an unlocked lock owned by the calling shard.</summary>
    /// <exception cref="InvalidOperationException">Not called on a shard.</exception>
    public LocalRwLock()
    {
        _owner = ShardAffinity.Creator(nameof(LocalRwLock));
        _releasers = new ReleaserPool(_owner, this, "Disposing a LocalRwLock hold");
    }

    /// <summary>How many readers hold the lock now.</summary>
    /// <exception cref="InvalidOperationException">Read off the lock's shard.</exception>
    public int CurrentReaders
    {
        get
        {
            ShardAffinity.Check(_owner, "LocalRwLock.CurrentReaders");
            return _readers;
        }
    }

    /// <summary>Whether a writer holds the lock now.</summary>
    /// <exception cref="InvalidOperationException">Read off the lock's shard.</exception>
    public bool IsWriteLocked
    {
        get
        {
            ShardAffinity.Check(_owner, "LocalRwLock.IsWriteLocked");
            return _writer;
        }
    }

    /// <summary>Takes a read hold: at once (completing synchronously) when no writer holds the lock and nobody
    /// waits; otherwise once every earlier request has been served and no writer holds it.</summary>
    /// <param name="cancellationToken">Ends the wait, without a hold, while it is still queued.</param>
    /// <returns>The hold: dispose it to release (a second Dispose does nothing).</returns>
    /// <remarks>FIFO behind any waiting writer; the continuation runs in the calling task queue.</remarks>
    /// <exception cref="OperationCanceledException">(When awaited.) The token was canceled before the request was
    /// served.</exception>
    /// <exception cref="InvalidOperationException">Called, or awaited, off the lock's shard.</exception>
    public ValueTask<IDisposable> ReadLockAsync(CancellationToken cancellationToken = default)
    {
        ShardAffinity.Check(_owner, "LocalRwLock.ReadLockAsync");
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<IDisposable>(cancellationToken);
        if (!_writer && _waiters.IsEmpty)
        {
            _readers++;
            return new ValueTask<IDisposable>(_releasers.Rent(Read));
        }
        return Enqueue(Read, cancellationToken);
    }

    /// <summary>Takes the write hold: at once (completing synchronously) when nobody holds the lock and nobody
    /// waits; otherwise once every earlier request has been served and the readers have left.</summary>
    /// <param name="cancellationToken">Ends the wait, without a hold, while it is still queued.</param>
    /// <returns>The hold: dispose it to release (a second Dispose does nothing).</returns>
    /// <remarks>From the moment it waits, readers that arrive later queue behind it. The continuation runs in the
    /// calling task queue.</remarks>
    /// <exception cref="OperationCanceledException">(When awaited.) The token was canceled before the request was
    /// served.</exception>
    /// <exception cref="InvalidOperationException">Called, or awaited, off the lock's shard.</exception>
    public ValueTask<IDisposable> WriteLockAsync(CancellationToken cancellationToken = default)
    {
        ShardAffinity.Check(_owner, "LocalRwLock.WriteLockAsync");
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<IDisposable>(cancellationToken);
        if (!_writer && _readers == 0 && _waiters.IsEmpty)
        {
            _writer = true;
            return new ValueTask<IDisposable>(_releasers.Rent(Write));
        }
        return Enqueue(Write, cancellationToken);
    }

    private ValueTask<IDisposable> Enqueue(int kind, CancellationToken cancellationToken)
    {
        var waiter = LocalWaiter.Rent(_owner, this, kind);
        _waiters.Enqueue(waiter);
        waiter.WatchCancellation(cancellationToken);
        return new ValueTask<IDisposable>(waiter, waiter.Version);
    }

    void IReleaseTarget.Release(int kind)
    {
        if (kind == Read) _readers--;
        else _writer = false;
        Serve();
    }

    void IWaiterOwner.RemoveCanceled(LocalWaiter waiter)
    {
        _waiters.Remove(waiter);
        waiter.Cancel();
        Serve(); // a canceled writer may have held back readers
    }

    /// <summary>Grants what the head of the queue allows: one writer, or the run of readers up to the next writer.</summary>
    private void Serve()
    {
        while (_waiters.First is { } head)
        {
            if (head.CancellationRequested)
            {
                _waiters.Dequeue();
                head.Cancel();
                continue;
            }
            if (_writer) return;
            if (head.Kind == Write)
            {
                if (_readers > 0) return;
                _waiters.Dequeue();
                _writer = true;
                head.Grant(_releasers.Rent(Write));
                return;
            }
            _waiters.Dequeue();
            _readers++;
            head.Grant(_releasers.Rent(Read));
        }
    }
}

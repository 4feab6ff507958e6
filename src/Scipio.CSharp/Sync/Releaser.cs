namespace Scipio.Sync;

/// <summary>The <see cref="IDisposable"/> a lock or gate hands out for one hold: disposing it ends the hold once;
/// disposing it again does nothing. Pooled by its <see cref="ReleaserPool"/>, so that holding allocates nothing in
/// steady state.</summary>
internal sealed class Releaser(ReleaserPool pool) : IDisposable
{
    private bool _held;
    private int _kind;

    /// <summary>Link of the pool's free list.</summary>
    public Releaser? NextFree;

    /// <summary>Starts a hold (the pool hands the releaser out).</summary>
    public void Take(int kind)
    {
        _held = true;
        _kind = kind;
    }

    /// <summary>Ends the hold; a no-op when it has ended already.</summary>
    /// <exception cref="InvalidOperationException">Called off the shard that owns the lock or gate.</exception>
    public void Dispose()
    {
        ShardAffinity.Check(pool.Executor, pool.Member);
        if (!_held) return;
        _held = false;
        pool.Return(this);
        pool.Target.Release(_kind);
    }
}

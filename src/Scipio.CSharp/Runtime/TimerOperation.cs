namespace Scipio.Runtime;

/// <summary>A pooled sleep: an entry in the shard's timer heap, fired by the run loop when due. The shard's
/// kernel wait (io_uring_enter with a timeout at the next deadline) is what wakes it when idle.</summary>
internal sealed class TimerOperation(ShardExecutor owner, int id) : ShardOperation(owner)
{
    /// <summary>Index in the shard's timer table: the Id in the heap entry.</summary>
    public int Id { get; } = id;

    /// <summary>True while waiting in the heap.</summary>
    public bool Armed { get; private set; }

    /// <summary>Counts the uses, so a heap entry left by a canceled use never fires a later one (the 16-bit
    /// Version could wrap around while a long sleep's entry waits in the heap).</summary>
    public int Arming { get; private set; }

    public TimerOperation Start(CancellationToken ct)
    {
        Armed = true;
        Arming++;
        Begin(ct);
        return this;
    }

    /// <summary>The deadline passed (or the sleep was canceled: result -ECANCELED).</summary>
    public void Fire(int result)
    {
        if (!Armed) return;
        Armed = false;
        Complete(result);
    }

    protected override void OnCancelRequested() => Owner.RequestTimerCancel(this, Version);

    protected override Exception CreateException(int errno, CancellationToken ct) =>
        new OperationCanceledException("Shard.Sleep was canceled.", ct);

    protected override void Reset() => Armed = false;

    protected override void ReturnToPool() => Owner.ReturnTimer(this);
}

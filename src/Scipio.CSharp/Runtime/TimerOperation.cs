namespace Scipio.Runtime;

/// <summary>A pooled sleep: an entry in the shard's timer heap under its <see cref="Id"/>, fired by the run loop
/// when due, or removed from the heap at once when canceled. The shard's kernel wait (io_uring_enter with a timeout
/// at the next deadline) is what wakes it when idle.</summary>
internal sealed class TimerOperation(ShardExecutor owner) : ShardOperation(owner), ITimerTarget
{
    /// <summary>Slot in the shard's timer table: the id of its heap entry.</summary>
    public int Id { get; set; }

    /// <summary>True while the sleep waits (in the heap, or forever for an infinite one).</summary>
    public bool Armed { get; private set; }

    public TimerOperation Start(CancellationToken ct)
    {
        Armed = true;
        Begin(ct);
        return this;
    }

    void ITimerTarget.OnTimerDue(long nowNs) => Fire(0);

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

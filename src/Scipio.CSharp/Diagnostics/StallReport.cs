namespace Scipio.Diagnostics;

/// <summary>One work item ran past <see cref="ShardOptions.StallThreshold"/> without yielding: which shard, which task
/// queue, how long, and the async method (or spawned function) that did it, by name.</summary>
/// <param name="Shard">The shard's id.</param>
/// <param name="Queue">The task queue's name.</param>
/// <param name="Duration">How long the item ran before it returned to the shard.</param>
/// <param name="Method">The method that ran: the async method whose continuation it was (its state machine tells
/// it), as "Type.Method", or the spawned function's.</param>
public sealed record StallReport(int Shard, string Queue, TimeSpan Duration, string Method)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"Scipio: shard {Shard} stalled {Duration.TotalMilliseconds:0.0} ms in {Method} (task queue '{Queue}') without yielding; " +
        "call Shard.YieldIfNeeded() in long loops, or move blocking work to Shard.SpawnBlocking.";
}

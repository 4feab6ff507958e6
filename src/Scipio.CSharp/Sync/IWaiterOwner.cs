namespace Scipio.Sync;

/// <summary>A primitive that queues <see cref="LocalWaiter"/>s: told on its shard when a waiting waiter's token is
/// canceled, so that it unlinks the waiter (and lets whoever the waiter held back go ahead).</summary>
internal interface IWaiterOwner
{
    /// <summary>Unlinks <paramref name="waiter"/>, still waiting, from the owner's queue; the waiter then ends
    /// canceled. On the owner's shard.</summary>
    void RemoveCanceled(LocalWaiter waiter);
}

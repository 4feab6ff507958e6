namespace Scipio.Runtime;

/// <summary>Something the shard's timer heap wakes: a sleep, a periodic timer's pending wait, a WithTimeout
/// deadline, a timer action. It holds a slot in the shard's timer table (<see cref="ShardExecutor.AddTimer"/>), whose
/// number is its heap entry's id, so that arming, disarming and firing are O(log n) with nothing allocated.</summary>
internal interface ITimerTarget
{
    /// <summary>Its deadline passed (the run loop, on the shard thread, outside any task queue's run): the entry has
    /// left the heap. <paramref name="nowNs"/> is the loop's clock reading.</summary>
    void OnTimerDue(long nowNs);
}

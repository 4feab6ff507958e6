using System.Runtime.CompilerServices;

namespace Scipio.Ring;

/// <summary>What <c>Shard.NeedPreempt</c> reads: two counters in memory that differ when the running queue should
/// yield. For io_uring they are the latency ring's CQ tail (the kernel's) and head (ours): any CQE there — the
/// preemption timer, a latency-sensitive completion — raises it, and reaping lowers it. A backend without a ring
/// points it at a word a timer bumps and one the shard acknowledges. No syscall, no virtual call.</summary>
internal sealed unsafe class PreemptSignal(uint* produced, uint* consumed)
{
    public bool Raised
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref *produced) != *consumed;
    }
}

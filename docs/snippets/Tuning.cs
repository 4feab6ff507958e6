using Scipio;
using Scipio.IO;

namespace Snippets;

// docs/tuning.md.
public static class Tuning
{
    public static ShardPoolOptions Knobs()
    {
        // <snippet:tuning-options>
        var perShard = new ShardOptions
        {
            RingEntries = 1024,                               // default 256: submission entries of the main and poll rings
            PreemptInterval = TimeSpan.FromMilliseconds(1),   // default 1 ms: the time slice
            SpinBeforePark = TimeSpan.FromMicroseconds(100),  // default 0: park at once when idle
            StallThreshold = TimeSpan.FromMilliseconds(5),    // default off: report work items that hold the shard
        };
        var options = new ShardPoolOptions { PerShard = perShard, Placement = PoolPlacement.MaxSpread() };
        // </snippet>
        return options;
    }

    public static async Task<int> Buffers(DmaFile file, long offset)
    {
        // <snippet:tuning-reuse-buffer>
        // One buffer, allocated once and reused for every read: its block stays registered with the rings.
        using DmaBuffer block = file.AllocateBuffer(64 * 1024);
        int total = 0;
        for (int i = 0; i < 100; i++)
            total += await file.ReadAtAsync(block, offset + (long)i * block.Length);
        ShardStats stats = Shard.Stats;
        Console.WriteLine($"{stats.RegisteredBuffers} registered, {stats.FixedBufferIo} fixed-buffer I/Os, " +
                          $"{stats.BufferRegistrationFailures} registration failures");
        // </snippet>
        return total;
    }
}

using Scipio;
using Scipio.IO;

namespace Snippets;

// docs/io-scheduler.md.
public static class IoScheduler
{
    public static async Task TurningItOn()
    {
        // <snippet:io-scheduler-on>
        // Measure the disk once (about 10 s: a scratch file of up to 256 MiB in that directory, removed afterwards)...
        DiskModel model = await DiskModel.MeasureAsync("/var/lib/myapp");
        model.Save("/var/lib/myapp/disk-model.json");
        // ...and load it at every start, or give one by hand:
        //   new DiskModel(readIops: 200_000, writeIops: 150_000, readBandwidth: 2e9, writeBandwidth: 1.5e9,
        //                 readLatency: TimeSpan.FromMicroseconds(80));
        var options = new ShardOptions { DiskModel = DiskModel.Load("/var/lib/myapp/disk-model.json") };

        Shard.Run(async () =>
        {
            var compaction = Shard.CreateTaskQueue("compaction", Shares.Static(100), Latency.NotImportant);
            var queries = Shard.CreateTaskQueue("queries", Shares.Static(100), Latency.Matters(TimeSpan.FromMilliseconds(1)));
            compaction.IoShares = Shares.Static(100); // default: the queue's CPU shares
            queries.IoShares = Shares.Static(400);
            // The queues' DmaFile I/O is now shared 1:4 when both want more than the disk gives.
            await Task.WhenAll(Shard.SpawnInto(compaction, CompactAsync), Shard.SpawnInto(queries, ServeQueriesAsync));
        }, options);
        // </snippet>
    }

    // What the page's example spawns: the reader's own work.
    private static Task CompactAsync() => Task.CompletedTask;
    private static Task ServeQueriesAsync() => Task.CompletedTask;
}

// Many shards: a pool with one shard per CPU (pinned, spread over the machine), calls between shards, and a
// channel from one shard to another. Nothing here takes a lock.
using Scipio;
using Scipio.Channels;

await using var pool = ShardPool.Start(new ShardPoolOptions { Placement = PoolPlacement.MaxSpread() });
Console.WriteLine($"{pool.Count} shards on CPUs {string.Join(", ", pool.Cpus)}");

// Every shard counts its part of the work, then asks shard 0 — which owns the total — to add it. Shard 0's state
// is touched only on shard 0, so it needs no lock.
long total = 0;
long[] seen = await pool.RunOnAll(async () =>
{
    long mine = 0;
    for (int i = Shard.Id; i < 10_000_000; i += Shard.Pool!.Count) mine += i % 7;
    return await Shard.SubmitTo(0, () => Task.FromResult(total += mine));
});
Console.WriteLine($"total {total} (shard 0 saw it grow: {string.Join(" → ", seen.Order())})");

// A channel from the last shard to shard 0: a System.Threading.Channels.Channel<int> whose writer binds to the
// shard that writes first and whose reader to the shard that reads first.
var channel = SharedChannel.CreateBounded<int>(1024);
int last = pool.Count - 1;
Task producer = pool.SubmitTo(last, async () =>
{
    for (int i = 1; i <= 1_000_000; i++) await channel.Writer.WriteAsync(i);
    channel.Writer.Complete();
});
long sum = await pool.SubmitTo(0, async () =>
{
    long s = 0;
    await foreach (int x in channel.Reader.ReadAllAsync()) s += x;
    return s;
});
await producer;
Console.WriteLine($"shard {last} sent 1,000,000 numbers to shard 0, which added them up to {sum:N0}");

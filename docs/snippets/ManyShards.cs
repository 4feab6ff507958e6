using System.Threading.Channels;
using Scipio;
using Scipio.Channels;
using Scipio.Sync;

namespace Snippets;

// docs/many-shards.md. The pool fragments run off the pool (Main, say); the others on a shard.
public static class ManyShards
{
    public static async Task<long> PoolAndOwnership()
    {
        // <snippet:pool-start>
        var options = new ShardPoolOptions
        {
            Placement = PoolPlacement.MaxSpread(), // the default: one CPU per shard, as far apart as possible
            PerShard = new ShardOptions { PreemptInterval = TimeSpan.FromMilliseconds(1) },
            // Shards = 8,                         // default: one per CPU the placement may use
        };
        await using ShardPool pool = ShardPool.Start(options);
        Console.WriteLine($"{pool.Count} shards on CPUs {string.Join(", ", pool.Cpus)}");
        // </snippet>

        // <snippet:pool-ownership>
        // Each shard owns the keys that hash to it: only that shard touches their values, so nothing needs a lock.
        var tables = new Dictionary<string, long>[pool.Count];
        await pool.RunOnAll(() =>
        {
            tables[Shard.Id] = new Dictionary<string, long>(); // each table made on, and used by, its own shard
            return Task.CompletedTask;
        });

        int OwnerOf(string key) => (int)((uint)key.GetHashCode() % (uint)pool.Count);

        Task<long> IncrementAsync(string key) => pool.SubmitTo(OwnerOf(key), () =>
        {
            Dictionary<string, long> table = tables[Shard.Id];
            long value = table.GetValueOrDefault(key) + 1;
            table[key] = value;
            return Task.FromResult(value);
        });

        long hits = await IncrementAsync("home-page"); // from any thread; on a shard, Shard.SubmitTo does the same
        // </snippet>

        // <snippet:pool-shared-channel>
        // A channel from shard 0 to the last shard: its writer binds to the shard that writes first, its reader to
        // the shard that reads first.
        Channel<string> lines = SharedChannel.CreateBounded<string>(1024);
        Task producer = pool.SubmitTo(0, async () =>
        {
            for (int i = 0; i < 1000; i++)
                await lines.Writer.WriteAsync($"line {i}");
            lines.Writer.Complete();
        });
        int received = await pool.SubmitTo(pool.Count - 1, async () =>
        {
            int n = 0;
            await foreach (string line in lines.Reader.ReadAllAsync())
                n++;
            return n;
        });
        await producer;
        // </snippet>
        return hits + received;
    }

    public static async Task<long> Local()
    {
        // <snippet:local-channel>
        Channel<int> work = LocalChannel.CreateBounded<int>(64); // both ends on this shard: no atomics, no locks
        Task<long> consumer = Shard.Spawn(async () =>
        {
            long sum = 0;
            await foreach (int item in work.Reader.ReadAllAsync())
                sum += item;
            return sum;
        });
        for (int i = 1; i <= 100; i++)
            await work.Writer.WriteAsync(i); // waits while 64 items are unread
        work.Writer.Complete();
        long total = await consumer;         // 5050
        // </snippet>
        return total;
    }

    public static async Task<int> Mesh(ShardPool pool)
    {
        // <snippet:channel-mesh>
        // A channel between every ordered pair of shards; each shard joins with its own id, on its own shard.
        ChannelMesh<string> mesh = ChannelMesh.Full<string>(pool.Count, capacity: 256);
        int[] heard = await pool.RunOnAll(async () =>
        {
            MeshPeer<string> me = mesh.Join(); // Join(Shard.Id)
            for (int peer = 0; peer < me.Peers; peer++)
                if (peer != me.Id)
                    await me.WriterTo(peer).WriteAsync($"hello from shard {me.Id}");
            me.CompleteAll(); // this shard sends no more

            int n = 0;
            await foreach ((int from, string message) in me.ReadAllAsync()) // until every peer has completed
            {
                Console.WriteLine($"shard {me.Id} heard \"{message}\" from shard {from}");
                n++;
            }
            return n; // Peers - 1
        });
        // </snippet>
        return heard.Sum();
    }

    public static async Task<long> Router(ShardPool pool)
    {
        // <snippet:sharded-router>
        var mesh = ChannelMesh.Full<(string Key, int Delta)>(pool.Count, capacity: 1024);
        long[] owned = await pool.RunOnAll(async () =>
        {
            var counts = new Dictionary<string, long>(); // the keys this shard owns, touched only here
            var router = new ShardedRouter<string, (string Key, int Delta)>(mesh.Join(), item =>
            {
                counts[item.Key] = counts.GetValueOrDefault(item.Key) + item.Delta; // runs on the key's owner
                return ValueTask.CompletedTask;
            });
            Task running = router.RunAsync(); // handles what the other shards send here

            for (int i = 0; i < 10_000; i++)
            {
                string key = $"user-{i % 100}";
                await router.SendAsync(key, (key, 1)); // to the owner of key: hash(key) mod shards
            }
            router.Complete(); // this shard sends no more
            await running;     // ends once every other shard has completed
            return counts.Values.Sum();
        });
        // owned.Sum() == 10_000 * pool.Count: each increment counted once, by the shard that owns its key
        // </snippet>
        return owned.Sum();
    }

    public static async Task Sync(Func<Task> handleAsync)
    {
        // <snippet:local-semaphore>
        var slots = new LocalSemaphore(100); // at most 100 requests at once on this shard
        await slots.WaitAsync();
        try
        {
            await handleAsync();
        }
        finally
        {
            slots.Release();
        }
        // </snippet>

        // <snippet:local-rwlock>
        var index = new LocalRwLock();
        using (await index.ReadLockAsync())
        {
            // many readers at once, across awaits
        }
        using (await index.WriteLockAsync())
        {
            // one writer, no readers; waiting writers are not starved by new readers
        }
        // </snippet>

        // <snippet:gate>
        var gate = new Gate();

        // For each request: take a pass before starting it (TryEnter is false once the gate is closing).
        if (gate.TryEnter(out IDisposable? pass))
            _ = Shard.Spawn(async () =>
            {
                using (pass)
                    await handleAsync();
            });

        // At shutdown: no new passes; returns when every pass is back.
        await gate.CloseAsync();
        // </snippet>
    }
}

using System.Net;
using Scipio;

namespace Snippets;

// docs/concepts.md.
public static class Concepts
{
    public static void StartAndSpawn()
    {
        // <snippet:concepts-spawn>
        Shard.Run(async () =>
        {
            // Spawned work runs on this shard, in the current task queue, once the queue gets to it (not inline).
            Task<int> a = Shard.Spawn(() => Task.FromResult(1));
            Task<int> b = Shard.Spawn(async () =>
            {
                await Shard.Sleep(TimeSpan.FromMilliseconds(10));
                return 2;
            });
            Console.WriteLine(await a + await b); // await what must finish: the rest is abandoned when Run's function ends
        });
        // </snippet>
    }

    public static async Task LatencyQueue(Func<Task> handleRequestsAsync, Func<Task> compactAsync)
    {
        // <snippet:concepts-latency>
        var requests = Shard.CreateTaskQueue("requests", Shares.Static(200), Latency.Matters(TimeSpan.FromMilliseconds(1)));
        var compaction = Shard.CreateTaskQueue("compaction", Shares.Static(100), Latency.NotImportant);
        Task serving = Shard.SpawnInto(requests, handleRequestsAsync);
        Task compacting = Shard.SpawnInto(compaction, compactAsync);
        // </snippet>
        await Task.WhenAll(serving, compacting);
    }

    // <snippet:concepts-dynamic-shares>
    // Shares that follow a backlog: the more writes wait, the more CPU the queue that flushes them gets.
    sealed class BacklogShares(Queue<byte[]> pending) : ISharesController
    {
        public int Shares => Math.Clamp(50 + pending.Count, 50, 1000); // read each time the queue is picked
    }
    // </snippet>

    public static TaskQueue DynamicShares()
    {
        // <snippet:concepts-dynamic-shares-use>
        var pending = new Queue<byte[]>();
        var flusher = Shard.CreateTaskQueue("flusher", Shares.Dynamic(new BacklogShares(pending)), Latency.NotImportant);
        // </snippet>
        return flusher;
    }

    public static async Task<long> Preemption(IEnumerable<int> items)
    {
        long sum = 0;
        // <snippet:concepts-yield>
        foreach (int item in items)
        {
            sum += item * item;                // the work of one item: short
            await Shard.YieldIfNeeded();       // completes at once, unless NeedPreempt: then others run first
        }
        // </snippet>
        // <snippet:concepts-need-preempt>
        foreach (int item in items)
        {
            sum += item * item;
            if (Shard.NeedPreempt)             // a memory read: the same test YieldIfNeeded makes
                await Shard.Yield();           // always hands the CPU back to the scheduler
        }
        // </snippet>
        return sum;
    }

    public static async Task<IPAddress[]> Blocking()
    {
        // <snippet:concepts-spawn-blocking>
        // A blocking call (here a synchronous DNS lookup, which reads files and may wait on the network) runs on a
        // helper thread; the shard runs other work meanwhile, and the await resumes here, in the same task queue.
        IPAddress[] addresses = await Shard.SpawnBlocking(() => Dns.GetHostAddresses("localhost"));
        // </snippet>
        return addresses;
    }

    public static async Task<bool> LeavingTheShard()
    {
        // <snippet:concepts-configure-await>
        await Task.Delay(10);                        // a foreign Task: resumes on the shard, in the same task queue
        bool before = Shard.IsOnShard;               // true
        await Task.Delay(10).ConfigureAwait(false);  // resumes on the ThreadPool: shard APIs now throw
        bool after = Shard.IsOnShard;                // false
        // </snippet>
        return before && !after;
    }

    public static void Post(TaskQueue queue)
    {
        // <snippet:concepts-post>
        // From any thread: the callback runs on the queue's shard, in that queue (a parked shard is woken).
        queue.Post(_ => Console.WriteLine($"on shard {Shard.Id}, queue {Shard.CurrentTaskQueue.Name}"), null);
        // </snippet>
    }
}

using Scipio;

namespace Snippets;

// docs/getting-started.md: the first programs, whose only using is Scipio. Each method body is a Program.cs.
public static class GettingStartedFirstShard
{
    public static void FirstShard()
    {
        // <snippet:first-shard>
        // Start a shard: a new thread with its own io_uring rings. Run calls the function on it and waits for it.
        int answer = Shard.Run(async () =>
        {
            Console.WriteLine($"shard {Shard.Id} on CPU {Shard.Cpu}, backend {Shard.Stats.Backend}");
            await Shard.Sleep(TimeSpan.FromMilliseconds(100)); // the shard's own timer: no .NET timer, no other thread
            return 42;
        }, new ShardOptions { Placement = Placement.Fixed(0) });

        Console.WriteLine($"the shard returned {answer}");
        // </snippet>
    }

    public static void FirstTaskQueues()
    {
        // <snippet:first-task-queues>
        Shard.Run(async () =>
        {
            var background = Shard.CreateTaskQueue("background", Shares.Static(100), Latency.NotImportant);
            var foreground = Shard.CreateTaskQueue("foreground", Shares.Static(300), Latency.NotImportant);

            // A CPU-bound loop that runs for half a second. YieldIfNeeded is the preemption point: a few nanoseconds,
            // and it gives the CPU back only when the queue's time slice (1 ms) is over.
            static async Task<long> Spin()
            {
                long n = 0;
                long until = Environment.TickCount64 + 500;
                while (Environment.TickCount64 < until)
                {
                    n++;
                    await Shard.YieldIfNeeded();
                }
                return n;
            }

            // One loop in each queue, both on this one thread: the CPU is shared 1 : 3, as the shares say.
            long[] counts = await Task.WhenAll(Shard.SpawnInto(background, Spin), Shard.SpawnInto(foreground, Spin));
            Console.WriteLine($"background counted to {counts[0]:N0}, foreground to {counts[1]:N0}");
            foreach (TaskQueueStats q in Shard.Stats.TaskQueues)
                Console.WriteLine($"{q.Name,-10} {q.Shares,4} shares, ran {q.Runtime.TotalMilliseconds,5:F0} ms");
        });
        // </snippet>
    }
}

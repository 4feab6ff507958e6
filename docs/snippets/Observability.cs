using Scipio;
using Scipio.Diagnostics;

namespace Snippets;

// docs/observability.md: stats and stalls.
public static class Observability
{
    public static ShardStats Stats()
    {
        // <snippet:obs-stats>
        ShardStats stats = Shard.Stats; // a snapshot, taken on the shard
        Console.WriteLine($"shard {stats.Shard} on {stats.Backend}: {stats.TasksRun} work items, " +
                          $"{stats.Preemptions} preemptions, {stats.Parks} parks, {stats.Stalls} stalls");
        Console.WriteLine($"main ring: {stats.Main.Submitted} submitted, {stats.Main.InFlight} in flight, " +
                          $"{stats.Main.Backlogged} backlogged ({stats.Main.SetupFlags})");
        foreach (TaskQueueStats q in stats.TaskQueues)
            Console.WriteLine($"{q.Name}: ran {q.Runtime.TotalMilliseconds:F1} ms, {q.TasksRun} work items, " +
                              $"longest wait {q.MaxQueueDelay.TotalMilliseconds:F2} ms");
        // </snippet>
        return stats;
    }

    public static TaskQueueStats QueueStats()
    {
        var queue = Shard.CurrentTaskQueue;
        // <snippet:obs-queue-stats>
        TaskQueueStats mine = queue.Stats; // one queue's counters
        // </snippet>
        return mine;
    }

    public static void Stalls()
    {
        // <snippet:obs-stall>
        var options = new ShardOptions
        {
            StallThreshold = TimeSpan.FromMilliseconds(10), // off (null) by default; 100 µs to 1 hour
            OnStall = report => Console.Error.WriteLine(
                $"{report.Duration.TotalMilliseconds:F1} ms without yielding in {report.Method} " +
                $"(queue '{report.Queue}', shard {report.Shard})"),
        };

        Shard.Run(ReindexAsync, options);
        // </snippet>
    }

    // A method that blocks its shard: what the stall detector finds.
    private static async Task ReindexAsync()
    {
        await Shard.Sleep(TimeSpan.FromMilliseconds(1));
        Thread.Sleep(50); // blocks the shard: reported once it returns
    }
}

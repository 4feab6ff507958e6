// Scipio quick start: one shard pinned to CPU 0, two task queues that share the CPU 3:1, a little file I/O
// through io_uring, and the shard's statistics at the end.
using Scipio;
using Scipio.IO;

string dir = Directory.CreateTempSubdirectory("scipio-quickstart").FullName;

long total = Shard.Run(async () =>
{
    var fg = Shard.CreateTaskQueue("foreground", Shares.Static(300), Latency.NotImportant);
    var bg = Shard.CreateTaskQueue("background", Shares.Static(100), Latency.NotImportant);

    // Two CPU hogs that run until told to stop; YieldIfNeeded is the cooperative preemption point.
    bool stop = false;
    async Task<long> Hog()
    {
        long n = 0;
        while (!stop)
        {
            n++;
            if ((n & 1023) == 0) await Shard.YieldIfNeeded();
        }
        return n;
    }
    Task<long> a = Shard.SpawnInto(fg, Hog);
    Task<long> b = Shard.SpawnInto(bg, Hog);

    // Meanwhile, main sleeps (an io_uring timeout) and does file I/O: the shard interleaves all three.
    await Shard.Sleep(TimeSpan.FromMilliseconds(500));
    await using (var file = await BufferedFile.CreateAsync(Path.Combine(dir, "hello.txt")))
    {
        await file.WriteAtAsync("hello, io_uring"u8.ToArray(), 0);
        await file.FlushAsync();
        var buffer = new byte[64];
        int read = await file.ReadAtAsync(buffer, 0);
        Console.WriteLine($"read back {read} bytes: \"{System.Text.Encoding.UTF8.GetString(buffer, 0, read)}\"");
    }
    stop = true;
    long n = await a + await b;

    ShardStats stats = Shard.Stats;
    Console.WriteLine($"shard {Shard.Id} on CPU {Shard.Cpu}: {stats.TasksRun} work items, {stats.Preemptions} preemptions, {stats.Parks} parks");
    Console.WriteLine($"main ring: {stats.Main.Submitted} submitted, {stats.Main.Completed} completed ({stats.Main.SetupFlags})");
    Console.WriteLine();
    Console.WriteLine($"{"queue",-12} {"shares",6} {"runtime",10} {"share",6} {"tasks",8} {"picked",7} {"max wait",9}");
    double all = stats.TaskQueues.Sum(q => q.Runtime.TotalMilliseconds);
    foreach (TaskQueueStats q in stats.TaskQueues)
        Console.WriteLine($"{q.Name,-12} {q.Shares,6} {q.Runtime.TotalMilliseconds,8:F1}ms {q.Runtime.TotalMilliseconds / all,6:P0} {q.TasksRun,8} {q.QueueSelected,7} {q.MaxQueueDelay.TotalMilliseconds,7:F2}ms");
    return n;
}, new ShardOptions { Placement = Placement.Fixed(0) });

Console.WriteLine($"\nthe hogs counted to {total:N0} together");
Directory.Delete(dir, recursive: true);

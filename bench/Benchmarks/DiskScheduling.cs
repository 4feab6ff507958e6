using System.Diagnostics;
using Scipio.IO;

namespace Scipio.Bench.Benchmarks;

/// <summary>The I/O scheduler's two promises, on this machine's disk: a latency-sensitive queue reading one 4 KiB
/// block at a time keeps its latency while another queue keeps 128 reads in flight — its p50/p99 alone, beside the
/// saturating queue with the scheduler, and beside it without; and throughput-only work loses little to scheduling
/// (IOPS of 128 in flight with and without). The model is measured first (DiskModel.MeasureAsync, shortened phases).</summary>
internal static class DiskScheduling
{
    public const string Name = "disk-scheduler";
    private const long FileSize = 256L << 20;
    private static readonly TimeSpan s_phase = TimeSpan.FromSeconds(3);

    public static void Report(TextWriter output)
    {
        string directory = Path.Combine(Path.GetTempPath(), $"scipio-disk-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(directory);
        try
        {
            string path = Path.Combine(directory, "data.bin");
            using (var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                var chunk = new byte[1 << 20];
                Random.Shared.NextBytes(chunk);
                for (long written = 0; written < FileSize; written += chunk.Length) stream.Write(chunk);
                stream.Flush(flushToDisk: true);
            }
            var model = DiskModel.MeasureAsync(directory).GetAwaiter().GetResult();
            output.WriteLine($"### I/O scheduler, {model}");
            output.WriteLine();
            output.WriteLine("| case | latency-sensitive reads | p50 µs | p99 µs | background IOPS |");
            output.WriteLine("|---|---:|---:|---:|---:|");
            Row(output, "QD1 reader alone", Run(path, null, reader: true, background: false));
            Row(output, "beside 128 in flight, scheduler on", Run(path, model, reader: true, background: true));
            Row(output, "beside 128 in flight, no scheduler", Run(path, null, reader: true, background: true));
            Row(output, "128 in flight alone, scheduler on", Run(path, model, reader: false, background: true));
            Row(output, "128 in flight alone, no scheduler", Run(path, null, reader: false, background: true));
            output.WriteLine();
            var (low, high) = ShareRace(path, model);
            var (low0, high0) = ShareRace(path, null);
            output.WriteLine($"I/O shares 100:400, 64 reads in flight each: 1 : {(double)high / low:F2} with the scheduler, " +
                $"1 : {(double)high0 / low0:F2} without (target: 1 : 4 within 10%).");
            output.WriteLine();
            output.WriteLine($"Each case {s_phase.TotalSeconds} s on one shard; the latency-sensitive queue is Latency.Matters(1 ms), " +
                "the background queue NotImportant, equal shares; 4 KiB O_DIRECT reads at random offsets of a 256 MiB file.");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static void Row(TextWriter output, string name, (double[] Latencies, double BackgroundIops) r)
    {
        string p(double q) => r.Latencies.Length == 0 ? "—" : LatencyReport.Percentile(r.Latencies, q).ToString("F0");
        output.WriteLine($"| {name} | {(r.Latencies.Length == 0 ? "—" : r.Latencies.Length.ToString())} | {p(0.5)} | {p(0.99)} | {(r.BackgroundIops > 0 ? r.BackgroundIops.ToString("N0") : "—")} |");
    }

    /// <summary>Two queues at I/O shares 100 and 400, 64 readers each: how many reads each completed.</summary>
    private static (long Low, long High) ShareRace(string path, DiskModel? model)
    {
        var options = new ShardOptions { Placement = Placement.Fixed(0), DiskModel = model };
        return Shard.Run(async () =>
        {
            await using var file = await DmaFile.OpenAsync(path);
            long blocks = FileSize / 4096;
            long deadline = Stopwatch.GetTimestamp() + (long)(s_phase.TotalSeconds * Stopwatch.Frequency);
            async Task<long> Readers(TaskQueue queue, int seed)
            {
                var readers = new Task<long>[64];
                for (int i = 0; i < readers.Length; i++)
                {
                    int s = seed + i;
                    readers[i] = Shard.SpawnInto(queue, async () =>
                    {
                        using var buffer = file.AllocateBuffer(4096);
                        var random = new Random(s);
                        long reads = 0;
                        for (; Stopwatch.GetTimestamp() < deadline; reads++) await file.ReadAtAsync(buffer, random.NextInt64(blocks) * 4096);
                        return reads;
                    });
                }
                return (await Task.WhenAll(readers)).Sum();
            }
            var low = Shard.CreateTaskQueue("low", Shares.Static(100), Latency.NotImportant);
            var high = Shard.CreateTaskQueue("high", Shares.Static(100), Latency.NotImportant);
            low.IoShares = Shares.Static(100);
            high.IoShares = Shares.Static(400);
            var lowReads = Readers(low, 0);
            var highReads = Readers(high, 1000);
            return (await lowReads, await highReads);
        }, options);
    }

    private static (double[] Latencies, double BackgroundIops) Run(string path, DiskModel? model, bool reader, bool background)
    {
        var options = new ShardOptions { Placement = Placement.Fixed(0), DiskModel = model };
        return Shard.Run(async () =>
        {
            await using var file = await DmaFile.OpenAsync(path);
            long blocks = FileSize / 4096;
            long deadline = Stopwatch.GetTimestamp() + (long)(s_phase.TotalSeconds * Stopwatch.Frequency);
            var latencies = new List<double>();
            long backgroundReads = 0;
            var tasks = new List<Task>();
            if (background)
            {
                var bulk = Shard.CreateTaskQueue("bulk", Shares.Static(100), Latency.NotImportant);
                for (int i = 0; i < 128; i++)
                {
                    int seed = i;
                    tasks.Add(Shard.SpawnInto(bulk, async () =>
                    {
                        using var buffer = file.AllocateBuffer(4096);
                        var random = new Random(seed);
                        while (Stopwatch.GetTimestamp() < deadline)
                        {
                            await file.ReadAtAsync(buffer, random.NextInt64(blocks) * 4096);
                            backgroundReads++;
                        }
                        return 0;
                    }));
                }
            }
            if (reader)
            {
                var interactive = Shard.CreateTaskQueue("interactive", Shares.Static(100), Latency.Matters(TimeSpan.FromMilliseconds(1)));
                tasks.Add(Shard.SpawnInto(interactive, async () =>
                {
                    using var buffer = file.AllocateBuffer(4096);
                    var random = new Random(7);
                    while (Stopwatch.GetTimestamp() < deadline)
                    {
                        long start = Stopwatch.GetTimestamp();
                        await file.ReadAtAsync(buffer, random.NextInt64(blocks) * 4096);
                        latencies.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
                    }
                    return 0;
                }));
            }
            await Task.WhenAll(tasks);
            return (latencies.ToArray(), background ? backgroundReads / s_phase.TotalSeconds : 0);
        }, options);
    }
}

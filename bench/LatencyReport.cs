using System.Diagnostics;
using Scipio.Ring;
using Scipio.Runtime;

namespace Scipio.Bench;

/// <summary>Distributions rather than ns/op: how soon a latency-sensitive queue runs after its timer while two hogs
/// run (beside the ThreadPool doing the same on one core), and how long a wake-up across CPUs takes (eventfd
/// beside IORING_OP_MSG_RING).</summary>
internal static class LatencyReport
{
    private const string ThreadPoolChild = "--threadpool-latency-child";
    private const int Samples = 200; // 200 × 5 ms = 1 s under load
    private static readonly TimeSpan s_period = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan s_budget = TimeSpan.FromMilliseconds(2);

    /// <summary>Handles the child process the ThreadPool baseline runs in; true if this process is it.</summary>
    public static bool RunChildIfAsked(string[] args)
    {
        if (args.Length == 0 || args[0] != ThreadPoolChild) return false;
        var delays = ThreadPoolDelays();
        Console.WriteLine(string.Join(' ', delays.Select(d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture))));
        return true;
    }

    public static void Report(TextWriter output)
    {
        output.WriteLine("### Wake-to-run delay under two hogs (CPU 0, timer every 5 ms, 1 s)");
        output.WriteLine();
        output.WriteLine("| who | p50 ms | p99 ms | max ms |");
        output.WriteLine("|---|---:|---:|---:|");
        var matters = ShardDelays(Scipio.Latency.Matters(s_budget));
        var notImportant = ShardDelays(Scipio.Latency.NotImportant);
        var threadPool = ThreadPoolDelaysOnOneCore();
        Row(output, $"Scipio, Latency.Matters({s_budget.TotalMilliseconds} ms) queue", matters);
        Row(output, "Scipio, Latency.NotImportant queue", notImportant);
        if (threadPool is null) output.WriteLine("| ThreadPool (taskset -c 0): could not run the child process | | | |");
        else Row(output, "ThreadPool, Task.Delay loop beside two Task.Run hogs (taskset -c 0)", threadPool);
        output.WriteLine();
        if (threadPool is not null)
            output.WriteLine($"p99 ratio ThreadPool ÷ Matters queue: {Percentile(threadPool, 0.99) / Percentile(matters, 0.99):F1}× (target ≥ 5×; budget + 1 ms = {s_budget.TotalMilliseconds + 1} ms)");
        output.WriteLine();

        output.WriteLine("### Cross-shard wake-up: round trip CPU 0 → CPU 1 → CPU 0, both shards parked between messages");
        output.WriteLine();
        output.WriteLine("| waker | p50 µs | p99 µs |");
        output.WriteLine("|---|---:|---:|");
        bool saved = IoUringBackend.WakeShardsByMsgRing;
        foreach (bool msgRing in new[] { false, true, false, true })
        {
            IoUringBackend.WakeShardsByMsgRing = msgRing;
            var rtt = CrossShardRoundTrips(10_000);
            output.WriteLine($"| {(msgRing ? "IORING_OP_MSG_RING" : "eventfd")} | {Percentile(rtt, 0.5):F1} | {Percentile(rtt, 0.99):F1} |");
        }
        IoUringBackend.WakeShardsByMsgRing = saved;
        output.WriteLine();
    }

    private static void Row(TextWriter output, string who, double[] delays) =>
        output.WriteLine($"| {who} | {Percentile(delays, 0.5):F2} | {Percentile(delays, 0.99):F2} | {delays.Max():F2} |");

    /// <summary>The value below which a fraction <paramref name="p"/> of <paramref name="values"/> lie.</summary>
    public static double Percentile(double[] values, double p)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
    }

    /// <summary>A queue of <paramref name="latency"/> sleeps 5 ms at a time while two hog queues run; the delays
    /// from each deadline to the queue running, in ms. The first 20 (JIT, start-up) are dropped.</summary>
    private static double[] ShardDelays(Scipio.Latency latency) => Shard.Run(async () =>
    {
        bool stop = false;
        async Task<long> Hog()
        {
            long n = 0;
            while (!stop)
                if ((++n & 1023) == 0) await Shard.YieldIfNeeded();
            return n;
        }
        var h1 = Shard.SpawnInto(Shard.CreateTaskQueue("hog1", Shares.Static(100), Scipio.Latency.NotImportant), Hog);
        var h2 = Shard.SpawnInto(Shard.CreateTaskQueue("hog2", Shares.Static(100), Scipio.Latency.NotImportant), Hog);
        var delays = await Shard.SpawnInto(Shard.CreateTaskQueue("timed", Shares.Static(100), latency), async () =>
        {
            var d = new double[Samples + 20];
            for (int i = 0; i < d.Length; i++)
            {
                long due = Stopwatch.GetTimestamp() + (long)(s_period.TotalSeconds * Stopwatch.Frequency);
                await Shard.Sleep(s_period);
                d[i] = Stopwatch.GetElapsedTime(due).TotalMilliseconds;
            }
            return d;
        });
        stop = true;
        await h1;
        await h2;
        return delays[20..];
    }, new ShardOptions { Placement = Placement.Fixed(0) });

    /// <summary>The same on the ThreadPool: a Task.Delay(5) loop and two Task.Run hogs. Run in a child process
    /// confined to CPU 0 so that, like the shard, it has one core.</summary>
    private static double[] ThreadPoolDelays()
    {
        bool stop = false;
        void Hog()
        {
            long n = 0;
            while (!Volatile.Read(ref stop)) n++;
        }
        var h1 = Task.Run(Hog);
        var h2 = Task.Run(Hog);
        var delays = Task.Run(async () =>
        {
            var d = new double[Samples + 20];
            for (int i = 0; i < d.Length; i++)
            {
                long due = Stopwatch.GetTimestamp() + (long)(s_period.TotalSeconds * Stopwatch.Frequency);
                await Task.Delay(s_period);
                d[i] = Stopwatch.GetElapsedTime(due).TotalMilliseconds;
            }
            return d;
        }).GetAwaiter().GetResult();
        Volatile.Write(ref stop, true);
        Task.WaitAll(h1, h2);
        return delays[20..];
    }

    private static double[]? ThreadPoolDelaysOnOneCore() =>
        RunOnCpu0(ThreadPoolChild)?.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(s => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Runs this benchmark program again under <c>taskset -c 0</c> with <paramref name="args"/> (a child
    /// mode: a baseline that must have one core, as the shard does) and returns what it printed; null when it failed
    /// or taskset is missing.</summary>
    public static string? RunOnCpu0(params string[] args)
    {
        string self = Environment.ProcessPath ?? "dotnet";
        string dll = typeof(LatencyReport).Assembly.Location;
        var start = new ProcessStartInfo("taskset") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-c", "0", self }) start.ArgumentList.Add(a);
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(dll);
        foreach (var a in args) start.ArgumentList.Add(a);
        try
        {
            using var child = Process.Start(start)!;
            string output = child.StandardOutput.ReadToEnd();
            child.WaitForExit();
            return child.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no taskset
        }
    }

    /// <summary>Round trips between a shard on CPU 0 and one on CPU 1, each parked between messages, in µs.</summary>
    private static double[] CrossShardRoundTrips(int count)
    {
        var queueOfB = new TaskCompletionSource<TaskQueue>();
        var stopB = new TaskCompletionSource();
        var b = Shard.Start(async () =>
        {
            queueOfB.SetResult(Shard.CurrentTaskQueue);
            await stopB.Task;
        }, new ShardOptions { Placement = Placement.Fixed(1) });
        var onB = queueOfB.Task.GetAwaiter().GetResult();
        var rtt = Shard.Run(async () =>
        {
            var onA = Shard.CurrentTaskQueue;
            var samples = new double[count];
            for (int i = 0; i < count; i++)
            {
                var back = new TaskCompletionSource();
                long t0 = Stopwatch.GetTimestamp();
                onB.Post(_ => onA.Post(_ => back.SetResult(), null), null);
                await back.Task;
                samples[i] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
            }
            return samples[(count / 10)..];
        }, new ShardOptions { Placement = Placement.Fixed(0) });
        stopB.SetResult();
        b.Join();
        return rtt;
    }
}

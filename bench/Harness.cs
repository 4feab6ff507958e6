using System.Diagnostics;

namespace Scipio.Bench;

/// <summary>Where a side of a benchmark runs: on the benchmark's shard (pinned to CPU 0), or on the ThreadPool
/// (inside <c>Task.Run</c>, where a .NET user's code would run).</summary>
internal enum Runner
{
    Shard,
    ThreadPool,
}

/// <summary>One side of a benchmark: a body that performs <c>n</c> operations (n is a multiple of the benchmark's
/// granularity) and completes when they are done.</summary>
internal sealed record Side(string Label, Runner Runner, Func<long, ValueTask> Body)
{
    /// <summary>Where the round's own setup allocates (spawning queue-depth workers), the side can measure its
    /// steady state itself: bytes per operation while all its workers ran, read after each round.</summary>
    public Func<double>? SteadyBytesPerOp { get; init; }
}

/// <summary>A baseline and why it is the one a .NET user would otherwise use.</summary>
internal sealed record Baseline(Side Side, string Why);

/// <summary>What a benchmark aims for, checked against the Scipio side and the first baseline.</summary>
internal sealed record Target(string Text, Func<SideResult, SideResult, bool> IsMet)
{
    public static Target Faster(double ratio, bool zeroAlloc = false) =>
        new($"≥{ratio:0.#}×{(zeroAlloc ? ", 0 B/op" : "")}",
            (s, b) => b.MedianNs / s.MedianNs >= ratio && (!zeroAlloc || s.IsZeroAlloc));

    public static Target AtMost(double ns, bool zeroAlloc = true) =>
        new($"≤{ns:0.#} ns{(zeroAlloc ? ", 0 B/op" : "")}", (s, _) => s.MedianNs <= ns && (!zeroAlloc || s.IsZeroAlloc));

    public static Target ZeroAlloc { get; } = new("0 B/op", (s, _) => s.IsZeroAlloc);

    public static Target None { get; } = new("", (_, _) => true);
}

/// <summary>A benchmark: what it measures, the Scipio side, one or more baselines, and its target.</summary>
internal sealed record Benchmark(
    string Name,
    string Measures,
    int Granularity,
    Side Scipio,
    IReadOnlyList<Baseline> Baselines,
    Target Target)
{
    /// <summary>Runs on the shard before the benchmark (outside any measurement), e.g. to create a file.</summary>
    public Func<ValueTask>? Setup { get; init; }

}

/// <summary>The rounds of one side: ns/op and B/op of each measured round.</summary>
internal sealed class SideResult(string label, Runner runner, long opsPerRound, double[] nsPerOp, double[] cpuNsPerOp, double[] bytesPerOp, double[]? steadyBytesPerOp)
{
    public string Label { get; } = label;
    public Runner Runner { get; } = runner;
    public long OpsPerRound { get; } = opsPerRound;
    public double[] NsPerOp { get; } = nsPerOp;
    public double[] BytesPerOp { get; } = bytesPerOp;
    public double MedianNs => Stats.Median(NsPerOp);

    /// <summary>CPU time of the whole process per operation (every thread, the kernel's io_uring workers too):
    /// above the elapsed figure when the side keeps more than one CPU busy.</summary>
    public double[] CpuNsPerOp { get; } = cpuNsPerOp;
    public double MedianCpuNs => Stats.Median(CpuNsPerOp);
    public double MedianBytes => Stats.Median(BytesPerOp);
    public double[]? SteadyBytesPerOp { get; } = steadyBytesPerOp;
    public double? MedianSteadyBytes => SteadyBytesPerOp is null ? null : Stats.Median(SteadyBytesPerOp);

    /// <summary>Median absolute deviation of ns/op, relative to the median.</summary>
    public double RelativeSpread => Stats.MedianAbsoluteDeviation(NsPerOp) / MedianNs;

    /// <summary>No allocation per operation: for a side that measures its steady state, none at all while its
    /// workers ran; otherwise at most <see cref="RoundAllowance"/> bytes over the median round, which is what the
    /// round's own fixed cost (the measuring loop's state machine) takes.</summary>
    public bool IsZeroAlloc => MedianSteadyBytes is { } steady
        ? steady == 0 && MedianOffShardBytes * OpsPerRound <= RoundAllowance
        : (MedianBytes + MedianOffShardBytes) * OpsPerRound <= RoundAllowance;

    public const int RoundAllowance = 4096;

    /// <summary>For the Scipio side: bytes per operation allocated off the shard thread during its rounds (by
    /// ThreadPool threads the runtime handed work to); zero when everything stayed on the shard.</summary>
    public double MedianOffShardBytes { get; init; }
}

internal sealed record BenchmarkResult(Benchmark Benchmark, SideResult Scipio, IReadOnlyList<SideResult> Baselines);

internal static class Stats
{
    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        int m = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
    }

    public static double MedianAbsoluteDeviation(IReadOnlyList<double> values)
    {
        double median = Median(values);
        return Median(values.Select(v => Math.Abs(v - median)).ToArray());
    }
}

/// <summary>How long and how often each side is measured.</summary>
internal sealed record Settings(int Rounds, TimeSpan Round, TimeSpan WarmUp, TimeSpan Settle, bool Verbose)
{
    public static Settings Full { get; } = new(9, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(600), TimeSpan.FromMilliseconds(5), false);

    /// <summary>A smoke run for CI: every benchmark runs and reports, but the rounds are short and few.</summary>
    public static Settings Quick { get; } = new(3, TimeSpan.FromMilliseconds(30), TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(2), false);
}

/// <summary>Runs benchmarks from the shard: the Scipio side inline on the shard, baselines through
/// <c>Task.Run</c> (the shard parks meanwhile, and the round's completion wakes it). Per benchmark: calibrate each side to
/// rounds of about <see cref="Settings.Round"/>, warm it up (the tiered JIT promotes hot methods to Tier1 only after
/// a delay and 30 calls, twice with PGO), then measure the rounds interleaved — Scipio, baselines, baselines,
/// Scipio, … — so that the VM's slow moments hit both sides alike.</summary>
internal sealed class Harness(Settings settings, TextWriter log)
{
    /// <summary>One round: elapsed ticks, bytes the measuring thread allocated (ThreadPool: the process), and for
    /// the shard, the bytes the whole process allocated.</summary>
    private readonly record struct Sample(long Ticks, long CpuNs, long Bytes, long ProcessBytes);

    public async Task<BenchmarkResult> RunAsync(Benchmark benchmark)
    {
        if (benchmark.Setup is not null) await benchmark.Setup();
        return await RunSidesAsync(benchmark);
    }

    private async Task<BenchmarkResult> RunSidesAsync(Benchmark benchmark)
    {
        Side[] sides = [benchmark.Scipio, .. benchmark.Baselines.Select(b => b.Side)];
        var ops = new long[sides.Length];
        for (int i = 0; i < sides.Length; i++)
            ops[i] = await CalibrateAndWarmUpAsync(sides[i], benchmark.Granularity);

        var ns = new double[sides.Length][];
        var cpu = new double[sides.Length][];
        var bytes = new double[sides.Length][];
        var steady = new double[sides.Length][];
        var offShard = new double[settings.Rounds];
        for (int i = 0; i < sides.Length; i++)
        {
            ns[i] = new double[settings.Rounds];
            cpu[i] = new double[settings.Rounds];
            bytes[i] = new double[settings.Rounds];
            steady[i] = new double[settings.Rounds];
        }
        for (int round = 0; round < settings.Rounds; round++)
        {
            for (int k = 0; k < sides.Length; k++)
            {
                int i = round % 2 == 0 ? k : sides.Length - 1 - k;
                var sample = await MeasureAsync(sides[i], ops[i]);
                ns[i][round] = TicksToNs(sample.Ticks) / ops[i];
                cpu[i][round] = (double)sample.CpuNs / ops[i];
                bytes[i][round] = (double)sample.Bytes / ops[i];
                if (sides[i].SteadyBytesPerOp is { } readSteady) steady[i][round] = readSteady();
                if (i == 0) offShard[round] = (double)(sample.ProcessBytes - sample.Bytes) / ops[i];
            }
        }

        var results = sides.Select((s, i) => new SideResult(s.Label, s.Runner, ops[i], ns[i], cpu[i], bytes[i], s.SteadyBytesPerOp is null ? null : steady[i])
        {
            MedianOffShardBytes = i == 0 ? Stats.Median(offShard) : 0,
        }).ToArray();
        if (settings.Verbose)
        {
            foreach (var r in results)
            {
                log.WriteLine($"  {benchmark.Name,-18} {r.Label,-40} n={r.OpsPerRound,9}  ns/op: {string.Join(" ", r.NsPerOp.Select(Format.Ns))}");
                log.WriteLine($"  {"",-18} {"",-40} {"",11}  CPU ns/op: {string.Join(" ", r.CpuNsPerOp.Select(Format.Ns))}  B/op: {string.Join(" ", r.BytesPerOp.Select(Format.Bytes))}" +
                    (r.Runner == Runner.Shard ? $"  off-shard B/op: {Format.Bytes(r.MedianOffShardBytes)}" : ""));
            }
        }
        return new BenchmarkResult(benchmark, results[0], results[1..]);
    }

    /// <summary>Finds the operation count of a round, then runs the side for the warm-up time, re-estimating the
    /// count after each round (early rounds run Tier0 code and would under-size it).</summary>
    private async ValueTask<long> CalibrateAndWarmUpAsync(Side side, int granularity)
    {
        double roundNs = settings.Round.TotalNanoseconds;
        long n = granularity;
        while (true)
        {
            double ns = TicksToNs((await MeasureAsync(side, n)).Ticks);
            if (ns >= roundNs / 8 || n >= 1L << 40) break;
            n *= ns < roundNs / 256 ? 8 : 2;
        }
        long warmUpUntil = Stopwatch.GetTimestamp() + (long)(settings.WarmUp.TotalSeconds * Stopwatch.Frequency);
        int rounds = 0;
        do
        {
            double ns = TicksToNs((await MeasureAsync(side, n)).Ticks);
            n = RoundTo(n * roundNs / ns, granularity);
            rounds++;
        } while (rounds < 2 || Stopwatch.GetTimestamp() < warmUpUntil);
        return n;
    }

    private static long RoundTo(double n, int granularity) =>
        Math.Max(granularity, (long)Math.Round(n / granularity) * granularity);

    private async ValueTask<Sample> MeasureAsync(Side side, long n)
    {
        if (side.Runner == Runner.ThreadPool) return await Task.Run(() => MeasureOnThreadPool(side.Body, n));
        // Lets ThreadPool workers of the previous baseline round stop spinning before the shard's round starts.
        await Shard.Sleep(settings.Settle);
        return await MeasureOnShard(side.Body, n);
    }

    /// <summary>On the shard thread, which runs everything the side does: the thread's own allocation counter is
    /// exact.</summary>
    private static async ValueTask<Sample> MeasureOnShard(Func<long, ValueTask> body, long n)
    {
        long processBytes = GC.GetTotalAllocatedBytes(precise: true);
        long bytes = GC.GetAllocatedBytesForCurrentThread();
        long cpu = ProcessCpu.Nanoseconds;
        long start = Stopwatch.GetTimestamp();
        await body(n);
        long end = Stopwatch.GetTimestamp();
        cpu = ProcessCpu.Nanoseconds - cpu;
        bytes = GC.GetAllocatedBytesForCurrentThread() - bytes;
        return new Sample(end - start, cpu, bytes, GC.GetTotalAllocatedBytes(precise: true) - processBytes);
    }

    /// <summary>On a ThreadPool thread; the work hops between pool threads, so allocations are counted process-wide
    /// (the shard is parked meanwhile and allocates nothing).</summary>
    private static async Task<Sample> MeasureOnThreadPool(Func<long, ValueTask> body, long n)
    {
        long bytes = GC.GetTotalAllocatedBytes(precise: true);
        long cpu = ProcessCpu.Nanoseconds;
        long start = Stopwatch.GetTimestamp();
        await body(n);
        long end = Stopwatch.GetTimestamp();
        cpu = ProcessCpu.Nanoseconds - cpu;
        bytes = GC.GetTotalAllocatedBytes(precise: true) - bytes;
        return new Sample(end - start, cpu, bytes, bytes);
    }

    private static double TicksToNs(long ticks) => ticks * 1e9 / Stopwatch.Frequency;
}

internal static class Format
{
    public static string Ns(double ns) => ns switch
    {
        < 10 => ns.ToString("0.00"),
        < 100 => ns.ToString("0.0"),
        _ => ns.ToString("0"),
    };

    public static string Bytes(double b) => b switch
    {
        < 0.005 => "0",
        < 1 => b.ToString("0.00"),
        < 10 => b.ToString("0.0"),
        _ => b.ToString("0"),
    };

    public static string Ratio(double r) => r < 10 ? r.ToString("0.00") + "×" : r.ToString("0.0") + "×";
}

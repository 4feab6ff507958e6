using System.Runtime;
using System.Runtime.InteropServices;
using Scipio;
using Scipio.Bench;
using Scipio.Bench.Benchmarks;

// dotnet run -c Release --project bench -- [--quick] [--verbose] [--rounds N] [filter ...]
if (LatencyReport.RunChildIfAsked(args) || PeriodicTimers.RunChildIfAsked(args)) return 0;
bool quick = false, verbose = false;
int? rounds = null;
var filters = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--quick": quick = true; break;
        case "--verbose": verbose = true; break;
        case "--rounds" when i + 1 < args.Length && int.TryParse(args[i + 1], out int n) && n > 0:
            rounds = n;
            i++;
            break;
        case "-h" or "--help":
            Console.WriteLine("usage: Scipio.Bench [--quick] [--verbose] [--rounds N] [filter ...]");
            Console.WriteLine("  --quick         a smoke run for CI: 3 short rounds per side");
            Console.WriteLine("  --verbose       print every round of every side");
            Console.WriteLine("  --rounds N      measured rounds per side (default 9; --quick: 3)");
            Console.WriteLine("  filter          run the benchmarks whose name contains it, or is it; 'latency' runs only the");
            Console.WriteLine("                  wake-to-run and cross-shard wake-up distributions, 'periodic-timer' only the");
            Console.WriteLine("                  periodic timers' wake accuracy under two hogs, 'disk-scheduler' only the I/O scheduler's");
            Console.WriteLine("                  latency and throughput on this disk; names:");
            foreach (var b in Scheduling.All().Concat(Channels.All()).Concat(Sync.All()).Concat(Nop.All()).Concat(new Files().All()).Concat(new DirectReads().All()).Concat(Scipio.Bench.Benchmarks.Pool.All()).Concat(DmaStreams.All()).Concat(Scipio.Bench.Benchmarks.Net.All()).Concat(Metrics.All()).Concat(FSharpLoops.All())) Console.WriteLine($"    {b.Name}");
            return 0;
        default:
            if (args[i].StartsWith('-'))
            {
                Console.Error.WriteLine($"Unknown option '{args[i]}'; see --help.");
                return 2;
            }
            filters.Add(args[i]);
            break;
    }
}
var settings = (quick ? Settings.Quick : Settings.Full) with { Verbose = verbose };
if (rounds is { } r) settings = settings with { Rounds = r };

try
{
    // The distributions (not ns/op): alone when named, after the suite in a full run.
    bool latencyOnly = filters.Count == 1 && filters[0] == "latency";
    bool timersOnly = filters.Count == 1 && filters[0] == PeriodicTimers.Name;
    bool diskOnly = filters.Count == 1 && filters[0] == DiskScheduling.Name;
    bool full = filters.Count == 0 && !quick;
    if (!latencyOnly && !timersOnly && !diskOnly)
        Shard.Run(() => Suite.RunAsync(settings, quick, filters), new ShardOptions { Name = "bench", Placement = Placement.Fixed(0) });
    if (latencyOnly || full) LatencyReport.Report(Console.Out);
    if (timersOnly || full) PeriodicTimers.Report(Console.Out);
    if (diskOnly || full) DiskScheduling.Report(Console.Out);
}
catch (IoUringUnavailableException e)
{
    Console.Error.WriteLine($"Cannot run the benchmarks: {e.Message}");
    return 2;
}
return 0;

internal static class Suite
{
    public static async Task RunAsync(Settings settings, bool quick, IReadOnlyList<string> filters)
    {
        await using var files = new Files();
        await using var direct = new DirectReads();
        var benchmarks = Scheduling.All().Concat(Channels.All()).Concat(Sync.All()).Concat(Nop.All()).Concat(files.All()).Concat(direct.All()).Concat(Scipio.Bench.Benchmarks.Pool.All()).Concat(DmaStreams.All()).Concat(Scipio.Bench.Benchmarks.Net.All()).Concat(Metrics.All()).Concat(FSharpLoops.All())
            .ToList();
        // A filter that names a benchmark exactly selects only it (file-read-4k-qd1, not also …-qd16).
        benchmarks = benchmarks.Where(b => filters.Count == 0 || filters.Any(f => benchmarks.Any(x => x.Name == f)
            ? b.Name == f
            : b.Name.Contains(f, StringComparison.OrdinalIgnoreCase))).ToList();
        if (benchmarks.Count == 0)
        {
            Console.Error.WriteLine($"No benchmark matches {string.Join(", ", filters)}; see --help.");
            return;
        }

        Console.WriteLine(Header(settings));
        if (quick) Console.WriteLine("--quick: a smoke run (few, short rounds); quote the figures of a full run.");
        if (settings.Verbose) Console.WriteLine();
        var harness = new Harness(settings, Console.Out);
        var results = new List<BenchmarkResult>();
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        foreach (var benchmark in benchmarks)
        {
            Console.Error.Write($"{benchmark.Name} … {(settings.Verbose ? "\n" : "")}");
            var result = await harness.RunAsync(benchmark);
            results.Add(result);
            Console.Error.WriteLine($"{Format.Ns(result.Scipio.MedianNs)} ns/op vs {Format.Ns(result.Baselines[0].MedianNs)} ns/op");
        }
        var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        await Scipio.Bench.Benchmarks.Pool.DisposeAsync();
        await DmaStreams.DisposeAsync();

        Console.WriteLine();
        Report.Table(Console.Out, results);
        Console.WriteLine();
        Report.Notes(Console.Out, results);
        Console.WriteLine();
        if (results.Any(r => r.Benchmark.Name.StartsWith("dma-read", StringComparison.Ordinal)))
        {
            direct.ReportFio(Console.Out);
            Console.WriteLine();
        }
        var stats = Shard.Stats;
        Console.WriteLine($"Ran in {elapsed.TotalSeconds:0.0} s. Shard: {stats.LoopTurns:N0} loop turns, {stats.Parks:N0} parks, " +
            $"{stats.Preemptions:N0} preemptions, {stats.Main.Submitted:N0} operations submitted to the main ring, " +
            $"{stats.Main.Backlogged:N0} backlogged, {stats.FixedBufferIo:N0} O_DIRECT reads and writes with registered buffers " +
            $"({stats.RegisteredBuffers:N0} registered, {stats.BufferRegistrationFailures:N0} could not be); {GC.CollectionCount(0)} gen0 / {GC.CollectionCount(1)} gen1 / " +
            $"{GC.CollectionCount(2)} gen2 GCs in the process.");
    }

    private static string Header(Settings settings)
    {
        string cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))
                ?.Split(':', 2)[1].Trim() ?? "unknown CPU"
            : "unknown CPU";
        string gc = (GCSettings.IsServerGC ? "server" : "workstation") + (GCSettings.LatencyMode == GCLatencyMode.Batch ? "" : ", concurrent");
        return $"Machine: {Environment.ProcessorCount} CPUs, {cpu}; Linux {Environment.OSVersion.Version}, {RuntimeInformation.OSDescription}; " +
            $"{RuntimeInformation.FrameworkDescription} ({RuntimeInformation.ProcessArchitecture}), {gc} GC\n" +
            $"Shard pinned to CPU 0 (Placement.Fixed(0)), main ring {Shard.Stats.Main.SetupFlags}; the ThreadPool as configured by default.\n" +
            $"Each side: calibrated to ~{settings.Round.TotalMilliseconds:0} ms rounds, warmed up ≥ {settings.WarmUp.TotalMilliseconds:0} ms " +
            $"(Tier1 JIT), then {settings.Rounds} rounds interleaved with the other side's. Figures: median ns/op (± median absolute " +
            "deviation), median B/op; ratio = baseline ÷ Scipio (> 1: Scipio faster).";
    }
}

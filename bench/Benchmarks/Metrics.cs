using System.Diagnostics.Metrics;
using Scipio.Diagnostics;
using Scipio.Runtime;

namespace Scipio.Bench.Benchmarks;

/// <summary>What the "Scipio" meter costs: a NOP round trip through the ring (the I/O path, where the histograms
/// time each operation) and a loop turn (<c>Shard.Yield</c>, where the snapshot deadline is checked), each without a
/// listener and with a MeterListener that enables every instrument and collects the observable ones every 100 ms
/// (as dotnet-counters does every second). The ratio is the overhead.</summary>
internal static class Metrics
{
    private static readonly MeasurementCallback<double> s_ignoreDouble = static (_, _, _, _) => { };
    private static readonly MeasurementCallback<long> s_ignoreLong = static (_, _, _, _) => { };

    public static IEnumerable<Benchmark> All()
    {
        const string WhyListener = "the same with a MeterListener on every Scipio instrument (histograms recorded on each " +
            "I/O, snapshots published every 100 ms): the ratio is what a listener costs";
        yield return new Benchmark(
            "metrics-io",
            "NOP round trip through the ring, no listener attached",
            1,
            new Side("no listener", Runner.Shard, Nop),
            [new(new Side("MeterListener attached", Runner.Shard, n => WithListener(n, Nop)), WhyListener)],
            Target.None);
        yield return new Benchmark(
            "metrics-loop",
            "await Shard.Yield(): one loop turn, no listener attached",
            1,
            new Side("no listener", Runner.Shard, Yield),
            [new(new Side("MeterListener attached", Runner.Shard, n => WithListener(n, Yield)), WhyListener)],
            Target.None);
    }

    private static async ValueTask WithListener(long n, Func<long, ValueTask> body)
    {
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == ScipioMetrics.MeterName) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback(s_ignoreDouble);
        listener.SetMeasurementEventCallback(s_ignoreLong);
        listener.Start();
        using var collector = new Timer(_ => listener.RecordObservableInstruments(), null, 100, 100);
        await body(n);
    }

    private static async ValueTask Nop(long n)
    {
        var executor = ShardExecutor.Current!;
        for (long i = 0; i < n; i++)
        {
            var op = executor.Operations.RentReadWrite().Start("nop", null, null, default);
            op.PrepareNop();
            executor.Submit(op);
            await new ValueTask<int>(op, op.Version);
        }
    }

    private static async ValueTask Yield(long n)
    {
        for (long i = 0; i < n; i++) await Shard.Yield();
    }
}

using System.Diagnostics.Metrics;
using Scipio;
using Scipio.Diagnostics;

namespace Snippets;

// docs/observability.md: the meter, read in process.
public static class ObservabilityMeter
{
    public static async Task Listen()
    {
        // <snippet:obs-meter-listener>
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == ScipioMetrics.MeterName) // "Scipio"
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Print(instrument, value, tags));
        listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Print(instrument, value, tags));
        listener.Start();

        await using var pool = ShardPool.Start();
        await pool.RunOnAll(async () =>
        {
            for (int i = 0; i < 1000; i++)
                await Shard.Sleep(TimeSpan.Zero); // some work to count
        });

        // While a listener is attached, each shard publishes a snapshot of its counters every 100 ms; a collection
        // reads the latest ones.
        await Task.Delay(2 * ScipioMetrics.PublishInterval);
        listener.RecordObservableInstruments();

        static void Print(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var labels = new List<string>();
            foreach (var tag in tags)
                labels.Add($"{tag.Key}={tag.Value}");
            Console.WriteLine($"{instrument.Name} [{string.Join(", ", labels)}] {value}");
        }
        // </snippet>
    }
}

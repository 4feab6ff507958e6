using System.Diagnostics.Metrics;
using Scipio.Runtime;

namespace Scipio.Diagnostics;

/// <summary>The "Scipio" meter (System.Diagnostics.Metrics), for dotnet-counters, OpenTelemetry or a
/// MeterListener: every shard, task queue and ring of the process, tagged <c>shard</c>, <c>queue</c>, <c>ring</c>.</summary>
/// <remarks>
/// <para>Counters and gauges are observable: a collection reads the snapshot each shard publishes — a
/// <see cref="ShardStats"/> it builds on its own thread every <see cref="PublishInterval"/> while a listener is
/// attached, and hands over by one reference write. So a reader never locks the shard and never sees a half-written
/// snapshot, and the shard allocates one snapshot per interval, nothing per loop turn. With no listener a shard
/// checks one deadline per loop turn and publishes nothing.</para>
/// <para>Histograms are recorded as I/O completes: <c>scipio.io.duration</c> from submission to the final
/// completion (the device's and the kernel's part) and <c>scipio.io.resume_delay</c> from the completion to the
/// awaiting code running (the scheduler's part), in seconds. Each is timed only while a listener is enabled for
/// it.</para>
/// </remarks>
public static class ScipioMetrics
{
    /// <summary>The meter's name: "Scipio".</summary>
    public const string MeterName = "Scipio";

    /// <summary>How often a shard publishes its snapshot while a listener is attached: 100 ms.</summary>
    public static readonly TimeSpan PublishInterval = TimeSpan.FromMilliseconds(100);

    private static readonly Meter s_meter = new(MeterName, "1.0");
    private static readonly List<ShardExecutor> s_shards = [];
    private static readonly List<Instrument> s_observable = [];

    internal static readonly Histogram<double> IoDuration = s_meter.CreateHistogram<double>(
        "scipio.io.duration", "s", "Time from an I/O operation's submission to its final completion.");

    internal static readonly Histogram<double> ResumeDelay = s_meter.CreateHistogram<double>(
        "scipio.io.resume_delay", "s", "Time from an I/O operation's completion to the awaiting code running.");

    static ScipioMetrics()
    {
        ShardCounter("scipio.shard.tasks", "{work item}", "Work items run.", s => s.TasksRun);
        ShardCounter("scipio.shard.loop_turns", "{turn}", "Turns of the run loop.", s => s.LoopTurns);
        ShardCounter("scipio.shard.parks", "{park}", "Times the shard blocked in the kernel for lack of work.", s => s.Parks);
        ShardCounter("scipio.shard.wakeups", "{wakeup}", "Times another thread or shard woke the parked shard.", s => s.Wakeups);
        ShardCounter("scipio.shard.preemptions", "{preemption}", "Runs cut off because NeedPreempt became true.", s => s.Preemptions);
        ShardCounter("scipio.shard.stalls", "{stall}", "Work items that ran past the stall threshold.", s => s.Stalls);
        ShardCounter("scipio.crossshard.messages", "{message}", "Items sent to other shards of the pool.", s => s.CrossShardSent);
        Observable(s_meter.CreateObservableCounter("scipio.shard.runtime", () => PerShard(s => s.Runtime.TotalSeconds), "s", "CPU time spent running task queues."));
        Observable(s_meter.CreateObservableGauge("scipio.shard.timers", () => PerShard(s => (long)s.PendingTimers), "{timer}", "Timers armed now."));

        Observable(s_meter.CreateObservableCounter("scipio.queue.runtime", () => PerQueue(q => q.Runtime.TotalSeconds), "s", "CPU time a task queue ran."));
        Observable(s_meter.CreateObservableCounter("scipio.queue.tasks", () => PerQueue(q => q.TasksRun), "{work item}", "Work items a task queue ran."));
        Observable(s_meter.CreateObservableCounter("scipio.queue.selected", () => PerQueue(q => q.QueueSelected), "{run}", "Times the scheduler picked a task queue."));
        Observable(s_meter.CreateObservableGauge("scipio.queue.delay", () => PerQueue(q => q.MaxQueueDelay.TotalSeconds), "s", "Longest wait of a task queue from runnable to running."));
        Observable(s_meter.CreateObservableGauge("scipio.queue.shares", () => PerQueue(q => (long)q.Shares), "{share}", "A task queue's CPU shares."));
        Observable(s_meter.CreateObservableCounter("scipio.queue.io.dispatched", () => PerQueue(q => q.IoDispatched), "{operation}", "O_DIRECT requests the I/O scheduler handed the kernel for a task queue."));
        Observable(s_meter.CreateObservableCounter("scipio.queue.io.bytes", () => PerQueue(q => q.IoBytes), "By", "Bytes of those requests."));
        Observable(s_meter.CreateObservableCounter("scipio.queue.io.scheduler_wait", () => PerQueue(q => q.IoSchedulerWait.TotalSeconds), "s", "Time those requests waited in the I/O scheduler, summed."));
        Observable(s_meter.CreateObservableCounter("scipio.queue.io.device_time", () => PerQueue(q => q.IoDeviceTime.TotalSeconds), "s", "Time those requests spent in the kernel and device, summed."));

        Observable(s_meter.CreateObservableCounter("scipio.ring.submitted", () => PerRing(r => r.Submitted), "{operation}", "Operations handed to the kernel."));
        Observable(s_meter.CreateObservableCounter("scipio.ring.completed", () => PerRing(r => r.Completed), "{operation}", "Operations completed."));
        Observable(s_meter.CreateObservableUpDownCounter("scipio.ring.in_flight", () => PerRing(r => (long)r.InFlight), "{operation}", "Operations the kernel has not completed yet."));
        Observable(s_meter.CreateObservableCounter("scipio.ring.backlogged", () => PerRing(r => r.Backlogged), "{operation}", "Operations that waited for room in the ring."));
    }

    internal static void RecordIo(Ring.IoOperation op, Core.RingKind ring)
    {
        double seconds = Math.Max(0, op.Owner.LoopNowNs - op.SubmittedNs) / 1e9; // reaped in this loop turn
        IoDuration.Record(seconds, new("shard", op.Owner.IdTag), new("ring", RingName(ring)), new("queue", op.Queue.Name));
    }

    internal static void RecordResume(ShardExecutor shard, TaskQueue queue, long completedNs) =>
        ResumeDelay.Record((Clock.NowNs - completedNs) / 1e9, new("shard", shard.IdTag), new("queue", queue.Name));

    private static string RingName(Core.RingKind ring) => ring.IsPoll ? "poll" : ring.IsLatency ? "latency" : "main";

    /// <summary>Whether a listener has enabled any of the observable instruments (checked by a shard once per
    /// publish interval, not per loop turn).</summary>
    internal static bool Listening
    {
        get
        {
            foreach (var instrument in s_observable)
                if (instrument.Enabled) return true;
            return false;
        }
    }

    private static T Observable<T>(T instrument) where T : Instrument
    {
        s_observable.Add(instrument);
        return instrument;
    }

    internal static void Register(ShardExecutor shard)
    {
        lock (s_shards) s_shards.Add(shard);
    }

    internal static void Unregister(ShardExecutor shard)
    {
        lock (s_shards) s_shards.Remove(shard);
    }

    private static void ShardCounter(string name, string unit, string description, Func<ShardStats, long> value) =>
        Observable(s_meter.CreateObservableCounter(name, () => PerShard(value), unit, description));

    /// <summary>Every shard's latest snapshot. A shard whose snapshot is older than the interval (it was parked, or
    /// nobody listened) is asked for a new one and woken: the next collection sees it.</summary>
    private static ShardStats[] Published()
    {
        lock (s_shards)
        {
            var snapshots = new List<ShardStats>(s_shards.Count);
            foreach (var shard in s_shards)
            {
                if (shard.PublishedStats is { } stats) snapshots.Add(stats);
                shard.RequestPublishIfStale();
            }
            return [.. snapshots];
        }
    }

    private static IEnumerable<Measurement<T>> PerShard<T>(Func<ShardStats, T> value) where T : struct
    {
        foreach (var s in Published())
            yield return new Measurement<T>(value(s), new KeyValuePair<string, object?>("shard", s.Shard));
    }

    private static IEnumerable<Measurement<T>> PerQueue<T>(Func<TaskQueueStats, T> value) where T : struct
    {
        foreach (var s in Published())
            foreach (var q in s.TaskQueues)
                yield return new Measurement<T>(value(q), new("shard", s.Shard), new("queue", q.Name));
    }

    private static IEnumerable<Measurement<long>> PerRing(Func<RingStats, long> value)
    {
        foreach (var s in Published())
        {
            yield return new Measurement<long>(value(s.Main), new("shard", s.Shard), new("ring", "main"));
            yield return new Measurement<long>(value(s.Latency), new("shard", s.Shard), new("ring", "latency"));
            yield return new Measurement<long>(value(s.Poll), new("shard", s.Shard), new("ring", "poll"));
        }
    }
}

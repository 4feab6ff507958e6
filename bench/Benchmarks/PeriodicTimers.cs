using System.Diagnostics;
using System.Globalization;
using Scipio.Interop;

namespace Scipio.Bench.Benchmarks;

/// <summary>Wake accuracy of a 1 ms periodic timer on a CPU shared with two CPU hogs: <see cref="ShardPeriodicTimer"/>
/// beside .NET's <see cref="PeriodicTimer"/>. A distribution, not ns/op.</summary>
/// <remarks>
/// <para>Each side gets one core (CPU 0) and two hogs on it, in two forms:</para>
/// <list type="bullet">
/// <item>as each runtime means CPU-bound work to be written — on the shard, two task queues whose loops reach
/// <c>YieldIfNeeded</c> often; on the ThreadPool, two <c>Task.Run</c> busy loops (the kernel preempts them);</item>
/// <item>as the same two plain threads on both sides, busy loops pinned to CPU 0 beside the shard (or inside the
/// <c>taskset -c 0</c> process): here the kernel's scheduler shares the CPU and the runtimes only differ in how
/// their timer wakes the waiting code (the shard: its own io_uring wait; .NET: the timer thread, then a pool
/// thread).</item>
/// </list>
/// <para>The .NET side runs in a child process under <c>taskset -c 0</c>, so that its ThreadPool, timer thread and
/// hogs have one core, as the shard does.</para>
/// <para>Lateness: for each wait that did not complete at once, from the tick it waited for — the first point of the
/// 1 ms grid (counted from the timer's creation) after the wait began — to the waiting code running. A wait that
/// completed at once found a tick pending (the loop fell behind: the previous wake was late by more than what was
/// left of its period); those are counted apart. Fewer ticks than periods: ticks coalesced after a late wake.</para>
/// </remarks>
internal static class PeriodicTimers
{
    public const string Name = "periodic-timer";
    private const string ChildFlag = "--periodic-timer-child";
    private static readonly TimeSpan s_period = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan s_duration = TimeSpan.FromSeconds(2);
    private const int WarmUpTicks = 100; // JIT and start-up: not counted

    /// <summary>Handles the child process the .NET side runs in; true if this process is it.</summary>
    public static bool RunChildIfAsked(string[] args)
    {
        if (args.Length < 2 || args[0] != ChildFlag) return false;
        Console.WriteLine(string.Join(' ', DotNetTicks(threadHogs: args[1] == "threads")));
        return true;
    }

    public static void Report(TextWriter output)
    {
        output.WriteLine($"### Periodic timer, {s_period.TotalMilliseconds} ms period, {s_duration.TotalSeconds} s, two CPU hogs on CPU 0");
        output.WriteLine();
        output.WriteLine("| timer | waiting queue | hogs | ticks / periods | at once | lateness p50 ms | p99 ms | max ms | earliest ms |");
        output.WriteLine("|---|---|---|---:|---:|---:|---:|---:|---:|");
        var matters = Scipio.Latency.Matters(TimeSpan.FromMilliseconds(0.5));
        var rows = new (string Timer, string Queue, string Hogs, Func<Tick[]?> Run)[]
        {
            ("ShardPeriodicTimer", "NotImportant", "two task queues, YieldIfNeeded", () => ShardTicks(Scipio.Latency.NotImportant, threadHogs: false)),
            ("ShardPeriodicTimer", "Matters(0.5 ms)", "two task queues, YieldIfNeeded", () => ShardTicks(matters, threadHogs: false)),
            ("PeriodicTimer (taskset -c 0)", "ThreadPool", "two Task.Run busy loops", () => ChildTicks("tasks")),
            ("ShardPeriodicTimer", "NotImportant", "two busy threads pinned to CPU 0", () => ShardTicks(Scipio.Latency.NotImportant, threadHogs: true)),
            ("PeriodicTimer (taskset -c 0)", "ThreadPool", "two busy threads", () => ChildTicks("threads")),
        };
        foreach (var (timer, queue, hogs, run) in rows)
        {
            Console.Error.Write($"{Name}: {timer}, {queue}, {hogs} … ");
            var ticks = run();
            Console.Error.WriteLine("done");
            if (ticks is null || ticks.Length <= WarmUpTicks)
            {
                output.WriteLine($"| {timer} | {queue} | {hogs} | could not run (the child process needs taskset) | | | | | |");
                continue;
            }
            var counted = ticks[WarmUpTicks..];
            double p = s_period.TotalMilliseconds;
            long periods = (long)Math.Floor(counted[^1].TickMs / p) - (long)Math.Floor(ticks[WarmUpTicks - 1].TickMs / p);
            // The tick a pending wait waited for: the first grid point after the wait began.
            var lateness = counted.Where(t => !t.AtOnce).Select(t => t.TickMs - (Math.Floor(t.WaitMs / p) + 1) * p).ToArray();
            output.WriteLine($"| {timer} | {queue} | {hogs} | {counted.Length} / {periods} | {counted.Count(t => t.AtOnce)} | " +
                $"{Percentile(lateness, 0.5):F3} | {Percentile(lateness, 0.99):F3} | {lateness.Max():F3} | {lateness.Min():F3} |");
        }
        output.WriteLine();
        output.WriteLine("Lateness: from the tick a pending wait waited for (the first point of the grid after the wait began) to the " +
            "waiting code running. At once: waits that found a tick pending (not in the lateness columns). The first " +
            $"{WarmUpTicks} ticks are not counted. A negative \"earliest\": a tick before its grid point.");
        output.WriteLine();
    }

    /// <summary>One tick as the waiting loop saw it, in ms since just before the timer was created: when the wait
    /// began, when the code after it ran, and whether the wait completed at once.</summary>
    private readonly record struct Tick(double WaitMs, double TickMs, bool AtOnce)
    {
        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{WaitMs:R},{TickMs:R},{(AtOnce ? 1 : 0)}");

        public static Tick Parse(string s)
        {
            var f = s.Split(',');
            return new(double.Parse(f[0], CultureInfo.InvariantCulture), double.Parse(f[1], CultureInfo.InvariantCulture), f[2] == "1");
        }
    }

    private static double Percentile(double[] values, double p) =>
        values.Length == 0 ? double.NaN : LatencyReport.Percentile(values, p);

    private static double Ms(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalMilliseconds;

    /// <summary>Waits on the timer for <see cref="s_duration"/>; <paramref name="wait"/> is its WaitForNextTickAsync.</summary>
    private static async Task<Tick[]> Record(long start, Func<ValueTask<bool>> wait)
    {
        var ticks = new List<Tick>(4096);
        long end = start + (long)(s_duration.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            long waited = Stopwatch.GetTimestamp();
            var tick = wait();
            bool atOnce = tick.IsCompleted;
            await tick;
            long now = Stopwatch.GetTimestamp();
            ticks.Add(new Tick(Ms(start, waited), Ms(start, now), atOnce));
            if (now >= end) return ticks.ToArray();
        }
    }

    /// <summary>Busy threads for the kernel to share CPU 0 with: pinned there (the .NET child's process is confined
    /// to it already).</summary>
    private static Thread[] StartThreadHogs(Func<bool> stop, bool pin)
    {
        var hogs = new Thread[2];
        for (int i = 0; i < hogs.Length; i++)
        {
            hogs[i] = new Thread(() =>
            {
                if (pin) Cpus.PinCurrentThread([0]);
                long n = 0;
                while (!stop()) n++;
            })
            { IsBackground = true, Name = $"hog-{i}" };
            hogs[i].Start();
        }
        return hogs;
    }

    /// <summary>The ticks of a ShardPeriodicTimer waited on in a queue of <paramref name="latency"/>, on a shard
    /// pinned to CPU 0 with two hog queues or beside two hog threads.</summary>
    private static Tick[] ShardTicks(Scipio.Latency latency, bool threadHogs)
    {
        bool stopThreads = false;
        var hogThreads = threadHogs ? StartThreadHogs(() => Volatile.Read(ref stopThreads), pin: true) : [];
        var ticks = Shard.Run(async () =>
        {
            bool stop = false;
            async Task<long> Hog()
            {
                long n = 0;
                while (!stop)
                    if ((++n & 1023) == 0) await Shard.YieldIfNeeded();
                return n;
            }
            Task<long>[] hogs = threadHogs ? [] :
            [
                Shard.SpawnInto(Shard.CreateTaskQueue("hog1", Shares.Static(100), Scipio.Latency.NotImportant), Hog),
                Shard.SpawnInto(Shard.CreateTaskQueue("hog2", Shares.Static(100), Scipio.Latency.NotImportant), Hog),
            ];
            var timed = Shard.CreateTaskQueue("timer", Shares.Static(100), latency);
            var result = await Shard.SpawnInto(timed, async () =>
            {
                // One timer made and dropped first: the measured one's grid starts within a microsecond of `start`,
                // not a JIT compilation later (which would shift its grid against the one lateness is read from).
                Shard.CreatePeriodicTimer(s_period).Dispose();
                long start = Stopwatch.GetTimestamp(); // before the timer: its grid starts at or after this
                using var timer = Shard.CreatePeriodicTimer(s_period);
                return await Record(start, () => timer.WaitForNextTickAsync());
            });
            stop = true;
            foreach (var h in hogs) await h;
            return result;
        }, new ShardOptions { Placement = Placement.Fixed(0) });
        Volatile.Write(ref stopThreads, true);
        foreach (var h in hogThreads) h.Join();
        return ticks;
    }

    /// <summary>The same with .NET's PeriodicTimer awaited on the ThreadPool (run in the taskset child).</summary>
    private static Tick[] DotNetTicks(bool threadHogs)
    {
        bool stop = false;
        Thread[] hogThreads = threadHogs ? StartThreadHogs(() => Volatile.Read(ref stop), pin: false) : [];
        Task[] hogTasks = threadHogs ? [] :
        [
            Task.Run(() => { long n = 0; while (!Volatile.Read(ref stop)) n++; }),
            Task.Run(() => { long n = 0; while (!Volatile.Read(ref stop)) n++; }),
        ];
        var ticks = Task.Run(async () =>
        {
            new PeriodicTimer(s_period).Dispose(); // JIT first, as on the shard
            long start = Stopwatch.GetTimestamp(); // before the timer: its grid starts at or after this
            using var timer = new PeriodicTimer(s_period);
            return await Record(start, () => timer.WaitForNextTickAsync());
        }).GetAwaiter().GetResult();
        Volatile.Write(ref stop, true);
        foreach (var h in hogThreads) h.Join();
        Task.WaitAll(hogTasks);
        return ticks;
    }

    private static Tick[]? ChildTicks(string hogs) =>
        LatencyReport.RunOnCpu0(ChildFlag, hogs)?.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(Tick.Parse).ToArray();
}

using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Scipio.Bench.Benchmarks;

/// <summary>Spawning, yielding, preemption checks and Sleep(0): the scheduler's own costs.</summary>
internal static class Scheduling
{
    private static readonly Func<Task<int>> s_completed = static () => Task.FromResult(1);
    private static readonly Func<Task<int>> s_yieldOnceOnShard = YieldOnceOnShard;
    private static readonly Func<Task<int>> s_yieldOnceOnPool = YieldOnceOnPool;
    private static readonly long s_slice = Stopwatch.Frequency / 1000; // 1 ms, the shard's default PreemptInterval
    private static long s_sink;

    public static IEnumerable<Benchmark> All()
    {
        yield return new Benchmark(
            "spawn",
            "spawn a function that returns a completed Task<int>, await its result",
            1,
            new Side("await Shard.Spawn(f)", Runner.Shard, SpawnCompleted),
            [new(new Side("await Task.Run(f)", Runner.ThreadPool, TaskRunCompleted),
                "Task.Run is how .NET code starts work elsewhere and awaits it; the same f on both sides")],
            Target.Faster(2));

        yield return new Benchmark(
            "spawn-yield",
            "spawn an async function that yields once, then returns 1; await its result",
            1,
            new Side("await Shard.Spawn(async: Shard.Yield)", Runner.Shard, SpawnYielding),
            [new(new Side("await Task.Run(async: Task.Yield)", Runner.ThreadPool, TaskRunYielding),
                "the same function written for the ThreadPool: its yield is Task.Yield")],
            Target.Faster(2))
        {
            // SpawnedWork finishes through the ThreadPool when the spawned function completes asynchronously
            // (ConfigureAwait(false) under the queue's SynchronizationContext), and the result is posted back.
        };

        yield return new Benchmark(
            "yield",
            "await a yield in a loop: one trip through the scheduler per op",
            1,
            new Side("await Shard.Yield()", Runner.Shard, ShardYield),
            [new(new Side("await Task.Yield() on a pool thread", Runner.ThreadPool, TaskYield),
                "Task.Yield is .NET's 'let others run': the continuation goes back through the ThreadPool's queue")],
            Target.Faster(3, zeroAlloc: true));

        yield return new Benchmark(
            "yield-if-needed",
            "await Shard.YieldIfNeeded() in a loop, whose slice (1 ms) rarely ends: the cost of a preemption point",
            1,
            new Side("await Shard.YieldIfNeeded()", Runner.Shard, ShardYieldIfNeeded),
            [
                new(new Side("clock check, Task.Yield each 1 ms", Runner.ThreadPool, ClockCheckYield),
                    "what a .NET user writes for the same behaviour: read Stopwatch.GetTimestamp() each iteration and " +
                    "await Task.Yield() when 1 ms has passed"),
                new(new Side("await default(ValueTask) (floor)", Runner.ThreadPool, AwaitCompleted),
                    "the cheapest await there is: a completed ValueTask. Not an equivalent (it never yields), but the " +
                    "floor: Scipio's figure minus this one is what the preemption check costs"),
            ],
            Target.AtMost(5));

        yield return new Benchmark(
            "need-preempt",
            "read Shard.NeedPreempt in a loop (no await)",
            1,
            new Side("Shard.NeedPreempt", Runner.Shard, NeedPreemptLoop),
            [new(new Side("Stopwatch.GetTimestamp() >= deadline", Runner.ThreadPool, ClockCheckLoop),
                "without a runtime that tells it, code finds out that its slice is over by reading the clock")],
            Target.None);

        yield return new Benchmark(
            "sleep-0",
            "await Shard.Sleep(TimeSpan.Zero) in a loop: a trip through the run loop's timer step",
            1,
            new Side("await Shard.Sleep(TimeSpan.Zero)", Runner.Shard, ShardSleepZero),
            [new(new Side("await Task.Yield() on a pool thread", Runner.ThreadPool, TaskYield),
                "Task.Delay(0) completes synchronously (no trip at all) and Task.Delay(1) waits for the next timer " +
                "tick (about 1 ms, a measure of the timer's resolution, not of the runtime); Sleep(0) gives every other " +
                "task and the timers a turn and then resumes, which on the ThreadPool is Task.Yield")],
            Target.None);
    }

    // ---- spawn ----

    private static async ValueTask SpawnCompleted(long n)
    {
        for (long i = 0; i < n; i++) await Shard.Spawn(s_completed);
    }

    private static async ValueTask TaskRunCompleted(long n)
    {
        for (long i = 0; i < n; i++) await Task.Run(s_completed);
    }

    private static async ValueTask SpawnYielding(long n)
    {
        for (long i = 0; i < n; i++) await Shard.Spawn(s_yieldOnceOnShard);
    }

    private static async ValueTask TaskRunYielding(long n)
    {
        for (long i = 0; i < n; i++) await Task.Run(s_yieldOnceOnPool);
    }

    private static async Task<int> YieldOnceOnShard()
    {
        await Shard.Yield();
        return 1;
    }

    private static async Task<int> YieldOnceOnPool()
    {
        await Task.Yield();
        return 1;
    }

    // ---- yield ----

    private static async ValueTask ShardYield(long n)
    {
        for (long i = 0; i < n; i++) await Shard.Yield();
    }

    private static async ValueTask TaskYield(long n)
    {
        for (long i = 0; i < n; i++) await Task.Yield();
    }

    private static async ValueTask ShardYieldIfNeeded(long n)
    {
        for (long i = 0; i < n; i++) await Shard.YieldIfNeeded();
    }

    private static async ValueTask ClockCheckYield(long n)
    {
        long deadline = Stopwatch.GetTimestamp() + s_slice;
        for (long i = 0; i < n; i++)
        {
            if (Stopwatch.GetTimestamp() >= deadline)
            {
                await Task.Yield();
                deadline = Stopwatch.GetTimestamp() + s_slice;
            }
        }
    }

    private static async ValueTask AwaitCompleted(long n)
    {
        for (long i = 0; i < n; i++) await default(ValueTask);
    }

    // ---- preemption check (synchronous loops: called once per round, so optimized up front, not by tiering) ----

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static ValueTask NeedPreemptLoop(long n)
    {
        long hits = 0;
        for (long i = 0; i < n; i++)
            if (Shard.NeedPreempt) hits++;
        s_sink = hits;
        return default;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static ValueTask ClockCheckLoop(long n)
    {
        long deadline = Stopwatch.GetTimestamp() + s_slice;
        long hits = 0;
        for (long i = 0; i < n; i++)
            if (Stopwatch.GetTimestamp() >= deadline) hits++;
        s_sink = hits;
        return default;
    }

    // ---- sleep ----

    private static async ValueTask ShardSleepZero(long n)
    {
        for (long i = 0; i < n; i++) await Shard.Sleep(TimeSpan.Zero);
    }

    /// <summary>Keeps the preemption-check loops' results observable.</summary>
    public static long Sink => s_sink;
}

using Scipio.Bench.FSharp;

namespace Scipio.Bench.Benchmarks;

/// <summary>The F# <c>shard { }</c> builder's loops (bench/FSharp/Loops.fs): what its preemption point costs per
/// iteration when no yield is due, against the same fairness written by hand in <c>task { }</c> and against a loop
/// that never checks. All sides run on the shard, alone on it, so no yield is ever due.</summary>
/// <remarks>Each side calls its F# loop for <see cref="Chunk"/> iterations at a time, many times a round: a loop
/// that ran once per round would run as the tiered JIT's first (on-stack-replaced) code, never as its optimized code,
/// since the JIT does not replace an F# state machine's MoveNext on the stack (no OSR) and it cannot be marked for full
/// optimization up front: called for 65,536 iterations at a time, it reaches optimized code during the warm-up. A
/// call allocates its Task (and, in shard { } and in task { } with an await in the loop, a ref cell for each mutable
/// the loop uses): about 160 B per call, 0.002 B per iteration, so the targets do not require a whole round without
/// an allocation.</remarks>
internal static class FSharpLoops
{
    /// <summary>Iterations per call of a loop.</summary>
    private const int Chunk = 1 << 16;

    private static long s_sink;
    private static long[] s_items = [];

    public static IEnumerable<Benchmark> All()
    {
        yield return new Benchmark(
            "shard-loop",
            "one iteration of an F# while loop that adds to a sum, no yield due (the shard runs nothing else)",
            Chunk,
            new Side("shard { } while (preemption point per iteration)", Runner.Shard, ShardLoop),
            [
                new(new Side("task { } while + do! Shard.YieldIfNeeded()", Runner.Shard, TaskLoopYieldIfNeeded),
                    "the same fairness written by hand: a preemption point in every iteration of a task { } loop"),
                new(new Side("task { } while, no preemption point (floor)", Runner.Shard, TaskLoop),
                    "the loop with nothing checking, which a long loop must not be (it would hold the shard): not an " +
                    "equivalent but the floor; shard { } minus this is what its preemption point costs"),
            ],
            Target.AtMost(3, zeroAlloc: false));

        yield return new Benchmark(
            "shard-for-array",
            "one iteration of an F# for loop over an int64 array that adds to a sum, no yield due",
            Chunk,
            new Side("shard { } for x in array", Runner.Shard, ShardForArray),
            [
                new(new Side("task { } for x in array, no preemption point (floor)", Runner.Shard, TaskForArray),
                    "the same loop with nothing checking; both enumerate through IEnumerator<T>, as F# computation " +
                    "expressions do"),
            ],
            Target.AtMost(8, zeroAlloc: false));
    }

    private static async ValueTask ShardLoop(long n)
    {
        for (long done = 0; done < n; done += Chunk) s_sink = await Loops.ShardLoop(Chunk);
    }

    private static async ValueTask TaskLoopYieldIfNeeded(long n)
    {
        for (long done = 0; done < n; done += Chunk) s_sink = await Loops.TaskLoopYieldIfNeeded(Chunk);
    }

    private static async ValueTask TaskLoop(long n)
    {
        for (long done = 0; done < n; done += Chunk) s_sink = await Loops.TaskLoop(Chunk);
    }

    private static async ValueTask ShardForArray(long n)
    {
        for (long done = 0; done < n; done += Items.Length) s_sink = await Loops.ShardForArray(Items);
    }

    private static async ValueTask TaskForArray(long n)
    {
        for (long done = 0; done < n; done += Items.Length) s_sink = await Loops.TaskForArray(Items);
    }

    /// <summary><see cref="Chunk"/> items: a for loop over them per chunk of operations.</summary>
    private static long[] Items =>
        s_items.Length > 0 ? s_items : s_items = Enumerable.Range(0, Chunk).Select(i => (long)i).ToArray();

    /// <summary>Keeps the loops' sums observable.</summary>
    public static long Sink => s_sink;
}

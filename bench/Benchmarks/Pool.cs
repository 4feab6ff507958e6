namespace Scipio.Bench.Benchmarks;

/// <summary>Many shards: a call from one shard of a pool to another and back, and the speed-up of a CPU-bound job
/// split over two shards. The pools are started once, on CPUs 0 and 1, and disposed at the end of the suite.</summary>
internal static class Pool
{
    private const long Chunk = 1 << 20; // iterations of the CPU-bound job per operation
    private static readonly Func<Task<int>> s_one = static () => Task.FromResult(1);
    private static ShardPool? s_pair, s_single;
    private static long s_sink;

    private static ShardPool Pair => s_pair ??= ShardPool.Start(new ShardPoolOptions
    {
        Shards = 2,
        Placement = PoolPlacement.MaxSpread([0, 1]),
        // A call's reply comes back within microseconds; waking a parked shard on the other CPU costs tens of them.
        PerShard = new ShardOptions { SpinBeforePark = TimeSpan.FromMicroseconds(200) },
    });

    private static ShardPool Single => s_single ??= ShardPool.Start(new ShardPoolOptions { Shards = 1, Placement = PoolPlacement.MaxSpread([0]) });

    public static IEnumerable<Benchmark> All()
    {
        yield return new Benchmark(
            "submit-to",
            "a call to another shard and its result back: from shard 0 of a 2-shard pool (CPUs 0, 1), await Shard.SubmitTo(1, f) in a loop",
            1,
            new Side("await Shard.SubmitTo(1, f) (pool on CPUs 0, 1)", Runner.ThreadPool, SubmitToLoop),
            [new(new Side("await Task.Run(f)", Runner.ThreadPool, TaskRunLoop),
                "how .NET code hands work to another thread and awaits its result; the same f")],
            Target.None);

        yield return new Benchmark(
            "pool-speedup",
            $"a CPU-bound job ({Chunk:N0} iterations per op) split over the 2 shards of a pool (CPUs 0, 1) with RunOnAll, against the same job on a pool of 1 shard",
            2,
            new Side("2 shards, RunOnAll, half each", Runner.ThreadPool, n => Job(Pair, n)),
            [new(new Side("1 shard", Runner.ThreadPool, n => Job(Single, n)),
                "the speed-up of the second shard: the ratio is it")],
            Target.Faster(1.9));
    }

    private static async ValueTask SubmitToLoop(long n) =>
        await Pair.SubmitTo(0, async () =>
        {
            for (long i = 0; i < n; i++) await Shard.SubmitTo(1, s_one);
            return 0;
        });

    private static async ValueTask TaskRunLoop(long n)
    {
        for (long i = 0; i < n; i++) await Task.Run(s_one);
    }

    private static async ValueTask Job(ShardPool pool, long n)
    {
        long perShard = n / pool.Count;
        var sums = await pool.RunOnAll(() => Task.FromResult(Spin(perShard * Chunk)));
        foreach (long s in sums) s_sink ^= s;
    }

    private static long Spin(long iterations)
    {
        long x = 0;
        for (long i = 0; i < iterations; i++) x += (i * i) ^ (x >> 3);
        return x;
    }

    /// <summary>Stops the pools the benchmarks started.</summary>
    public static async ValueTask DisposeAsync()
    {
        if (s_pair is { } pair) await pair.DisposeAsync();
        if (s_single is { } single) await single.DisposeAsync();
        s_pair = s_single = null;
    }
}

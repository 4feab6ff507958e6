using System.Threading.Channels;
using Scipio.Channels;

namespace Scipio.Bench.Benchmarks;

/// <summary>Scipio.Channels against System.Threading.Channels: a shard-local channel, and a channel from the
/// bench's shard to a second shard.</summary>
internal static class Channels
{
    private const int Capacity = 1024;

    // local-channel: made on the bench's shard in Setup (a LocalChannel is bound to the shard that creates it).
    private static Channel<int>? s_local;
    private static readonly Channel<int> s_stcLocal =
        Channel.CreateBounded<int>(new BoundedChannelOptions(Capacity) { SingleReader = true, SingleWriter = true });

    // shared-channel: a consumer shard on CPU 1 and a consumer task on the ThreadPool, each reading until it sees
    // the round's end marker (-1), which completes the round's source.
    private static Channel<int>? s_shared;
    private static volatile TaskCompletionSource? s_sharedRound;
    private static Channel<int>? s_stcShared;
    private static volatile TaskCompletionSource? s_stcRound;

    public static IEnumerable<Benchmark> All()
    {
        yield return new Benchmark(
            "local-channel",
            $"write an int, then read it, through a bounded channel ({Capacity} slots) on one thread",
            1,
            new Side("LocalChannel.CreateBounded on the shard", Runner.Shard, LocalWriteRead),
            [new(new Side("Channel.CreateBounded (SingleReader/Writer)", Runner.ThreadPool, StcWriteRead),
                "System.Threading.Channels' bounded channel with its single-reader/single-writer options, used the same " +
                "way from one ThreadPool thread: what a .NET user would otherwise use")],
            Target.Faster(2, zeroAlloc: true))
        {
            Setup = static () =>
            {
                s_local ??= LocalChannel.CreateBounded<int>(Capacity);
                return default;
            },
        };

        yield return new Benchmark(
            "shared-channel",
            $"stream ints from one core to another through a bounded SPSC channel ({Capacity} slots); per item",
            1,
            new Side("SharedChannel, shard on CPU 0 → shard on CPU 1", Runner.Shard, SharedStream),
            [new(new Side("Channel.CreateBounded, pool thread → pool task", Runner.ThreadPool, StcStream),
                "System.Threading.Channels' bounded channel (SingleReader/Writer) between a ThreadPool producer and a " +
                "consumer task reading with ReadAllAsync: the same stream without shards")],
            Target.Faster(3))
        {
            Setup = static () =>
            {
                StartConsumers();
                return default;
            },
        };
    }

    // ---- local ----

    private static async ValueTask LocalWriteRead(long n)
    {
        var writer = s_local!.Writer;
        var reader = s_local.Reader;
        long sum = 0;
        for (long i = 0; i < n; i++)
        {
            await writer.WriteAsync((int)i);
            sum += await reader.ReadAsync();
        }
        GC.KeepAlive(sum);
    }

    private static async ValueTask StcWriteRead(long n)
    {
        var writer = s_stcLocal.Writer;
        var reader = s_stcLocal.Reader;
        long sum = 0;
        for (long i = 0; i < n; i++)
        {
            await writer.WriteAsync((int)i);
            sum += await reader.ReadAsync();
        }
        GC.KeepAlive(sum);
    }

    // ---- shared ----

    private static void StartConsumers()
    {
        if (s_shared is not null) return;
        s_shared = SharedChannel.CreateBounded<int>(Capacity);
        var shared = s_shared;
        // Runs for the rest of the process (a background thread): the bench has no "end of all benchmarks" hook.
        Shard.Start(async () =>
        {
            await foreach (int x in shared.Reader.ReadAllAsync())
                if (x < 0) s_sharedRound!.TrySetResult();
        }, new ShardOptions { Name = "bench-consumer", Placement = Placement.Fixed(1) });

        s_stcShared = Channel.CreateBounded<int>(new BoundedChannelOptions(Capacity) { SingleReader = true, SingleWriter = true });
        var stc = s_stcShared;
        _ = Task.Run(async () =>
        {
            await foreach (int x in stc.Reader.ReadAllAsync())
                if (x < 0) s_stcRound!.TrySetResult();
        });
    }

    private static async ValueTask SharedStream(long n)
    {
        var round = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        s_sharedRound = round;
        var writer = s_shared!.Writer;
        for (long i = 0; i < n; i++) await writer.WriteAsync((int)i);
        await writer.WriteAsync(-1);
        await round.Task;
    }

    private static async ValueTask StcStream(long n)
    {
        var round = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        s_stcRound = round;
        var writer = s_stcShared!.Writer;
        for (long i = 0; i < n; i++) await writer.WriteAsync((int)i);
        await writer.WriteAsync(-1);
        await round.Task;
    }
}

using Scipio.Sync;

namespace Scipio.Bench.Benchmarks;

/// <summary>Scipio.Sync's LocalSemaphore against SemaphoreSlim: the uncontended cycle (a permit is always there)
/// and two tasks ping-ponging through two semaphores (every wait suspends and is woken by the other task).</summary>
internal static class Sync
{
    // Created on the bench shard at first use (a LocalSemaphore belongs to the shard that creates it).
    private static LocalSemaphore? s_local, s_ping, s_pong;
    private static readonly SemaphoreSlim s_slim = new(1), s_slimPing = new(0), s_slimPong = new(0);

    public static IEnumerable<Benchmark> All()
    {
        yield return new Benchmark(
            "local-semaphore-uncontended",
            "await WaitAsync() then Release() on a semaphore with a permit free: the cost of guarding a section",
            1,
            new Side("LocalSemaphore on the shard", Runner.Shard, LocalUncontended),
            [new(new Side("SemaphoreSlim on a pool thread", Runner.ThreadPool, SlimUncontended),
                "SemaphoreSlim.WaitAsync is .NET's async-compatible semaphore; uncontended, it completes synchronously")],
            Target.Faster(2, zeroAlloc: true));

        yield return new Benchmark(
            "local-semaphore-contended",
            "two tasks ping-pong through two semaphores: each waits on one and releases the other; per round trip (two hand-offs)",
            1,
            new Side("LocalSemaphore, two tasks on the shard", Runner.Shard, LocalPingPong),
            [new(new Side("SemaphoreSlim, two tasks on the ThreadPool", Runner.ThreadPool, SlimPingPong),
                "the same two loops over SemaphoreSlim, the partner started with Task.Run: each wait queues a Task " +
                "and each release completes it, resuming the waiter on a pool thread")],
            Target.Faster(2, zeroAlloc: true));
    }

    // ---- uncontended ----

    private static async ValueTask LocalUncontended(long n)
    {
        var semaphore = s_local ??= new LocalSemaphore(1);
        for (long i = 0; i < n; i++)
        {
            await semaphore.WaitAsync();
            semaphore.Release();
        }
    }

    private static async ValueTask SlimUncontended(long n)
    {
        var semaphore = s_slim;
        for (long i = 0; i < n; i++)
        {
            await semaphore.WaitAsync();
            semaphore.Release();
        }
    }

    // ---- contended: n hand-offs each way ----

    private static async ValueTask LocalPingPong(long n)
    {
        var ping = s_ping ??= new LocalSemaphore(0);
        var pong = s_pong ??= new LocalSemaphore(0);
        Task partner = Shard.Spawn(() => LocalPartner(ping, pong, n));
        for (long i = 0; i < n; i++)
        {
            pong.Release();
            await ping.WaitAsync();
        }
        await partner;
    }

    private static async Task LocalPartner(LocalSemaphore ping, LocalSemaphore pong, long n)
    {
        for (long i = 0; i < n; i++)
        {
            await pong.WaitAsync();
            ping.Release();
        }
    }

    private static async ValueTask SlimPingPong(long n)
    {
        var ping = s_slimPing;
        var pong = s_slimPong;
        Task partner = Task.Run(() => SlimPartner(ping, pong, n));
        for (long i = 0; i < n; i++)
        {
            pong.Release();
            await ping.WaitAsync();
        }
        await partner;
    }

    private static async Task SlimPartner(SemaphoreSlim ping, SemaphoreSlim pong, long n)
    {
        for (long i = 0; i < n; i++)
        {
            await pong.WaitAsync();
            ping.Release();
        }
    }
}

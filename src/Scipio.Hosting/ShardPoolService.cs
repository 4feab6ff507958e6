using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Scipio.Hosting;

/// <summary>Starts the host's <see cref="ShardPool"/> before any hosted service starts (the web server among them),
/// and stops it after every hosted service has stopped — so the server drains its connections on running shards —
/// within the host's shutdown timeout (<see cref="ShardPool.DisposeAsync(CancellationToken)"/>).</summary>
internal sealed partial class ShardPoolService(ShardPoolHolder holder, ILogger<ShardPoolService> logger) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        var pool = holder.Pool;
        Started(logger, pool.Count, string.Join(", ", pool.Cpus));
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Disposes the pool: it lets submitted work finish, then joins its shards; when the host's shutdown
    /// timeout cancels <paramref name="cancellationToken"/> first, the shards stop anyway and the work still running
    /// is abandoned (its Tasks end canceled).</summary>
    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        if (!holder.IsStarted) return;
        await holder.Pool.DisposeAsync(cancellationToken);
        if (cancellationToken.IsCancellationRequested) DidNotDrain(logger);
    }

    [LoggerMessage(1, LogLevel.Information, "Scipio: {Shards} shard(s) on CPUs {Cpus}.")]
    private static partial void Started(ILogger logger, int shards, string cpus);

    [LoggerMessage(2, LogLevel.Warning, "Scipio: the shard pool's work did not finish within the host's shutdown timeout; the shards stopped and abandoned it.")]
    private static partial void DidNotDrain(ILogger logger);
}

using Microsoft.Extensions.Options;

namespace Scipio.Hosting;

/// <summary>The host's one <see cref="ShardPool"/>, started the first time anyone needs it (the hosted service as the
/// host starts, or a service resolved before that).</summary>
internal sealed class ShardPoolHolder(IOptions<ShardPoolOptions> options)
{
    private readonly Lazy<ShardPool> _pool = new(() => ShardPool.Start(options.Value), LazyThreadSafetyMode.ExecutionAndPublication);

    public ShardPool Pool => _pool.Value;

    public bool IsStarted => _pool.IsValueCreated;
}

using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Scipio;
using Scipio.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Scipio's <see cref="ShardPool"/> with a host.</summary>
public static class ScipioServiceCollectionExtensions
{
    /// <summary>Registers a <see cref="ShardPool"/> that starts and stops with the host: injectable as
    /// <see cref="ShardPool"/>, started before any hosted service starts, and disposed — submitted work finished,
    /// shards joined — after every hosted service has stopped, within the host's shutdown timeout.</summary>
    /// <param name="services">The host's services.</param>
    /// <param name="configure">Sets the pool's options (shards, placement, per-shard options); called once, when the
    /// pool starts. Calling <c>AddScipio</c> again adds to the configuration; there is one pool.</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    /// <remarks>The pool starts when the host starts (or when something resolves it first). Without
    /// <paramref name="configure"/> it has the defaults of <see cref="ShardPoolOptions"/>: one shard per CPU the
    /// process may use, spread over the machine. A host that is disposed without being stopped disposes the pool with
    /// its other services.</remarks>
    public static IServiceCollection AddScipio(this IServiceCollection services, Action<ShardPoolOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<ShardPoolOptions>();
        if (configure is not null) services.Configure(configure);
        services.TryAddSingleton<ShardPoolHolder>();
        services.TryAddSingleton(provider => provider.GetRequiredService<ShardPoolHolder>().Pool);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, ShardPoolService>());
        return services;
    }
}

using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Scipio.Hosting;
using Scipio.Hosting.Transport;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Puts Kestrel's connections on Scipio shards.</summary>
public static class ScipioWebHostBuilderExtensions
{
    /// <summary>Makes Kestrel accept and serve its connections on the shards of the host's <see cref="Scipio.ShardPool"/>
    /// (registered with <c>AddScipio</c> if it is not yet): every endpoint Kestrel is given (IPv4, IPv6, a Unix socket
    /// path) is bound on every shard — one SO_REUSEPORT listener per shard for TCP, so the kernel spreads connections
    /// over them — and each connection is read, parsed, handled and written on the shard that accepted it.</summary>
    /// <param name="builder">The web host builder (<c>WebApplicationBuilder.WebHost</c>).</param>
    /// <param name="configure">Sets the transport's options (backlog, buffer limits, TCP_NODELAY).</param>
    /// <returns><paramref name="builder"/>, for chaining.</returns>
    /// <remarks>
    /// <para>What runs where: the socket's reads and writes, Kestrel's HTTP/1.1 parsing and the request's handler
    /// all run on the connection's shard, as work of the shard's default task queue, and an <c>await</c> in a handler
    /// resumes there (the task queue is the SynchronizationContext). Kestrel hands each HTTP/2 stream to the
    /// ThreadPool; the transport moves its handler to the connection's shard before it starts. TLS (Kestrel's
    /// <c>UseHttps</c>) runs on the shard too.</para>
    /// <para>A handler that blocks — a synchronous read, <c>.Result</c>, <c>Thread.Sleep</c>, a long computation
    /// without an <c>await</c> — blocks its whole shard: every connection on it waits. Await instead; move blocking
    /// calls off the shard with <c>Shard.SpawnBlocking</c> (it resumes on the shard); split long computations with
    /// <c>await Shard.YieldIfNeeded()</c>. <c>ConfigureAwait(false)</c> leaves the shard: the rest of the handler runs
    /// on the ThreadPool, where shard APIs throw.</para>
    /// <para>Endpoints of other kinds (a file handle) are left to Kestrel's Sockets transport.</para>
    /// </remarks>
    public static IWebHostBuilder UseScipio(this IWebHostBuilder builder, Action<ScipioTransportOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.ConfigureServices(services =>
        {
            services.AddScipio();
            services.AddOptions<ScipioTransportOptions>();
            if (configure is not null) services.Configure(configure);
            // Kestrel asks its transports last-registered first: this one answers before the Sockets transport.
            if (!services.Any(d => d.ServiceType == typeof(IConnectionListenerFactory) && d.ImplementationType == typeof(ScipioTransportFactory)))
                services.AddSingleton<IConnectionListenerFactory, ScipioTransportFactory>();
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartupFilter, OnShardStartupFilter>());
        });
    }
}

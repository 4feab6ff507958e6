using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Scipio.Hosting.Transport;

/// <summary>Kestrel's transport on the host's <see cref="ShardPool"/> (registered by <c>UseScipio</c>): binds each
/// endpoint Kestrel is given on every shard (<see cref="ScipioConnectionListener"/>).</summary>
internal sealed class ScipioTransportFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly ShardPool _pool;
    private readonly ScipioTransportOptions _options;
    private readonly ShardTransport?[] _shards;

    public ScipioTransportFactory(ShardPool pool, IOptions<ScipioTransportOptions> options, ILoggerFactory loggers)
    {
        _pool = pool;
        _options = options.Value;
        _shards = new ShardTransport?[pool.Count];
        Logger = loggers.CreateLogger(TransportLog.Category);
    }

    public ILogger Logger { get; }

    /// <summary>What the calling shard's connections share; made there the first time (each shard writes only its
    /// own slot, so no lock).</summary>
    public ShardTransport TransportOnThisShard() => _shards[Shard.Id] ??= new ShardTransport(_options, Logger);

    /// <summary>IP endpoints (IPv4, IPv6) and Unix socket paths; anything else (a file handle) goes to another
    /// transport, such as Kestrel's Sockets, if one is registered.</summary>
    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint or UnixDomainSocketEndPoint;

    /// <inheritdoc/>
    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        cancellationToken.ThrowIfCancellationRequested();
        return await ScipioConnectionListener.BindAsync(endpoint, _pool, this, _options);
    }
}

using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Scipio.Net;
using TcpListener = Scipio.Net.TcpListener;

namespace Scipio.Hosting.Transport;

/// <summary>One endpoint Kestrel listens on, served by every shard of the pool: a listener per shard (SO_REUSEPORT
/// for TCP, so the kernel spreads connections over the shards; one Unix socket's descriptor shared by all, since Unix
/// sockets have no SO_REUSEPORT), each with an accept loop on its shard. A loop makes the connection on its shard,
/// starts its pipes there, and queues it for Kestrel, whose <see cref="AcceptAsync"/> takes them from that one queue.</summary>
internal sealed class ScipioConnectionListener : IConnectionListener
{
    private static readonly TimeSpan AcceptBackoff = TimeSpan.FromMilliseconds(10);

    private readonly ShardPool _pool;
    private readonly IAsyncDisposable?[] _listeners;
    private readonly Channel<ScipioConnection> _accepted;
    private readonly TaskCompletionSource _loopsEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _running;
    private int _unbound, _disposed;
    private volatile bool _poolGone;

    private ScipioConnectionListener(ShardPool pool, EndPoint endPoint)
    {
        _pool = pool;
        EndPoint = endPoint;
        _listeners = new IAsyncDisposable?[pool.Count];
        _accepted = Channel.CreateUnbounded<ScipioConnection>(new UnboundedChannelOptions
        {
            SingleReader = true, // Kestrel's one accept loop per endpoint
            SingleWriter = pool.Count == 1,
            // A shard that queues a connection must not run Kestrel's accept loop inline: it resumes on the ThreadPool.
            AllowSynchronousContinuations = false,
        });
    }

    /// <summary>The endpoint as bound: port 0 replaced by the port the kernel picked.</summary>
    public EndPoint EndPoint { get; }

    /// <summary>Binds <paramref name="endPoint"/> on every shard of <paramref name="pool"/> and starts accepting.</summary>
    /// <exception cref="AddressInUseException">The address is taken (another process listens there).</exception>
    /// <exception cref="NotSupportedException">Not an IP or Unix socket endpoint.</exception>
    public static async Task<ScipioConnectionListener> BindAsync(EndPoint endPoint, ShardPool pool, ScipioTransportFactory factory, ScipioTransportOptions options)
    {
        var bound = endPoint switch
        {
            IPEndPoint ip => await BindTcp(ip, pool, options),
            UnixDomainSocketEndPoint unix => await BindUnix(unix, pool, options),
            _ => throw new NotSupportedException($"The Scipio transport listens on IP and Unix socket endpoints, not {endPoint.GetType().Name} ({endPoint})."),
        };
        var listener = new ScipioConnectionListener(pool, bound.EndPoint);
        bound.Listeners.CopyTo(listener._listeners, 0);
        listener._running = pool.Count;
        await pool.RunOnAll(() =>
        {
            var transport = factory.TransportOnThisShard();
            _ = Shard.Spawn(() => listener.AcceptLoop(transport, listener._listeners[Shard.Id]!));
            return Task.CompletedTask;
        });
        TransportLog.Bound(factory.Logger, bound.EndPoint.ToString() ?? "?", pool.Count);
        return listener;
    }

    private readonly record struct Bound(EndPoint EndPoint, IAsyncDisposable[] Listeners);

    private static async Task<Bound> BindTcp(IPEndPoint at, ShardPool pool, ScipioTransportOptions options)
    {
        // SO_REUSEPORT would let us join a port that another process of this user listens on, and split its traffic:
        // ask first, without it, as a plain bind (Kestrel's Sockets transport) would.
        if (at.Port != 0) ProbeFree(at);
        var tcp = new TcpListenerOptions { Backlog = options.Backlog, ReusePort = true, ReuseAddress = true };
        var listeners = new IAsyncDisposable[pool.Count];
        try
        {
            // Port 0: the first shard binds and the kernel picks; the others bind the port it got.
            var first = await pool.SubmitTo(0, () => Task.FromResult(TcpListener.Bind(at, tcp)));
            listeners[0] = first;
            var local = first.LocalEndPoint;
            for (int i = 1; i < pool.Count; i++)
                listeners[i] = await pool.SubmitTo(i, () => Task.FromResult(TcpListener.Bind(new IPEndPoint(at.Address, local.Port), tcp)));
            return new Bound(local, listeners);
        }
        catch (Exception e)
        {
            await DisposeAll(pool, listeners);
            if (e is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse }) throw new AddressInUseException(e.Message, e);
            throw;
        }
    }

    private static void ProbeFree(IPEndPoint at)
    {
        using var probe = new Socket(at.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        probe.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true); // TIME_WAIT is no owner
        if (at.Address.Equals(IPAddress.IPv6Any)) probe.DualMode = true;
        try
        {
            probe.Bind(at);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new AddressInUseException($"{at} is already in use: another socket listens there. {e.Message}", e);
        }
    }

    private static async Task<Bound> BindUnix(UnixDomainSocketEndPoint at, ShardPool pool, ScipioTransportOptions options)
    {
        string path = UnixPath(at);
        var listeners = new IAsyncDisposable[pool.Count];
        try
        {
            var first = await pool.SubmitTo(0, () => Task.FromResult(UnixListener.Bind(path, options.Backlog)));
            listeners[0] = first;
            for (int i = 1; i < pool.Count; i++) listeners[i] = await pool.SubmitTo(i, () => Task.FromResult(first.Duplicate()));
            return new Bound(at, listeners);
        }
        catch (Exception e)
        {
            await DisposeAll(pool, listeners);
            if (e is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse }) throw new AddressInUseException(e.Message, e);
            throw;
        }
    }

    /// <summary>The path (or abstract name, with its leading '\0') a Unix endpoint names, from its sockaddr_un:
    /// .NET writes an abstract name's '\0' as '@' in ToString, and has no public property for it.</summary>
    internal static string UnixPath(UnixDomainSocketEndPoint at)
    {
        var address = at.Serialize();
        var bytes = new byte[address.Size - 2]; // after sa_family
        for (int i = 0; i < bytes.Length; i++) bytes[i] = address[2 + i];
        int length = bytes.Length;
        if (length > 0 && bytes[0] != 0 && Array.IndexOf(bytes, (byte)0) is >= 0 and var end) length = end; // a path ends at its NUL
        return System.Text.Encoding.UTF8.GetString(bytes, 0, length);
    }

    /// <summary>Closes each listener on its shard; false when the pool has stopped taking work (its shards close
    /// what they hold as they stop, and loops they ran are abandoned).</summary>
    private static async Task<bool> DisposeAll(ShardPool pool, IAsyncDisposable?[] listeners)
    {
        bool poolRuns = true;
        for (int i = 0; i < listeners.Length; i++)
        {
            if (listeners[i] is not { } listener) continue;
            listeners[i] = null;
            try
            {
                await pool.SubmitTo(i, async () => await listener.DisposeAsync());
            }
            catch (ObjectDisposedException)
            {
                poolRuns = false;
            }
        }
        return poolRuns;
    }

    /// <summary>On its shard: accepts until the listener is disposed, each connection started on this shard and
    /// queued for Kestrel.</summary>
    private async Task AcceptLoop(ShardTransport shard, IAsyncDisposable listener)
    {
        try
        {
            while (true)
            {
                SocketStream socket;
                try
                {
                    socket = listener is TcpListener tcp ? await tcp.AcceptAsync() : await ((UnixListener)listener).AcceptAsync();
                }
                catch (ObjectDisposedException)
                {
                    break; // unbound
                }
                catch (SocketException e)
                {
                    // A connection reset while in the backlog: the next one is fine. Out of descriptors or memory:
                    // accepting again at once would fail again at once, so wait a little first.
                    TransportLog.AcceptFailed(shard.Logger, shard.Shard, EndPoint.ToString() ?? "?", e);
                    if (e.SocketErrorCode is not (SocketError.ConnectionReset or SocketError.ConnectionAborted)) await Shard.Sleep(AcceptBackoff);
                    continue;
                }
                var connection = new ScipioConnection(socket, shard);
                connection.Start();
                // The channel completes only after every loop has ended, so this cannot fail.
                _accepted.Writer.TryWrite(connection);
            }
        }
        catch (Exception e)
        {
            TransportLog.Unexpected(shard.Logger, $"the accept loop of shard {shard.Shard} on {EndPoint}", e);
        }
        finally
        {
            if (Interlocked.Decrement(ref _running) == 0)
            {
                _accepted.Writer.TryComplete();
                _loopsEnded.TrySetResult();
            }
        }
    }

    /// <summary>The next connection, or null once unbound and every connection accepted before has been taken.</summary>
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var accepted = _accepted.Reader;
        while (true)
        {
            if (accepted.TryRead(out var connection)) return connection;
            if (!await accepted.WaitToReadAsync(cancellationToken)) return null;
        }
    }

    /// <summary>Stops accepting: every shard closes its listener (connections in the kernel's backlog are reset, as
    /// when a Sockets listener closes); connections already accepted stay, and <see cref="AcceptAsync"/> still hands
    /// out those not yet taken, then null.</summary>
    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        await Unbind();
        await _loopsEnded.Task.WaitAsync(cancellationToken);
    }

    private async Task Unbind()
    {
        if (Interlocked.Exchange(ref _unbound, 1) != 0) return;
        if (!await DisposeAll(_pool, _listeners))
        {
            // The pool stopped first (a host that stops it before the server): its accept loops will not run out.
            _poolGone = true;
            _accepted.Writer.TryComplete();
            _loopsEnded.TrySetResult();
        }
    }

    /// <summary>Unbinds, then aborts the connections Kestrel never took.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await Unbind();
        await _loopsEnded.Task;
        while (_accepted.Reader.TryRead(out var connection))
        {
            connection.Abort(new ConnectionAbortedException("The server stopped before this connection was served."));
            if (!_poolGone) await connection.DisposeAsync();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"Scipio listener on {EndPoint} ({_pool.Count} shards)";
}

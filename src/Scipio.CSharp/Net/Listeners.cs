using System.Net;
using System.Net.Sockets;
using Scipio.Interop;

namespace Scipio.Net;

/// <summary>Options of <see cref="TcpListener.Bind"/>.</summary>
public sealed class TcpListenerOptions
{
    private int _backlog = 4096;

    /// <summary>How many connections the kernel queues before they are accepted (listen(2)'s backlog, capped by
    /// net.core.somaxconn). Default 4096.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive.</exception>
    public int Backlog
    {
        get => _backlog;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            _backlog = value;
        }
    }

    /// <summary>SO_REUSEPORT: every shard of a pool binds the same port, and the kernel spreads incoming connections
    /// over their listeners. Default true. With it off, a port another socket holds is refused
    /// (<see cref="SocketError.AddressAlreadyInUse"/>).</summary>
    public bool ReusePort { get; set; } = true;

    /// <summary>SO_REUSEADDR: bind a port whose old connections linger in TIME_WAIT (a restarted server). Default true.</summary>
    public bool ReuseAddress { get; set; } = true;
}

/// <summary>A TCP listener on a shard: connections arrive by one multishot accept, armed by the first
/// <see cref="AcceptAsync"/>. With <see cref="TcpListenerOptions.ReusePort"/> (the default) every shard of a pool
/// binds its own listener on the same port and the kernel spreads connections among them.</summary>
/// <remarks>A listener belongs to the shard that bound it, and so do the connections it accepts.</remarks>
public sealed class TcpListener : IAsyncDisposable
{
    private readonly SocketAcceptor _acceptor;

    private TcpListener(SocketAcceptor acceptor) => _acceptor = acceptor;

    /// <summary>Binds and listens on <paramref name="localEndPoint"/> (port 0: the kernel picks one; read it from
    /// <see cref="LocalEndPoint"/>). <c>[::]</c> (IPv6Any) accepts IPv4 connections too (dual mode).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="localEndPoint"/> is null.</exception>
    /// <exception cref="SocketException">The port is in use (<see cref="SocketError.AddressAlreadyInUse"/>, with a
    /// message that says so), the address is not this machine's, or another socket error.</exception>
    /// <exception cref="InvalidOperationException">Not called on a shard.</exception>
    public static TcpListener Bind(IPEndPoint localEndPoint, TcpListenerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(localEndPoint);
        options ??= new TcpListenerOptions();
        return new(SocketAcceptor.Listen(localEndPoint, options.Backlog, options.ReuseAddress, options.ReusePort, SocketKind.TcpListener));
    }

    /// <summary>The address and port it listens on.</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_acceptor.LocalEndPoint;

    /// <summary>The next connection. Connections that arrive while nobody waits are kept in order.</summary>
    /// <exception cref="OperationCanceledException">Canceled; the listener stays usable and loses no connection.</exception>
    /// <exception cref="ObjectDisposedException">The listener was disposed (also while waiting).</exception>
    /// <exception cref="SocketException">The kernel refused a connection (for instance
    /// <see cref="SocketError.TooManyOpenSockets"/>); the next accept tries again.</exception>
    public async ValueTask<TcpStream> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var fd = await _acceptor.AcceptAsync(cancellationToken);
        return TcpStream.Accepted(new SocketConnection(_acceptor.Owner, fd, SocketKind.TcpStream));
    }

    /// <summary>Stops listening: a pending accept ends with <see cref="ObjectDisposedException"/>, the socket is
    /// closed through the ring. Connections already accepted stay open.</summary>
    public ValueTask DisposeAsync() => _acceptor.DisposeAsync();

    /// <inheritdoc/>
    public override string ToString() => $"TcpListener {_acceptor.LocalEndPoint} on shard {_acceptor.Owner.Id}";
}

/// <summary>A Unix stream socket listener on a shard, by path (a socket file, which the caller deletes when done)
/// or abstract name (a leading '\0'; gone with the socket). Same members as <see cref="TcpListener"/>.</summary>
public sealed class UnixListener : IAsyncDisposable
{
    private readonly SocketAcceptor _acceptor;

    private UnixListener(SocketAcceptor acceptor) => _acceptor = acceptor;

    /// <summary>Binds and listens on <paramref name="path"/>.</summary>
    /// <param name="path">A file-system path (at most 107 bytes), or an abstract name starting with '\0'.</param>
    /// <param name="backlog">listen(2)'s backlog.</param>
    /// <exception cref="ArgumentException">The path is empty or too long.</exception>
    /// <exception cref="SocketException">The path exists (<see cref="SocketError.AddressAlreadyInUse"/>), or
    /// another socket error.</exception>
    /// <exception cref="InvalidOperationException">Not called on a shard.</exception>
    public static UnixListener Bind(string path, int backlog = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(backlog);
        return new(SocketAcceptor.Listen(SocketCalls.UnixEndPoint(path), backlog, reuseAddress: false, reusePort: false, SocketKind.UnixListener));
    }

    /// <summary>Another listener, on the calling shard, that accepts from the same socket (its descriptor
    /// duplicated). Unix sockets have no SO_REUSEPORT, so this is how every shard of a pool serves one path: bind on
    /// one shard, then call <c>Duplicate</c> of that listener on each of the others. Each connection goes to one of
    /// the listeners that are accepting. May be called on any shard; disposing one listener leaves the others
    /// listening (the socket closes with the last).</summary>
    /// <exception cref="ObjectDisposedException">This listener was disposed.</exception>
    /// <exception cref="InvalidOperationException">Not called on a shard.</exception>
    public UnixListener Duplicate() => new(SocketAcceptor.Duplicate(_acceptor));

    /// <summary>The name it listens on.</summary>
    public UnixDomainSocketEndPoint LocalEndPoint => (UnixDomainSocketEndPoint)_acceptor.LocalEndPoint;

    /// <summary>The next connection; see <see cref="TcpListener.AcceptAsync"/>.</summary>
    public async ValueTask<UnixStream> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var fd = await _acceptor.AcceptAsync(cancellationToken);
        return UnixStream.Accepted(new SocketConnection(_acceptor.Owner, fd, SocketKind.UnixStream));
    }

    /// <summary>Stops listening and closes the socket (the socket file stays: delete it when done).</summary>
    public ValueTask DisposeAsync() => _acceptor.DisposeAsync();
}

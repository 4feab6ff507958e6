using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace Scipio.Net;

/// <summary>A connected stream socket served by its shard's io_uring: what <see cref="TcpStream"/> and
/// <see cref="UnixStream"/> have in common.</summary>
/// <remarks>
/// <para>A connection belongs to the shard that accepted or connected it; calls from elsewhere throw
/// <see cref="InvalidOperationException"/>. One read and one write may be pending at a time (a read and a write may
/// be pending together).</para>
/// <para>Receiving costs a waiting connection nothing but one armed multishot receive: the kernel picks a buffer
/// from the shard's provided-buffer ring only when data arrives, and a read copies it out. Reads and writes allocate
/// nothing in steady state. Canceling a read ends it at once; bytes that arrive later are kept for the next read.</para>
/// </remarks>
public abstract class SocketStream : IAsyncDisposable
{
    private Stream? _stream;
    private IDuplexPipe? _pipe;

    private protected SocketStream(SocketConnection connection) => Connection = connection;

    internal SocketConnection Connection { get; }

    /// <summary>Reads what has arrived, up to <paramref name="buffer"/>.Length bytes; waits until something has.
    /// Returns 0 at the end of the stream (the peer shut down its sending side or closed), or at once for an empty
    /// buffer once data or the end is there.</summary>
    /// <exception cref="OperationCanceledException">Canceled; the connection stays usable and loses no data.</exception>
    /// <exception cref="SocketException">The peer reset the connection (<see cref="SocketError.ConnectionReset"/>),
    /// or another socket error.</exception>
    /// <exception cref="ObjectDisposedException">The connection was disposed.</exception>
    /// <exception cref="InvalidOperationException">Another read is pending, or this is not the connection's shard.</exception>
    public ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Connection.ReadAsync(buffer, cancellationToken);

    /// <summary>Writes all of <paramref name="buffer"/> (a short send is continued until every byte is sent). The
    /// buffer must not change until the returned task completes.</summary>
    /// <exception cref="OperationCanceledException">Canceled; some of the bytes may have been sent.</exception>
    /// <exception cref="SocketException">The peer is gone (<see cref="SocketError.ConnectionReset"/>,
    /// <see cref="SocketError.Shutdown"/>), or another socket error.</exception>
    /// <exception cref="ObjectDisposedException">The connection was disposed.</exception>
    public ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        Connection.WriteAsync(buffer, cancellationToken);

    /// <summary>Shuts down receiving, sending or both (shutdown(2) through the ring). After
    /// <see cref="SocketShutdown.Send"/> the peer reads the end of the stream and may still send.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="how"/> is not a SocketShutdown value.</exception>
    public ValueTask ShutdownAsync(SocketShutdown how, CancellationToken cancellationToken = default) =>
        Connection.ShutdownAsync(how, cancellationToken);

    /// <summary>The connection as a <see cref="Stream"/> (for <see cref="StreamReader"/>, <c>SslStream</c>,
    /// compression streams): its Memory-based async members read and write the connection; synchronous ones throw
    /// <see cref="NotSupportedException"/> (a shard never blocks). Disposing the stream leaves the connection open.</summary>
    public Stream AsStream() => _stream ??= new SocketStreamAdapter(this);

    /// <summary>The connection as a System.IO.Pipelines <see cref="IDuplexPipe"/>: its reader fills from the
    /// connection and its writer flushes to it, on this shard. Completing the pipe leaves the connection open.</summary>
    public IDuplexPipe AsPipe() => _pipe ??= new SocketPipe(AsStream());

    /// <summary>Ends pending reads and writes (with <see cref="SocketException"/>
    /// <see cref="SocketError.OperationAborted"/>, as System.Net.Sockets does, once the kernel has let go of their
    /// memory) and closes the socket through the ring. Later calls throw <see cref="ObjectDisposedException"/>;
    /// disposing twice does nothing.</summary>
    public ValueTask DisposeAsync() => Connection.DisposeAsync();

    /// <summary>Closes at once, discarding what is not yet sent: a TCP peer sees a reset
    /// (<see cref="SocketError.ConnectionReset"/>) rather than the end of the stream (SO_LINGER with a zero timeout,
    /// then close, as <c>Socket.Close(0)</c> does); a Unix peer sees the end of the stream. Pending reads and writes
    /// end as with <see cref="DisposeAsync"/>; calling it after a dispose does nothing.</summary>
    /// <remarks>For a server that gives up on a connection (a protocol error, a timeout): the peer learns at once
    /// that the connection failed instead of reading a clean end.</remarks>
    public ValueTask AbortAsync() => Connection.AbortAsync();

    private sealed class SocketPipe(Stream stream) : IDuplexPipe
    {
        public PipeReader Input { get; } = PipeReader.Create(stream, new StreamPipeReaderOptions(leaveOpen: true));
        public PipeWriter Output { get; } = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));
    }
}

/// <summary>A TCP connection on a shard (IPv4 or IPv6): accepted by a <see cref="TcpListener"/> or made by
/// <see cref="ConnectAsync"/>.</summary>
/// <remarks>Nagle's algorithm is off (<see cref="NoDelay"/> true), as servers that answer requests want it.</remarks>
public sealed class TcpStream : SocketStream
{
    private TcpStream(SocketConnection connection) : base(connection) { }

    internal static TcpStream Accepted(SocketConnection connection)
    {
        var stream = new TcpStream(connection);
        stream.NoDelay = true;
        return stream;
    }

    /// <summary>Connects to <paramref name="remoteEndPoint"/>: socket and connect through the ring.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="remoteEndPoint"/> is null.</exception>
    /// <exception cref="SocketException">Nothing listens there (<see cref="SocketError.ConnectionRefused"/>), or
    /// another socket error.</exception>
    /// <exception cref="OperationCanceledException">Canceled before the connection was made.</exception>
    /// <exception cref="InvalidOperationException">Not called on a shard.</exception>
    public static async ValueTask<TcpStream> ConnectAsync(IPEndPoint remoteEndPoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(remoteEndPoint);
        return Accepted(await SocketConnection.ConnectAsync(remoteEndPoint, SocketKind.TcpStream, cancellationToken));
    }

    /// <summary>TCP_NODELAY: send small writes at once rather than coalescing them (Nagle). Default true.</summary>
    public bool NoDelay
    {
        get => Interop.SocketCalls.GetOption(Connection.Check("NoDelay"), Interop.SocketCalls.IpProtoTcp, Interop.SocketCalls.TcpNoDelay) > 0;
        set => Interop.SocketCalls.SetOption(Connection.Check("NoDelay"), Interop.SocketCalls.IpProtoTcp, Interop.SocketCalls.TcpNoDelay, value ? 1 : 0);
    }

    /// <summary>This end's address and port.</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)Connection.LocalEndPoint;

    /// <summary>The peer's address and port.</summary>
    public IPEndPoint RemoteEndPoint => (IPEndPoint)Connection.RemoteEndPoint;

    /// <inheritdoc/>
    public override string ToString() => $"TcpStream on shard {Connection.Owner.Id}";
}

/// <summary>A Unix stream socket connection on a shard: accepted by a <see cref="UnixListener"/> or made by
/// <see cref="ConnectAsync"/>. A path names a socket file; a name with a leading '\0' is in the abstract namespace.</summary>
public sealed class UnixStream : SocketStream
{
    private UnixStream(SocketConnection connection) : base(connection) { }

    internal static UnixStream Accepted(SocketConnection connection) => new(connection);

    /// <summary>Connects to the Unix socket at <paramref name="path"/> (or the abstract name, with a leading '\0').</summary>
    /// <exception cref="ArgumentException">The path is empty or longer than 107 bytes.</exception>
    /// <exception cref="SocketException">Nothing listens there (<see cref="SocketError.ConnectionRefused"/>, or
    /// AddressNotAvailable when no such socket file exists), or another socket error.</exception>
    /// <exception cref="InvalidOperationException">Not called on a shard.</exception>
    public static async ValueTask<UnixStream> ConnectAsync(string path, CancellationToken cancellationToken = default) =>
        new(await SocketConnection.ConnectAsync(Interop.SocketCalls.UnixEndPoint(path), SocketKind.UnixStream, cancellationToken));

    /// <summary>This end's name (unnamed for a connecting socket).</summary>
    public UnixDomainSocketEndPoint LocalEndPoint => (UnixDomainSocketEndPoint)Connection.LocalEndPoint;

    /// <summary>The peer's name.</summary>
    public UnixDomainSocketEndPoint RemoteEndPoint => (UnixDomainSocketEndPoint)Connection.RemoteEndPoint;

    /// <inheritdoc/>
    public override string ToString() => $"UnixStream on shard {Connection.Owner.Id}";
}

using System.Net;
using System.Net.Sockets;
using Scipio.Interop;
using Scipio.Ring;
using Scipio.Runtime;

namespace Scipio.Net;

/// <summary>A UDP socket on a shard (IPv4 or IPv6): datagrams sent and received through the ring (sendmsg,
/// recvmsg). It belongs to the shard that bound it.</summary>
/// <remarks>One <see cref="ReceiveFromAsync"/> may be pending at a time; sends may overlap.</remarks>
public sealed class UdpSocket : IAsyncDisposable, IAddressSink
{
    private readonly ShardExecutor _owner;
    private readonly FileDescriptor _fd;
    private EndPoint? _receivedFrom;
    private bool _receiving;

    private UdpSocket(ShardExecutor owner, FileDescriptor fd, IPEndPoint local)
    {
        _owner = owner;
        _fd = fd;
        LocalEndPoint = local;
    }

    /// <summary>A socket bound to <paramref name="localEndPoint"/> (port 0: the kernel picks one).</summary>
    /// <exception cref="SocketException">The port is in use, or another socket error.</exception>
    /// <exception cref="InvalidOperationException">Not called on a shard.</exception>
    public static UdpSocket Bind(IPEndPoint localEndPoint)
    {
        ArgumentNullException.ThrowIfNull(localEndPoint);
        var owner = ShardExecutor.Require("UdpSocket.Bind");
        var fd = SocketCalls.OpenBound(localEndPoint, SocketCalls.SockDgram, reuseAddress: false, reusePort: false, nameof(UdpSocket));
        try
        {
            return new UdpSocket(owner, fd, (IPEndPoint)SocketCalls.Name(fd.Fd, peer: false));
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>The address and port it is bound to.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Sets the default destination (connect(2) on a datagram socket, which does not wait): afterwards
    /// <see cref="SendAsync"/> sends there and only its datagrams are received.</summary>
    /// <exception cref="SocketException">The address family does not match, or another socket error.</exception>
    public void Connect(IPEndPoint remoteEndPoint)
    {
        ArgumentNullException.ThrowIfNull(remoteEndPoint);
        SocketCalls.ConnectTo(Check("Connect"), remoteEndPoint, nameof(UdpSocket));
    }

    /// <summary>Sends one datagram to <paramref name="remoteEndPoint"/>; returns the bytes sent (all of them).</summary>
    /// <exception cref="SocketException">For instance <see cref="SocketError.MessageSize"/> for a datagram too large.</exception>
    public ValueTask<int> SendToAsync(ReadOnlyMemory<byte> buffer, IPEndPoint remoteEndPoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(remoteEndPoint);
        return Send(buffer, remoteEndPoint, cancellationToken);
    }

    /// <summary>Sends one datagram to the connected destination (<see cref="Connect"/>).</summary>
    /// <exception cref="SocketException">Not connected (<see cref="SocketError.NotConnected"/>… the kernel says
    /// EDESTADDRREQ), or another socket error.</exception>
    public ValueTask<int> SendAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        Send(buffer, null, cancellationToken);

    private ValueTask<int> Send(ReadOnlyMemory<byte> buffer, IPEndPoint? to, CancellationToken ct)
    {
        int fd = Check("SendToAsync");
        if (ct.IsCancellationRequested) return ValueTask.FromCanceled<int>(ct);
        var op = _owner.Operations.RentSocket().Start("UdpSocket send", _fd, ct);
        op.PrepareSendTo(fd, buffer, to);
        _owner.Submit(op);
        return new ValueTask<int>(op, op.Version);
    }

    /// <summary>Receives one datagram into <paramref name="buffer"/> (the rest of a longer one is discarded) and
    /// says who sent it.</summary>
    /// <exception cref="OperationCanceledException">Canceled: the buffer is no longer used by the kernel.</exception>
    /// <exception cref="InvalidOperationException">Another receive is pending.</exception>
    public async ValueTask<SocketReceiveFromResult> ReceiveFromAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int fd = Check("ReceiveFromAsync");
        if (_receiving) throw new InvalidOperationException("A ReceiveFromAsync on this UdpSocket is already pending; await it first.");
        cancellationToken.ThrowIfCancellationRequested();
        _receiving = true;
        try
        {
            var op = _owner.Operations.RentSocket().Start("UdpSocket receive", _fd, cancellationToken);
            op.SetLingering(true);
            op.PrepareReceiveFrom(fd, buffer, this);
            _owner.Submit(op);
            int n = await new ValueTask<int>(op, op.Version);
            return new SocketReceiveFromResult { ReceivedBytes = n, RemoteEndPoint = _receivedFrom! };
        }
        finally
        {
            _receiving = false;
            _receivedFrom = null;
        }
    }

    void IAddressSink.ReceivedFrom(EndPoint from) => _receivedFrom = from;

    /// <summary>Cancels pending operations and closes the socket through the ring. Twice does nothing.</summary>
    public ValueTask DisposeAsync()
    {
        if (_fd.IsClosed) return default;
        SocketOwner.CheckShard(_owner, nameof(UdpSocket), "DisposeAsync");
        return _owner.CloseThroughRing(_fd, "UdpSocket close");
    }

    private int Check(string what) => SocketOwner.Check(_owner, _fd, nameof(UdpSocket), what);
}

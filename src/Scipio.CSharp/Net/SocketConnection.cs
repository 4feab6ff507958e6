using System.Net;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using Scipio.Interop;
using Scipio.Ring;
using Scipio.Runtime;

namespace Scipio.Net;

/// <summary>A connected stream socket, whatever its family: what <see cref="TcpStream"/> and <see cref="UnixStream"/>
/// share. Bound to the shard that accepted or connected it.</summary>
/// <remarks>
/// <para>Receiving: one multishot receive on the shard's provided-buffer ring, armed by the first read and left
/// armed, so each arrival is one CQE and no SQE; a connection that waits holds no buffer and no completion-queue room.
/// A read copies from the buffer the kernel filled into the caller's memory and gives the buffer back once it is
/// consumed. When the buffer ring runs dry the receive ends with ENOBUFS and the data waits in the socket: the next
/// read is a plain receive into the caller's memory, then the multishot receive is armed again. Data arrives in
/// order either way, since only one of the two is ever in flight. A large read with nothing in flight is a plain
/// receive too (<see cref="LargeReadThreshold"/>).</para>
/// <para>Sending: one send of the caller's memory (pinned until its CQE), continued after a short send; zero-copy
/// above <see cref="ZeroCopyWriteThreshold"/> (off by default).</para>
/// </remarks>
internal sealed class SocketConnection : IMultishotListener
{
    /// <summary>A read into at least this many bytes, with no receive in flight, is a plain receive into the
    /// caller's memory: one CQE may bring all of it, copied once by the kernel, where the buffer ring would bring it
    /// in provided-buffer pieces, each copied again (bench <c>tcp-stream</c>). int.MaxValue: always multishot.</summary>
    internal static int LargeReadThreshold = 64 << 10;

    /// <summary>A write of at least this many bytes is a zero-copy send (IORING_OP_SEND_ZC). Off (int.MaxValue): on
    /// loopback, and in this VM's measurements, the zero-copy path was slower (bench <c>tcp-stream</c>); a NIC with
    /// zero-copy transmit is where it would pay.</summary>
    internal static int ZeroCopyWriteThreshold = int.MaxValue;

    private static readonly Action<object?> s_plainReceived = static s => ((SocketConnection)s!).OnPlainReceived();

    private readonly SocketKind _kind;
    private readonly ShardWaiter<int> _read;
    private Memory<byte> _readInto; // the pending read's memory
    private MultishotOperation? _receive;
    private ProvidedBufferRing? _buffers;
    private int _bufferId = -1, _bufferOffset, _bufferLength; // the provided buffer being read from
    private int _receiveErrno; // a receive failed: later reads throw it
    private bool _endOfStream, _plainReceive;
    private ReadWriteOperation? _plain; // a plain receive in flight, and its use
    private short _plainVersion;
    private EndPoint? _local, _remote;

    public SocketConnection(ShardExecutor owner, FileDescriptor fd, SocketKind kind)
    {
        Owner = owner;
        Fd = fd;
        _kind = kind;
        _read = new ShardWaiter<int>(owner, kind.Read, _ => OnReadCanceled());
    }

    public ShardExecutor Owner { get; }
    public FileDescriptor Fd { get; }

    /// <summary>A new socket connected to <paramref name="to"/>: socket and connect, both through the ring.</summary>
    public static async ValueTask<SocketConnection> ConnectAsync(EndPoint to, SocketKind kind, CancellationToken ct)
    {
        var owner = ShardExecutor.Require($"{kind}.ConnectAsync");
        int family = SocketCalls.FamilyOf(to);
        ct.ThrowIfCancellationRequested();
        var socket = owner.Operations.RentSocket().Start($"{kind} socket", null, ct);
        socket.PrepareSocket(family, SocketCalls.SockStream);
        owner.Submit(socket);
        var fd = new FileDescriptor(await new ValueTask<int>(socket, socket.Version));
        try
        {
            var connect = owner.Operations.RentSocket().Start($"{kind} connect to {SocketCalls.Describe(to)}", fd, ct);
            connect.SetLingering(true); // a connect waits on the network, for as long as the peer takes
            connect.PrepareConnect(fd.Fd, to);
            owner.Submit(connect);
            await new ValueTask(connect, connect.Version);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
        return new SocketConnection(owner, fd, kind);
    }

    public EndPoint LocalEndPoint => _local ??= SocketCalls.Name(Check("LocalEndPoint"), peer: false);

    public EndPoint RemoteEndPoint => _remote ??= SocketCalls.Name(Check("RemoteEndPoint"), peer: true);

    /// <summary>Reads what has arrived, up to <paramref name="buffer"/>.Length bytes; 0 at the end of the stream.
    /// Completes at once when bytes are already here; otherwise the next receive CQE completes it directly, with
    /// no task of its own in between.</summary>
    public ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct)
    {
        Check("ReadAsync");
        if (_read.IsWaiting) throw new InvalidOperationException($"A read on this {_kind.Name} is already pending; await it before reading again.");
        if (ct.IsCancellationRequested) return ValueTask.FromCanceled<int>(ct);
        if (_bufferId < 0 && _receive is { HasPending: true } receive) Take(receive.ReadAsync().Result);
        if (_bufferId >= 0) return new ValueTask<int>(CopyOut(buffer.Span));
        if (_receiveErrno != 0) return ValueTask.FromException<int>(SocketErrors.ToException(_receiveErrno, _kind.Read));
        if (_endOfStream) return new ValueTask<int>(0);

        _readInto = buffer;
        var wait = _read.Wait(ct);
        if (_receive is null) Receive();
        return wait;
    }

    /// <summary>Puts a receive in flight for the pending read: the multishot receive, or a plain receive into the
    /// read's memory when the buffer ring is dry or missing or the read is large (<see cref="LargeReadThreshold"/>).</summary>
    private void Receive()
    {
        _buffers ??= (Owner.Backend as IoUringBackend)?.ReceiveBuffers;
        if (_buffers is null || _plainReceive || _readInto.Length >= LargeReadThreshold)
        {
            if (_plainReceive) Owner.ReceiveFallbacks++;
            _plainReceive = false;
            var op = Owner.Operations.RentReadWrite().Start(_kind.Read, null, Fd, default);
            op.SetSocketErrors();
            op.SetLingering(true);
            op.PrepareRecv(Fd.Fd, _readInto);
            _plain = op;
            _plainVersion = op.Version;
            Owner.Submit(op);
            op.OnCompleted(s_plainReceived, this, _plainVersion, ValueTaskSourceOnCompletedFlags.None);
            return;
        }
        _receive = Owner.Operations.RentMultishot().Start(_kind.Read, rearm: false);
        _receive.PrepareReceive(Fd.Fd, _buffers);
        _receive.Listen(this);
        Owner.Submit(_receive);
    }

    /// <summary>A receive CQE, as it arrives: ends the pending read if there is one, else stays queued.</summary>
    bool IMultishotListener.OnCqe(MultishotCqe cqe)
    {
        if (!_read.IsWaiting) return false;
        Take(cqe);
        if (_bufferId >= 0) _read.TrySetResult(CopyOut(_readInto.Span));
        else if (_receiveErrno != 0) _read.TrySetException(SocketErrors.ToException(_receiveErrno, _kind.Read));
        else if (_endOfStream) _read.TrySetResult(0);
        else Receive(); // ENOBUFS: the data waits in the socket for a plain receive
        if (!_read.IsWaiting) _readInto = default;
        return true;
    }

    /// <summary>The plain receive's CQE has been handled: the kernel is done with the read's memory.</summary>
    private void OnPlainReceived()
    {
        var op = _plain!;
        _plain = null;
        _readInto = default;
        try
        {
            int n = op.GetResult(_plainVersion);
            if (n == 0) _endOfStream = true;
            _read.TrySetResult(n);
        }
        catch (Exception e)
        {
            // Canceled by the read's token (OnReadCanceled): the kernel answered ECANCELED.
            if (_read.Token.IsCancellationRequested) _read.TrySetCanceled();
            else _read.TrySetException(e);
        }
    }

    /// <summary>The pending read's token was canceled (on the shard thread). A multishot receive holds nothing of
    /// the reader's: the read ends now, and what arrives later waits for the next read. A plain receive holds the
    /// reader's memory: it is canceled in the kernel, and the read ends when its CQE has arrived.</summary>
    private void OnReadCanceled()
    {
        if (_plain is { } op) Owner.Backend.Cancel(op);
        else
        {
            _readInto = default;
            _read.TrySetCanceled();
        }
    }

    /// <summary>Records what a receive CQE says: bytes in a provided buffer, the end of the stream, an error, or
    /// that the buffer ring ran dry. A CQE without F_MORE ends the multishot receive; the next receive arms another.</summary>
    private void Take(MultishotCqe cqe)
    {
        if (!cqe.HasMore)
        {
            _receive?.Dispose(); // it has ended: this returns it to its pool (null: the connection was disposed)
            _receive = null;
        }
        if (cqe.Result > 0)
        {
            _bufferId = ProvidedBufferRing.BufferOf(cqe.Flags);
            _bufferOffset = 0;
            _bufferLength = cqe.Result;
        }
        else if (cqe.Result == 0) _endOfStream = true;
        else if (cqe.Result == -SocketCalls.ENOBUFS) _plainReceive = true;
        else _receiveErrno = -cqe.Result;
    }

    /// <summary>Copies from the current provided buffer; gives it back to the kernel once it is consumed.</summary>
    private int CopyOut(Span<byte> into)
    {
        int n = Math.Min(into.Length, _bufferLength - _bufferOffset);
        _buffers!.Bytes((ushort)_bufferId, _bufferLength).Slice(_bufferOffset, n).CopyTo(into);
        _bufferOffset += n;
        if (_bufferOffset == _bufferLength) ReleaseBuffer();
        return n;
    }

    private void ReleaseBuffer()
    {
        if (_bufferId < 0) return;
        _buffers!.Recycle((ushort)_bufferId);
        _bufferId = -1;
    }

    /// <summary>Sends all of <paramref name="data"/>.</summary>
    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        Check("WriteAsync");
        if (ct.IsCancellationRequested) return ValueTask.FromCanceled(ct);
        if (data.IsEmpty) return default;
        var op = Owner.Operations.RentReadWrite().Start(_kind.Write, null, Fd, ct);
        op.SetSocketErrors();
        op.SetLingering(true); // a send waits for room in the socket's buffer, as long as the peer does not read
        if (data.Length >= ZeroCopyWriteThreshold) op.PrepareSendZeroCopy(Fd.Fd, data);
        else op.PrepareSend(Fd.Fd, data);
        Owner.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>shutdown(2) through the ring.</summary>
    public ValueTask ShutdownAsync(SocketShutdown how, CancellationToken ct)
    {
        Check("ShutdownAsync");
        if (how is not (SocketShutdown.Receive or SocketShutdown.Send or SocketShutdown.Both))
            throw new ArgumentOutOfRangeException(nameof(how), how, "Receive, Send or Both.");
        if (ct.IsCancellationRequested) return ValueTask.FromCanceled(ct);
        var op = Owner.Operations.RentReadWrite().Start(_kind.Shutdown, null, Fd, ct);
        op.SetSocketErrors();
        op.PrepareShutdown(Fd.Fd, (int)how); // SocketShutdown's values are SHUT_RD, SHUT_WR, SHUT_RDWR
        Owner.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>Cancels pending reads and writes (they end with OperationCanceledException once the kernel has let
    /// go of their memory), gives back the buffer being read, and closes the socket through the ring.</summary>
    public ValueTask DisposeAsync()
    {
        if (Fd.IsClosed) return default;
        CheckShard("DisposeAsync");
        _receive?.Dispose();
        _receive = null;
        ReleaseBuffer();
        // A plain receive in flight ends through its own CQE once the close cancels it; a multishot read ends now.
        if (_plain is null) _read.TrySetException(SocketErrors.ToException(Errno.ECANCELED, _kind.Read)); // as .NET: OperationAborted
        return Owner.CloseThroughRing(Fd, _kind.Close);
    }

    /// <summary>Closes abortively: SO_LINGER with a zero timeout, then <see cref="DisposeAsync"/>. A TCP peer sees a
    /// reset instead of the end of the stream, and unsent data is dropped.</summary>
    public ValueTask AbortAsync()
    {
        if (Fd.IsClosed) return default;
        CheckShard("AbortAsync");
        SocketCalls.SetLingerZero(Fd.Fd); // a failure (a Unix socket has no reset) leaves a plain close: still a close
        return DisposeAsync();
    }

    /// <summary>On the owning shard and not disposed; returns the descriptor.</summary>
    public int Check(string what) => SocketOwner.Check(Owner, Fd, _kind.Name, what);

    private void CheckShard(string what) => SocketOwner.CheckShard(Owner, _kind.Name, what);
}

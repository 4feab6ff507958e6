using System.Net;
using Scipio.Interop;
using Scipio.Ring;
using Scipio.Runtime;

namespace Scipio.Net;

/// <summary>A listening stream socket, whatever its family: what <see cref="TcpListener"/> and
/// <see cref="UnixListener"/> share. One multishot accept, armed by the first <see cref="AcceptAsync"/> and left
/// armed: each connection is one CQE, kept until accepted when nobody waits.</summary>
internal sealed class SocketAcceptor
{
    private readonly SocketKind _kind;
    private MultishotOperation? _accept;

    private SocketAcceptor(ShardExecutor owner, FileDescriptor fd, EndPoint local, SocketKind kind)
    {
        Owner = owner;
        Fd = fd;
        LocalEndPoint = local;
        _kind = kind;
    }

    public ShardExecutor Owner { get; }
    public FileDescriptor Fd { get; }
    public EndPoint LocalEndPoint { get; }

    /// <summary>socket, options, bind and listen: none of them waits, so they are plain calls.</summary>
    public static SocketAcceptor Listen(EndPoint at, int backlog, bool reuseAddress, bool reusePort, SocketKind kind)
    {
        var owner = ShardExecutor.Require($"{kind}.Bind");
        var fd = SocketCalls.OpenBound(at, SocketCalls.SockStream, reuseAddress, reusePort, kind.Name);
        try
        {
            if (SocketCalls.Listen(fd.Fd, backlog) != 0)
                throw SocketErrors.ToException(Libc.LastErrno, $"{kind} listen on {SocketCalls.Describe(at)}");
            return new SocketAcceptor(owner, fd, SocketCalls.Name(fd.Fd, peer: false), kind);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>An acceptor on the calling shard over the same listening socket as <paramref name="of"/> (its
    /// descriptor duplicated); any thread may hold <paramref name="of"/>'s handle meanwhile, so it is referenced
    /// while duplicated and a concurrent close cannot hand us a reused number.</summary>
    public static SocketAcceptor Duplicate(SocketAcceptor of)
    {
        var owner = ShardExecutor.Require($"{of._kind}.Duplicate");
        bool added = false;
        try
        {
            of.Fd.DangerousAddRef(ref added);
            int copy = SocketCalls.Duplicate(of.Fd.Fd);
            if (copy < 0) throw SocketErrors.ToException(Libc.LastErrno, $"{of._kind} duplicate");
            return new SocketAcceptor(owner, new FileDescriptor(copy), of.LocalEndPoint, of._kind);
        }
        catch (ObjectDisposedException)
        {
            throw new ObjectDisposedException(of._kind.Name); // named as the public type, not the SafeHandle
        }
        finally
        {
            if (added) of.Fd.DangerousRelease();
        }
    }

    /// <summary>The next connection's descriptor.</summary>
    public async ValueTask<FileDescriptor> AcceptAsync(CancellationToken ct)
    {
        Check("AcceptAsync");
        if (_accept is null)
        {
            _accept = Owner.Operations.RentMultishot().Start(_kind.Accept, rearm: true);
            _accept.PrepareAccept(Fd.Fd);
            Owner.Submit(_accept);
        }
        var cqe = await _accept.ReadAsync(ct);
        if (!cqe.HasMore)
        {
            _accept?.Dispose(); // it has ended (an error); the next accept arms a new one
            _accept = null;
        }
        if (cqe.Result >= 0) return new FileDescriptor(cqe.Result);
        if (Fd.IsClosed) ThrowHelper.ThrowObjectDisposed(_kind.Name);
        throw SocketErrors.ToException(-cqe.Result, _kind.Accept);
    }

    /// <summary>Stops accepting (a pending accept ends) and closes the socket through the ring.</summary>
    public ValueTask DisposeAsync()
    {
        if (Fd.IsClosed) return default;
        CheckShard("DisposeAsync");
        _accept?.Dispose(); // a pending accept ends (ObjectDisposedException, as the socket is closed below)
        _accept = null;
        return Owner.CloseThroughRing(Fd, _kind.Close);
    }

    /// <summary>On the owning shard and not disposed; returns the descriptor.</summary>
    public int Check(string what) => SocketOwner.Check(Owner, Fd, _kind.Name, what);

    private void CheckShard(string what) => SocketOwner.CheckShard(Owner, _kind.Name, what);
}

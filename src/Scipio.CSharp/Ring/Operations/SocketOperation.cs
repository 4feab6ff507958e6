using System.Buffers;
using System.Net;
using System.Runtime.InteropServices;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio.Ring;

/// <summary>Socket operations that carry an address: socket, connect, and a datagram's sendmsg / recvmsg. The kernel
/// reads (or writes) the sockaddr and the msghdr until the final CQE, so they live in native scratch the operation
/// owns, allocated once and freed when the pool trims it. Failures are <see cref="System.Net.Sockets.SocketException"/>s.</summary>
internal sealed unsafe class SocketOperation(ShardExecutor owner, OperationTable table) : IoOperation(owner, table)
{
    // Scratch layout: the sockaddr, its length (recvmsg), a msghdr and one iovec.
    private const int AddressAt = 0, MessageAt = 128, IovecAt = 192, ScratchBytes = 208;
    private byte* _scratch;
    private MemoryHandle _pin;
    private IAddressSink? _sink;

    /// <summary>Starts a use; then one Prepare* and submit.</summary>
    public SocketOperation Start(string what, SafeHandle? socket, CancellationToken ct)
    {
        Begin(what, null, socket, ct);
        SetSocketErrors();
        return this;
    }

    private byte* Scratch => _scratch != null ? _scratch : _scratch = (byte*)NativeMemory.AllocZeroed(ScratchBytes);

    /// <summary>socket(domain, type | SOCK_CLOEXEC, protocol); the result is the descriptor.</summary>
    public void PrepareSocket(int domain, int type) => SqeWriter.Socket(ref Sqe, domain, type | SocketCalls.SockCloexec, 0);

    /// <summary>connect(fd, <paramref name="to"/>).</summary>
    public void PrepareConnect(int fd, EndPoint to)
    {
        int length = SocketCalls.Encode(to, new Span<byte>(Scratch + AddressAt, SocketCalls.MaxAddressLength));
        SqeWriter.Connect(ref Sqe, fd, (ulong)(Scratch + AddressAt), (uint)length);
    }

    /// <summary>sendmsg of <paramref name="data"/> to <paramref name="to"/> (null: the connected peer).</summary>
    public void PrepareSendTo(int fd, ReadOnlyMemory<byte> data, EndPoint? to)
    {
        _pin = data.Pin();
        int length = to is null ? 0 : SocketCalls.Encode(to, new Span<byte>(Scratch + AddressAt, SocketCalls.MaxAddressLength));
        PrepareMessage(Opcode.SendMsg, fd, (nint)_pin.Pointer, data.Length, length, SocketCalls.MsgNoSignal);
    }

    /// <summary>recvmsg into <paramref name="buffer"/>; when it completes, the sender's address goes to
    /// <paramref name="sink"/> (before the awaiter resumes).</summary>
    public void PrepareReceiveFrom(int fd, Memory<byte> buffer, IAddressSink sink)
    {
        _pin = buffer.Pin();
        _sink = sink;
        PrepareMessage(Opcode.RecvMsg, fd, (nint)_pin.Pointer, buffer.Length, SocketCalls.MaxAddressLength, 0);
    }

    private void PrepareMessage(Opcode opcode, int fd, nint data, int dataLength, int addressLength, int flags)
    {
        byte* s = Scratch;
        var iovec = (nint*)(s + IovecAt);
        iovec[0] = data;
        iovec[1] = dataLength;
        var message = (nint*)(s + MessageAt); // struct msghdr, 64-bit layout
        message[0] = addressLength > 0 ? (nint)(s + AddressAt) : 0; // msg_name
        message[1] = addressLength; // msg_namelen (an int, padded)
        message[2] = (nint)iovec; // msg_iov
        message[3] = 1; // msg_iovlen
        message[4] = 0; // msg_control
        message[5] = 0; // msg_controllen
        message[6] = 0; // msg_flags
        SqeWriter.Message(ref Sqe, opcode, fd, (ulong)message, flags);
    }

    public override CqeAction OnCqe(in IoUringCqe cqe)
    {
        if (_sink is { } sink && cqe.Res >= 0)
        {
            int length = *(int*)(Scratch + MessageAt + 8); // msg_namelen, as the kernel set it
            sink.ReceivedFrom(SocketCalls.Decode(new ReadOnlySpan<byte>(Scratch + AddressAt, Math.Min(length, SocketCalls.MaxAddressLength))));
        }
        Complete(cqe.Res);
        return CqeAction.Complete;
    }

    public override void ReleaseResources()
    {
        _pin.Dispose();
        _pin = default;
        _sink = null;
        base.ReleaseResources();
    }

    /// <summary>Frees the scratch: the pool dropped the operation.</summary>
    public override void FreeScratch()
    {
        NativeMemory.Free(_scratch);
        _scratch = null;
    }

    protected override void ReturnToPool() => Table.Return(this);
}

/// <summary>Where a recvmsg's sender address goes, on the shard thread, before the receiver resumes.</summary>
internal interface IAddressSink
{
    void ReceivedFrom(EndPoint from);
}

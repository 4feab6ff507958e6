using System.Buffers;
using System.Runtime.InteropServices;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio.Ring;

/// <summary>The operations whose result is the CQE's: read, write, fsync, close, nop, and a socket's send, receive
/// and shutdown. A short write or send is continued (the SQE re-prepared for the rest) until every byte is written
/// or an error occurs.</summary>
internal sealed class ReadWriteOperation(ShardExecutor owner, OperationTable table) : IoOperation(owner, table)
{
    private MemoryHandle _pin;
    private int _written; // bytes a write has completed so far
    private int _zeroCopyResult; // a zero-copy send's result, until its notification

    /// <summary>Starts a use; then one Prepare* and submit.</summary>
    public ReadWriteOperation Start(string what, string? path, SafeHandle? file, CancellationToken ct)
    {
        Begin(what, path, file, ct);
        return this;
    }

    public void PrepareNop() => SqeWriter.Nop(ref Sqe);

    /// <summary>pread into <paramref name="buffer"/>, pinned until the final CQE.</summary>
    public unsafe void PrepareRead(int fd, Memory<byte> buffer, long offset)
    {
        _pin = buffer.Pin();
        SqeWriter.Read(ref Sqe, fd, (ulong)_pin.Pointer, (uint)buffer.Length, (ulong)offset);
    }

    /// <summary>pread into memory that stays valid by other means (native, aligned buffers).</summary>
    public void PrepareRead(int fd, nint buffer, int length, long offset) =>
        SqeWriter.Read(ref Sqe, fd, (ulong)buffer, (uint)length, (ulong)offset);

    /// <summary>pread into registered buffer <paramref name="bufIndex"/> (READ_FIXED); the memory at
    /// <paramref name="buffer"/> lies inside it and stays valid by other means.</summary>
    public void PrepareReadFixed(int fd, nint buffer, int length, long offset, int bufIndex) =>
        SqeWriter.ReadFixed(ref Sqe, fd, (ulong)buffer, (uint)length, (ulong)offset, (ushort)bufIndex);

    /// <summary>pwrite of all of registered buffer <paramref name="bufIndex"/>'s bytes at <paramref name="buffer"/>
    /// (WRITE_FIXED); a short write continues as the rest of a fixed write.</summary>
    public void PrepareWriteFixed(int fd, nint buffer, int length, long offset, int bufIndex) =>
        SqeWriter.WriteFixed(ref Sqe, fd, (ulong)buffer, (uint)length, (ulong)offset, (ushort)bufIndex);

    /// <summary>pwrite of all of <paramref name="buffer"/>, pinned until the final CQE.</summary>
    public unsafe void PrepareWrite(int fd, ReadOnlyMemory<byte> buffer, long offset)
    {
        _pin = buffer.Pin();
        SqeWriter.Write(ref Sqe, fd, (ulong)_pin.Pointer, (uint)buffer.Length, (ulong)offset);
    }

    /// <summary>send of all of <paramref name="buffer"/> (MSG_NOSIGNAL: a closed peer is EPIPE, not a signal),
    /// pinned until the final CQE.</summary>
    public unsafe void PrepareSend(int fd, ReadOnlyMemory<byte> buffer)
    {
        _pin = buffer.Pin();
        SqeWriter.Send(ref Sqe, fd, (ulong)_pin.Pointer, (uint)buffer.Length, SocketCalls.MsgNoSignal);
    }

    /// <summary>A zero-copy send of all of <paramref name="buffer"/>: pinned until the kernel's notification that
    /// it no longer reads it, which is this operation's final CQE.</summary>
    public unsafe void PrepareSendZeroCopy(int fd, ReadOnlyMemory<byte> buffer)
    {
        _pin = buffer.Pin();
        SqeWriter.SendZeroCopy(ref Sqe, fd, (ulong)_pin.Pointer, (uint)buffer.Length, SocketCalls.MsgNoSignal);
    }

    /// <summary>recv into <paramref name="buffer"/>, pinned until the final CQE.</summary>
    public unsafe void PrepareRecv(int fd, Memory<byte> buffer)
    {
        _pin = buffer.Pin();
        SqeWriter.Recv(ref Sqe, fd, (ulong)_pin.Pointer, (uint)buffer.Length, 0);
    }

    public void PrepareShutdown(int fd, int how) => SqeWriter.Shutdown(ref Sqe, fd, how);

    /// <summary>fsync, or fdatasync when <paramref name="dataOnly"/>.</summary>
    public void PrepareFsync(int fd, bool dataOnly) => SqeWriter.Fsync(ref Sqe, fd, dataOnly ? IoUringConst.FsyncDataSync : 0);

    public void PrepareClose(int fd) => SqeWriter.Close(ref Sqe, fd);

    /// <summary>fallocate: reserves <paramref name="length"/> bytes at <paramref name="offset"/> (mode 0: the file
    /// grows to cover them).</summary>
    public void PrepareFallocate(int fd, long offset, long length) => SqeWriter.Fallocate(ref Sqe, fd, 0, (ulong)offset, (ulong)length);

    /// <summary>ftruncate to <paramref name="length"/>.</summary>
    public void PrepareFtruncate(int fd, long length) => SqeWriter.Ftruncate(ref Sqe, fd, (ulong)length);

    public override CqeAction OnCqe(in IoUringCqe cqe)
    {
        if (Sqe.Opcode == Opcode.SendZc) return OnZeroCopyCqe(cqe);
        int res = cqe.Res;
        bool writes = Sqe.Opcode is Opcode.Write or Opcode.WriteFixed or Opcode.Send;
        if (writes && res > 0 && res < Sqe.Len)
        {
            _written += res;
            if (Sqe.Opcode != Opcode.Send) SqeWriter.Advance(ref Sqe, (uint)res);
            else SqeWriter.AdvanceBuffer(ref Sqe, (uint)res);
            return CqeAction.Resubmit;
        }
        Complete(writes && res >= 0 ? res + _written : res);
        return CqeAction.Complete;
    }

    /// <summary>A zero-copy send: the first CQE carries the result and F_MORE when a notification follows; the
    /// notification ends the use (or, after a short send, sends the rest).</summary>
    private CqeAction OnZeroCopyCqe(in IoUringCqe cqe)
    {
        bool notification = (cqe.Flags & IoUringConst.CqeFNotif) != 0;
        if (!notification)
        {
            _zeroCopyResult = cqe.Res;
            if ((cqe.Flags & IoUringConst.CqeFMore) != 0) return CqeAction.More;
        }
        int res = _zeroCopyResult;
        if (res > 0 && res < Sqe.Len)
        {
            _written += res;
            SqeWriter.AdvanceBuffer(ref Sqe, (uint)res);
            return CqeAction.Resubmit;
        }
        Complete(res >= 0 ? res + _written : res);
        return CqeAction.Complete;
    }

    public override void ReleaseResources()
    {
        _pin.Dispose();
        _pin = default;
        base.ReleaseResources();
    }

    protected override void ReturnToPool() => Table.Return(this);

    protected override void Reset()
    {
        base.Reset();
        _written = 0;
        _zeroCopyResult = 0;
    }
}

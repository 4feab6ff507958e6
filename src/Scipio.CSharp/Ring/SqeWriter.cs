using Scipio.Interop;

namespace Scipio.Ring;

/// <summary>One writer per io_uring opcode. Each fills a zeroed SQE, all but its user_data, which is stamped when
/// the SQE goes on a ring (<see cref="UserData"/>); comments say what a field means where the kernel reuses it for
/// something its name does not suggest.</summary>
internal static class SqeWriter
{
    public static void Nop(ref IoUringSqe sqe)
    {
        sqe.Opcode = Opcode.Nop;
        sqe.Fd = -1;
    }

    /// <summary>A relative timeout of *<paramref name="timespec"/>, which must stay valid until the SQE is
    /// submitted (the kernel copies it then). With IORING_TIMEOUT_MULTISHOT in <paramref name="flags"/> it fires
    /// <paramref name="count"/> times (0: until canceled); otherwise count must be 0 (a pure timer, not "after N
    /// completions").</summary>
    public static void Timeout(ref IoUringSqe sqe, ulong timespec, uint flags, uint count)
    {
        sqe.Opcode = Opcode.Timeout;
        sqe.Fd = -1;
        sqe.Addr = timespec;
        sqe.Len = 1; // one timespec
        sqe.Off = count; // completion count, or the number of shots of a multishot timeout
        sqe.OpFlags = flags; // timeout_flags
    }

    /// <summary>Removes the timeout whose user_data is <paramref name="target"/>; with IORING_TIMEOUT_UPDATE in
    /// <paramref name="flags"/> it re-arms it to *<paramref name="timespec"/> instead.</summary>
    public static void TimeoutRemove(ref IoUringSqe sqe, ulong target, ulong timespec, uint flags)
    {
        sqe.Opcode = Opcode.TimeoutRemove;
        sqe.Fd = -1;
        sqe.Addr = target; // user_data of the timeout, not a pointer
        sqe.Off = timespec; // addr2: the new timespec for an update
        sqe.OpFlags = flags; // timeout_flags
    }

    /// <summary>A one-shot poll of <paramref name="fd"/> for <paramref name="events"/> (POLLIN…).</summary>
    public static void PollAdd(ref IoUringSqe sqe, int fd, uint events)
    {
        sqe.Opcode = Opcode.PollAdd;
        sqe.Fd = fd;
        sqe.OpFlags = events; // poll32_events
    }

    /// <summary>A multishot poll (IORING_POLL_ADD_MULTI): a CQE with F_MORE each time <paramref name="fd"/> signals.</summary>
    public static void PollMultishot(ref IoUringSqe sqe, int fd, uint events)
    {
        PollAdd(ref sqe, fd, events);
        sqe.Len = IoUringConst.PollAddMulti; // the poll's own flags travel in len
    }

    /// <summary>IORING_OP_MSG_RING: posts a CQE with <paramref name="targetUserData"/> and result 0 to the ring
    /// <paramref name="targetRingFd"/>, which wakes a thread waiting on it.</summary>
    public static void MsgRing(ref IoUringSqe sqe, int targetRingFd, ulong targetUserData)
    {
        sqe.Opcode = Opcode.MsgRing;
        sqe.Fd = targetRingFd;
        sqe.Addr = 0; // IORING_MSG_DATA: post a CQE (rather than pass a file)
        sqe.Len = 0; // the res of the CQE posted
        sqe.Off = targetUserData; // the user_data of the CQE posted
    }

    /// <summary>Cancels the in-flight operation whose user_data is <paramref name="target"/>; or, with
    /// IORING_ASYNC_CANCEL_ANY in <paramref name="flags"/>, every one (<paramref name="target"/> ignored).</summary>
    public static void AsyncCancel(ref IoUringSqe sqe, ulong target, uint flags)
    {
        sqe.Opcode = Opcode.AsyncCancel;
        sqe.Fd = -1;
        sqe.Addr = target; // user_data to match, not a pointer
        sqe.OpFlags = flags; // cancel_flags
    }

    /// <summary>Cancels every in-flight operation on descriptor <paramref name="fd"/> (IORING_ASYNC_CANCEL_FD |
    /// IORING_ASYNC_CANCEL_ALL, 5.19).</summary>
    public static void AsyncCancelDescriptor(ref IoUringSqe sqe, int fd)
    {
        sqe.Opcode = Opcode.AsyncCancel;
        sqe.Fd = fd; // matched against each request's fd
        sqe.OpFlags = IoUringConst.AsyncCancelFd | IoUringConst.AsyncCancelAll;
    }

    /// <summary>openat(dirfd, path, flags, mode). The path (NUL-terminated) must stay valid until completion.</summary>
    public static void OpenAt(ref IoUringSqe sqe, int dirFd, ulong path, int flags, uint mode)
    {
        sqe.Opcode = Opcode.OpenAt;
        sqe.Fd = dirFd;
        sqe.Addr = path;
        sqe.Len = mode; // the creation mode travels in len
        sqe.OpFlags = (uint)flags; // open_flags
    }

    public static void Close(ref IoUringSqe sqe, int fd)
    {
        sqe.Opcode = Opcode.Close;
        sqe.Fd = fd;
    }

    /// <summary>fsync, or fdatasync with IORING_FSYNC_DATASYNC.</summary>
    public static void Fsync(ref IoUringSqe sqe, int fd, uint fsyncFlags)
    {
        sqe.Opcode = Opcode.Fsync;
        sqe.Fd = fd;
        sqe.OpFlags = fsyncFlags;
    }

    /// <summary>statx(dirfd, path, flags, mask, buffer). For an open file pass its fd, an empty path and
    /// AT_EMPTY_PATH. Path and buffer must stay valid until completion.</summary>
    public static void Statx(ref IoUringSqe sqe, int dirFd, ulong path, int flags, uint mask, ulong statxBuffer)
    {
        sqe.Opcode = Opcode.Statx;
        sqe.Fd = dirFd;
        sqe.Addr = path;
        sqe.Len = mask; // the statx mask travels in len
        sqe.Off = statxBuffer; // and the result buffer in off (addr2)
        sqe.OpFlags = (uint)flags; // statx_flags
    }

    /// <summary>renameat2(oldDirFd, oldPath, newDirFd, newPath, flags). Paths must stay valid until completion.</summary>
    public static void RenameAt(ref IoUringSqe sqe, int oldDirFd, ulong oldPath, int newDirFd, ulong newPath, uint flags)
    {
        sqe.Opcode = Opcode.RenameAt;
        sqe.Fd = oldDirFd;
        sqe.Addr = oldPath;
        sqe.Len = (uint)newDirFd; // the new directory fd travels in len
        sqe.Off = newPath; // and the new path in off (addr2)
        sqe.OpFlags = flags; // rename_flags
    }

    /// <summary>linkat(oldDirFd, oldPath, newDirFd, newPath, flags). Paths must stay valid until completion.</summary>
    public static void LinkAt(ref IoUringSqe sqe, int oldDirFd, ulong oldPath, int newDirFd, ulong newPath, int flags)
    {
        sqe.Opcode = Opcode.LinkAt;
        sqe.Fd = oldDirFd;
        sqe.Addr = oldPath;
        sqe.Len = (uint)newDirFd; // the new directory fd travels in len
        sqe.Off = newPath; // and the new path in off (addr2)
        sqe.OpFlags = (uint)flags; // hardlink_flags
    }

    /// <summary>pread(fd, buffer, length, offset); offset ulong.MaxValue (-1) reads at the file position.</summary>
    public static void Read(ref IoUringSqe sqe, int fd, ulong buffer, uint length, ulong offset)
    {
        sqe.Opcode = Opcode.Read;
        sqe.Fd = fd;
        sqe.Addr = buffer;
        sqe.Len = length;
        sqe.Off = offset;
    }

    /// <summary>pwrite(fd, buffer, length, offset).</summary>
    public static void Write(ref IoUringSqe sqe, int fd, ulong buffer, uint length, ulong offset)
    {
        sqe.Opcode = Opcode.Write;
        sqe.Fd = fd;
        sqe.Addr = buffer;
        sqe.Len = length;
        sqe.Off = offset;
    }

    /// <summary>pread into registered buffer <paramref name="bufIndex"/> (IORING_OP_READ_FIXED): the kernel uses the
    /// pages it pinned at registration instead of pinning the buffer's for this read. [buffer, buffer + length) must
    /// lie inside that registered buffer (else EFAULT).</summary>
    public static void ReadFixed(ref IoUringSqe sqe, int fd, ulong buffer, uint length, ulong offset, ushort bufIndex)
    {
        Read(ref sqe, fd, buffer, length, offset);
        sqe.Opcode = Opcode.ReadFixed;
        sqe.BufIndex = bufIndex;
    }

    /// <summary>pwrite from registered buffer <paramref name="bufIndex"/> (IORING_OP_WRITE_FIXED); the same rule as
    /// <see cref="ReadFixed"/>.</summary>
    public static void WriteFixed(ref IoUringSqe sqe, int fd, ulong buffer, uint length, ulong offset, ushort bufIndex)
    {
        Write(ref sqe, fd, buffer, length, offset);
        sqe.Opcode = Opcode.WriteFixed;
        sqe.BufIndex = bufIndex;
    }

    /// <summary>Re-prepares a read or write for what is left after <paramref name="done"/> bytes (a short write):
    /// buffer, length and file offset move on together (a fixed one stays inside its registered buffer).</summary>
    public static void Advance(ref IoUringSqe sqe, uint done)
    {
        sqe.Addr += done;
        sqe.Len -= done;
        sqe.Off += done;
    }

    /// <summary>fallocate(fd, mode, offset, length).</summary>
    public static void Fallocate(ref IoUringSqe sqe, int fd, int mode, ulong offset, ulong length)
    {
        sqe.Opcode = Opcode.Fallocate;
        sqe.Fd = fd;
        sqe.Off = offset;
        sqe.Addr = length; // the length travels in addr
        sqe.Len = (uint)mode; // and the mode in len
    }

    /// <summary>ftruncate(fd, length) (IORING_OP_FTRUNCATE, 6.9).</summary>
    public static void Ftruncate(ref IoUringSqe sqe, int fd, ulong length)
    {
        sqe.Opcode = Opcode.Ftruncate;
        sqe.Fd = fd;
        sqe.Off = length; // the new length travels in off
    }

    /// <summary>unlinkat(dirFd, path, flags): a file, or with AT_REMOVEDIR an empty directory. The path must stay
    /// valid until completion.</summary>
    public static void UnlinkAt(ref IoUringSqe sqe, int dirFd, ulong path, int flags)
    {
        sqe.Opcode = Opcode.UnlinkAt;
        sqe.Fd = dirFd;
        sqe.Addr = path;
        sqe.OpFlags = (uint)flags; // unlink_flags
    }

    /// <summary>mkdirat(dirFd, path, mode); the kernel applies the umask. The path must stay valid until completion.</summary>
    public static void MkdirAt(ref IoUringSqe sqe, int dirFd, ulong path, uint mode)
    {
        sqe.Opcode = Opcode.MkdirAt;
        sqe.Fd = dirFd;
        sqe.Addr = path;
        sqe.Len = mode; // the mode travels in len
    }

    // ---- sockets ----

    /// <summary>socket(domain, type, protocol) (IORING_OP_SOCKET, 5.19).</summary>
    public static void Socket(ref IoUringSqe sqe, int domain, int type, int protocol)
    {
        sqe.Opcode = Opcode.Socket;
        sqe.Fd = domain; // the domain travels in fd
        sqe.Off = (uint)type; // the type in off
        sqe.Len = (uint)protocol; // and the protocol in len
    }

    /// <summary>connect(fd, address, length). The address must stay valid until completion.</summary>
    public static void Connect(ref IoUringSqe sqe, int fd, ulong address, uint length)
    {
        sqe.Opcode = Opcode.Connect;
        sqe.Fd = fd;
        sqe.Addr = address;
        sqe.Off = length; // the address length, a value (not a pointer), travels in off
    }

    /// <summary>A multishot accept (IORING_ACCEPT_MULTISHOT): a CQE with a new descriptor for each connection, the
    /// peer's address not asked for.</summary>
    public static void AcceptMultishot(ref IoUringSqe sqe, int fd, int flags)
    {
        sqe.Opcode = Opcode.Accept;
        sqe.Fd = fd;
        sqe.IoPrio = IoUringConst.AcceptMultishot; // the accept's own flags travel in ioprio
        sqe.OpFlags = (uint)flags; // accept_flags (SOCK_CLOEXEC…)
    }

    /// <summary>send(fd, buffer, length, flags).</summary>
    public static void Send(ref IoUringSqe sqe, int fd, ulong buffer, uint length, int flags)
    {
        sqe.Opcode = Opcode.Send;
        sqe.Fd = fd;
        sqe.Addr = buffer;
        sqe.Len = length;
        sqe.OpFlags = (uint)flags; // msg_flags; off stays 0: it is addr2, a sendto destination
    }

    /// <summary>A zero-copy send (IORING_OP_SEND_ZC, 6.0): the kernel sends from the buffer itself and posts two
    /// CQEs, the result (with F_MORE) and, once it no longer reads the buffer, a notification (F_NOTIF).</summary>
    public static void SendZeroCopy(ref IoUringSqe sqe, int fd, ulong buffer, uint length, int flags)
    {
        Send(ref sqe, fd, buffer, length, flags);
        sqe.Opcode = Opcode.SendZc;
    }

    /// <summary>recv(fd, buffer, length, flags) into the caller's buffer.</summary>
    public static void Recv(ref IoUringSqe sqe, int fd, ulong buffer, uint length, int flags)
    {
        sqe.Opcode = Opcode.Recv;
        sqe.Fd = fd;
        sqe.Addr = buffer;
        sqe.Len = length;
        sqe.OpFlags = (uint)flags; // msg_flags
    }

    /// <summary>A multishot recv (IORING_RECV_MULTISHOT) into buffers the kernel picks from provided-buffer group
    /// <paramref name="group"/>: a CQE per arrival, naming its buffer, until an error, the end of the stream, or
    /// the group runs dry (ENOBUFS).</summary>
    public static void RecvMultishot(ref IoUringSqe sqe, int fd, ushort group)
    {
        sqe.Opcode = Opcode.Recv;
        sqe.Fd = fd;
        sqe.IoPrio = IoUringConst.RecvMultishot; // the receive's own flags travel in ioprio
        sqe.Flags |= IoUringConst.SqeBufferSelect;
        sqe.BufIndex = group; // buf_group: the field is shared with buf_index
        sqe.Len = 0; // 0: each arrival fills up to a whole provided buffer
    }

    /// <summary>sendmsg / recvmsg(fd, message, flags). The msghdr, its iovecs and its address must stay valid until
    /// completion.</summary>
    public static void Message(ref IoUringSqe sqe, Opcode opcode, int fd, ulong message, int flags)
    {
        sqe.Opcode = opcode;
        sqe.Fd = fd;
        sqe.Addr = message;
        sqe.Len = 1; // one msghdr
        sqe.OpFlags = (uint)flags; // msg_flags
    }

    /// <summary>shutdown(fd, how).</summary>
    public static void Shutdown(ref IoUringSqe sqe, int fd, int how)
    {
        sqe.Opcode = Opcode.Shutdown;
        sqe.Fd = fd;
        sqe.Len = (uint)how; // how travels in len
    }

    /// <summary>Moves a send on past the <paramref name="done"/> bytes the kernel took (a short send): only the
    /// buffer moves; off is addr2 for a send (a destination address), not a file offset.</summary>
    public static void AdvanceBuffer(ref IoUringSqe sqe, uint done)
    {
        sqe.Addr += done;
        sqe.Len -= done;
    }
}

using Scipio.Interop;

namespace Scipio.Ring;

/// <summary>One writer per io_uring opcode. Each fills a zeroed SQE; comments say what a field means where the
/// kernel reuses it for something its name does not suggest.</summary>
internal static class SqeWriter
{
    public static void Nop(ref IoUringSqe sqe, ulong userData)
    {
        sqe.Opcode = Opcode.Nop;
        sqe.Fd = -1;
        sqe.UserData = userData;
    }

    /// <summary>A relative timeout of *<paramref name="timespec"/>. The timespec must stay valid only until the
    /// SQE is submitted: the kernel copies it at submission.</summary>
    public static void Timeout(ref IoUringSqe sqe, ulong timespec, uint flags, ulong userData)
    {
        sqe.Opcode = Opcode.Timeout;
        sqe.Fd = -1;
        sqe.Addr = timespec;
        sqe.Len = 1; // one timespec
        sqe.Off = 0; // completion count: 0 = a pure timer, not "after N completions"
        sqe.OpFlags = flags; // timeout_flags
        sqe.UserData = userData;
    }

    /// <summary>Removes the timeout whose user_data is <paramref name="target"/>; with IORING_TIMEOUT_UPDATE in
    /// <paramref name="flags"/> it re-arms it to *<paramref name="timespec"/> instead.</summary>
    public static void TimeoutRemove(ref IoUringSqe sqe, ulong target, ulong timespec, uint flags, ulong userData)
    {
        sqe.Opcode = Opcode.TimeoutRemove;
        sqe.Fd = -1;
        sqe.Addr = target; // user_data of the timeout, not a pointer
        sqe.Off = timespec; // addr2: the new timespec for an update
        sqe.OpFlags = flags; // timeout_flags
        sqe.UserData = userData;
    }

    /// <summary>A one-shot poll of <paramref name="fd"/> for <paramref name="events"/> (POLLIN…).</summary>
    public static void PollAdd(ref IoUringSqe sqe, int fd, uint events, ulong userData)
    {
        sqe.Opcode = Opcode.PollAdd;
        sqe.Fd = fd;
        sqe.OpFlags = events; // poll32_events
        sqe.UserData = userData;
    }

    /// <summary>IORING_OP_MSG_RING: posts a CQE with <paramref name="targetUserData"/> and result 0 to the ring
    /// <paramref name="targetRingFd"/>, which wakes a thread waiting on it.</summary>
    public static void MsgRing(ref IoUringSqe sqe, int targetRingFd, ulong targetUserData, ulong userData)
    {
        sqe.Opcode = Opcode.MsgRing;
        sqe.Fd = targetRingFd;
        sqe.Addr = 0; // IORING_MSG_DATA: post a CQE (rather than pass a file)
        sqe.Len = 0; // the res of the CQE posted
        sqe.Off = targetUserData; // the user_data of the CQE posted
        sqe.UserData = userData;
    }

    /// <summary>Cancels the in-flight operation whose user_data is <paramref name="target"/>.</summary>
    public static void AsyncCancel(ref IoUringSqe sqe, ulong target, ulong userData)
    {
        sqe.Opcode = Opcode.AsyncCancel;
        sqe.Fd = -1;
        sqe.Addr = target; // user_data to match, not a pointer
        sqe.UserData = userData;
    }

    /// <summary>openat(dirfd, path, flags, mode). The path (NUL-terminated) must stay valid until completion.</summary>
    public static void OpenAt(ref IoUringSqe sqe, int dirFd, ulong path, int flags, uint mode, ulong userData)
    {
        sqe.Opcode = Opcode.OpenAt;
        sqe.Fd = dirFd;
        sqe.Addr = path;
        sqe.Len = mode; // the creation mode travels in len
        sqe.OpFlags = (uint)flags; // open_flags
        sqe.UserData = userData;
    }

    public static void Close(ref IoUringSqe sqe, int fd, ulong userData)
    {
        sqe.Opcode = Opcode.Close;
        sqe.Fd = fd;
        sqe.UserData = userData;
    }

    /// <summary>fsync, or fdatasync with IORING_FSYNC_DATASYNC.</summary>
    public static void Fsync(ref IoUringSqe sqe, int fd, uint fsyncFlags, ulong userData)
    {
        sqe.Opcode = Opcode.Fsync;
        sqe.Fd = fd;
        sqe.OpFlags = fsyncFlags;
        sqe.UserData = userData;
    }

    /// <summary>statx(dirfd, path, flags, mask, buffer). For an open file pass its fd, an empty path and
    /// AT_EMPTY_PATH. Path and buffer must stay valid until completion.</summary>
    public static void Statx(ref IoUringSqe sqe, int dirFd, ulong path, int flags, uint mask, ulong statxBuffer, ulong userData)
    {
        sqe.Opcode = Opcode.Statx;
        sqe.Fd = dirFd;
        sqe.Addr = path;
        sqe.Len = mask; // the statx mask travels in len
        sqe.Off = statxBuffer; // and the result buffer in off (addr2)
        sqe.OpFlags = (uint)flags; // statx_flags
        sqe.UserData = userData;
    }

    /// <summary>pread(fd, buffer, length, offset); offset ulong.MaxValue (-1) reads at the file position.</summary>
    public static void Read(ref IoUringSqe sqe, int fd, ulong buffer, uint length, ulong offset, ulong userData)
    {
        sqe.Opcode = Opcode.Read;
        sqe.Fd = fd;
        sqe.Addr = buffer;
        sqe.Len = length;
        sqe.Off = offset;
        sqe.UserData = userData;
    }

    /// <summary>pwrite(fd, buffer, length, offset).</summary>
    public static void Write(ref IoUringSqe sqe, int fd, ulong buffer, uint length, ulong offset, ulong userData)
    {
        sqe.Opcode = Opcode.Write;
        sqe.Fd = fd;
        sqe.Addr = buffer;
        sqe.Len = length;
        sqe.Off = offset;
        sqe.UserData = userData;
    }
}

using System.Runtime.InteropServices;

namespace Scipio.Interop;

/// <summary>What the epoll backend does where io_uring would take an SQE: the plain system call the SQE describes,
/// with the SQE's own fields (see <see cref="Ring.SqeWriter"/> for where each travels). Results are as a CQE's
/// <c>res</c>: the count or descriptor, or a negated errno.</summary>
internal static unsafe partial class PlainSyscalls
{
    private const string Lib = "libc";
    public const int MsgDontWait = 0x40;
    public const int EAgain = 11, EInProgress = 115, ESpipe = 29;
    private const int FGetFl = 3, FSetFl = 4, ONonblock = 0x800;
    private const int SolSocket = 1, SoError = 4;

    /// <summary>Whether the operation waits for a socket's readiness (tried at once, again on each edge), as opposed
    /// to blocking work done on a helper thread.</summary>
    public static bool IsSocketOperation(Opcode opcode) =>
        opcode is Opcode.Accept or Opcode.Connect or Opcode.Send or Opcode.SendZc or Opcode.Recv or Opcode.SendMsg or Opcode.RecvMsg;

    /// <summary>The readiness an operation waits for when its first try says EAGAIN: in (true) or out.</summary>
    public static bool WaitsForInput(Opcode opcode) => opcode is Opcode.Accept or Opcode.Recv or Opcode.RecvMsg or Opcode.Read;

    /// <summary>Whether <paramref name="fd"/> is a FIFO, a pipe or a socket: a file epoll can wait for, whose reads
    /// and writes may wait for ever (so they must not hold a helper thread).</summary>
    public static bool IsPollable(int fd)
    {
        const int statxType = 0x1, sIfMt = 0xF000, sIfIfo = 0x1000, sIfSock = 0xC000;
        byte* buffer = stackalloc byte[256];
        byte empty = 0;
        if (Statx(fd, (nint)(&empty), Libc.AtEmptyPath, statxType, (nint)buffer) != 0) return false;
        int type = *(ushort*)(buffer + 0x1C) & sIfMt; // stx_mode
        return type is sIfIfo or sIfSock;
    }

    /// <summary>One try of an operation on a non-blocking socket, FIFO or pipe, never blocking. EAGAIN (-11) means:
    /// wait for readiness and try again. A connect that is under way says EINPROGRESS the first time; once the socket
    /// is writable, <see cref="ConnectResult"/> tells how it ended.</summary>
    public static int TryNonBlocking(in IoUringSqe sqe)
    {
        int fd = sqe.Fd;
        nint r = sqe.Opcode switch
        {
            Opcode.Read => Read(fd, (nint)sqe.Addr, sqe.Len),
            Opcode.Write => Libc.Write(fd, (void*)sqe.Addr, sqe.Len),
            Opcode.Accept => Accept4(fd, 0, 0, (int)sqe.OpFlags),
            Opcode.Connect => Connect(fd, (nint)sqe.Addr, (int)sqe.Off),
            Opcode.Send or Opcode.SendZc => Send(fd, (nint)sqe.Addr, sqe.Len, (int)sqe.OpFlags | MsgDontWait),
            Opcode.Recv => Recv(fd, (nint)sqe.Addr, sqe.Len, (int)sqe.OpFlags | MsgDontWait),
            Opcode.SendMsg => SendMsg(fd, (nint)sqe.Addr, (int)sqe.OpFlags | MsgDontWait),
            Opcode.RecvMsg => RecvMsg(fd, (nint)sqe.Addr, (int)sqe.OpFlags | MsgDontWait),
            _ => -1,
        };
        return r >= 0 ? (int)r : -Marshal.GetLastSystemError();
    }

    /// <summary>How a connect that said EINPROGRESS ended, once the socket became writable: 0 or a negated errno.</summary>
    public static int ConnectResult(int fd)
    {
        int error = 0, length = sizeof(int);
        return GetSockOpt(fd, SolSocket, SoError, &error, &length) == 0 ? -error : -Marshal.GetLastSystemError();
    }

    /// <summary>Makes a socket, FIFO or pipe non-blocking, so that accept, connect, read and write never block the
    /// shard (send and receive pass MSG_DONTWAIT anyway).</summary>
    public static void SetNonBlocking(int fd)
    {
        int flags = Fcntl(fd, FGetFl, 0);
        if (flags >= 0 && (flags & ONonblock) == 0) Fcntl(fd, FSetFl, flags | ONonblock);
    }

    /// <summary>The blocking operations, run on a helper thread: file I/O, opening, closing, metadata, sockets' set-up
    /// and shutdown, a no-op. An opcode the epoll backend does not carry out answers EOPNOTSUPP.</summary>
    public static int Run(in IoUringSqe sqe)
    {
        int fd = sqe.Fd;
        nint r = sqe.Opcode switch
        {
            Opcode.Nop => 0,
            Opcode.Read or Opcode.ReadFixed => ReadAt(fd, (nint)sqe.Addr, sqe.Len, sqe.Off),
            Opcode.Write or Opcode.WriteFixed => WriteAt(fd, (nint)sqe.Addr, sqe.Len, sqe.Off),
            Opcode.Fsync => (sqe.OpFlags & IoUringConst.FsyncDataSync) != 0 ? Fdatasync(fd) : Fsync(fd),
            Opcode.OpenAt => OpenAt(fd, (nint)sqe.Addr, (int)sqe.OpFlags, sqe.Len),
            Opcode.Close => Libc.Close(fd),
            Opcode.Statx => Statx(fd, (nint)sqe.Addr, (int)sqe.OpFlags, sqe.Len, (nint)sqe.Off),
            Opcode.RenameAt => RenameAt2(fd, (nint)sqe.Addr, (int)sqe.Len, (nint)sqe.Off, sqe.OpFlags),
            Opcode.LinkAt => LinkAt(fd, (nint)sqe.Addr, (int)sqe.Len, (nint)sqe.Off, (int)sqe.OpFlags),
            Opcode.UnlinkAt => UnlinkAt(fd, (nint)sqe.Addr, (int)sqe.OpFlags),
            Opcode.MkdirAt => MkdirAt(fd, (nint)sqe.Addr, sqe.Len),
            Opcode.Fallocate => Fallocate(fd, (int)sqe.Len, (long)sqe.Off, (long)sqe.Addr),
            Opcode.Ftruncate => Libc.Ftruncate(fd, (long)sqe.Off),
            Opcode.Socket => Socket(fd, (int)sqe.Off, (int)sqe.Len),
            Opcode.Shutdown => Shutdown(fd, (int)sqe.Len),
            _ => Unsupported(),
        };
        return r >= 0 ? (int)r : -Marshal.GetLastSystemError();
    }

    private static nint Unsupported()
    {
        Marshal.SetLastSystemError(Errno.EOPNOTSUPP);
        return -1;
    }

    /// <summary>pread, or read where the file has no offsets (a pipe, a FIFO: io_uring ignores the offset there).</summary>
    private static nint ReadAt(int fd, nint buffer, uint length, ulong offset)
    {
        nint r = offset == ulong.MaxValue ? Read(fd, buffer, length) : Pread(fd, buffer, length, (long)offset);
        return r < 0 && Marshal.GetLastSystemError() == ESpipe ? Read(fd, buffer, length) : r;
    }

    private static nint WriteAt(int fd, nint buffer, uint length, ulong offset)
    {
        nint r = offset == ulong.MaxValue ? Libc.Write(fd, (void*)buffer, length) : Libc.Pwrite(fd, (void*)buffer, length, (long)offset);
        return r < 0 && Marshal.GetLastSystemError() == ESpipe ? Libc.Write(fd, (void*)buffer, length) : r;
    }

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    private static partial nint Read(int fd, nint buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "pread", SetLastError = true)]
    private static partial nint Pread(int fd, nint buffer, nuint count, long offset);

    [LibraryImport(Lib, EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport(Lib, EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int Fdatasync(int fd);

    [LibraryImport(Lib, EntryPoint = "openat", SetLastError = true)]
    private static partial int OpenAt(int dirFd, nint path, int flags, uint mode);

    [LibraryImport(Lib, EntryPoint = "statx", SetLastError = true)]
    private static partial int Statx(int dirFd, nint path, int flags, uint mask, nint buffer);

    [LibraryImport(Lib, EntryPoint = "renameat2", SetLastError = true)]
    private static partial int RenameAt2(int oldDirFd, nint oldPath, int newDirFd, nint newPath, uint flags);

    [LibraryImport(Lib, EntryPoint = "linkat", SetLastError = true)]
    private static partial int LinkAt(int oldDirFd, nint oldPath, int newDirFd, nint newPath, int flags);

    [LibraryImport(Lib, EntryPoint = "unlinkat", SetLastError = true)]
    private static partial int UnlinkAt(int dirFd, nint path, int flags);

    [LibraryImport(Lib, EntryPoint = "mkdirat", SetLastError = true)]
    private static partial int MkdirAt(int dirFd, nint path, uint mode);

    [LibraryImport(Lib, EntryPoint = "fallocate", SetLastError = true)]
    private static partial int Fallocate(int fd, int mode, long offset, long length);

    [LibraryImport(Lib, EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Lib, EntryPoint = "shutdown", SetLastError = true)]
    private static partial int Shutdown(int fd, int how);

    [LibraryImport(Lib, EntryPoint = "accept4", SetLastError = true)]
    private static partial int Accept4(int fd, nint address, nint length, int flags);

    [LibraryImport(Lib, EntryPoint = "connect", SetLastError = true)]
    private static partial int Connect(int fd, nint address, int length);

    [LibraryImport(Lib, EntryPoint = "send", SetLastError = true)]
    private static partial nint Send(int fd, nint buffer, nuint length, int flags);

    [LibraryImport(Lib, EntryPoint = "recv", SetLastError = true)]
    private static partial nint Recv(int fd, nint buffer, nuint length, int flags);

    [LibraryImport(Lib, EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsg(int fd, nint message, int flags);

    [LibraryImport(Lib, EntryPoint = "recvmsg", SetLastError = true)]
    private static partial nint RecvMsg(int fd, nint message, int flags);

    [LibraryImport(Lib, EntryPoint = "getsockopt", SetLastError = true)]
    private static partial int GetSockOpt(int fd, int level, int name, int* value, int* length);

    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);
}

using System.Runtime.InteropServices;

namespace Scipio.Interop;

/// <summary>The libc calls the shell makes: raw syscalls, memory mapping, eventfd, CPU affinity.</summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc";

    // io_uring syscall numbers: the same on every architecture since they were added in 5.1 (asm-generic table).
    public const long SysIoUringSetup = 425;
    public const long SysIoUringEnter = 426;
    public const long SysIoUringRegister = 427;

    public const int ProtRead = 0x1, ProtWrite = 0x2;
    public const int MapShared = 0x01, MapPopulate = 0x08000;
    public static readonly nint MapFailed = -1;

    public const int EfdCloexec = 0x80000, EfdNonblock = 0x800;
    public const int AtFdCwd = -100;
    public const int AtEmptyPath = 0x1000;

    public const int ORdonly = 0, OWronly = 1, ORdwr = 2, OCreat = 0x40, OExcl = 0x80, OTrunc = 0x200,
        OAppend = 0x400, OCloexec = 0x80000, ODirect = 0x4000;
    public const int ODirectory = 0x10000, AtSymlinkNoFollow = 0x100, AtRemoveDir = 0x200;
    public const uint RenameNoReplace = 1;

    // glibc's syscall() is a plain register shuffle; passing every argument as a long matches the ABI.
    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    public static partial long Syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    [LibraryImport(Lib, EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport(Lib, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint addr, nuint length);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int Ftruncate(int fd, long length);

    [LibraryImport(Lib, EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initval, int flags);

    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buf, nuint count);

    [LibraryImport(Lib, EntryPoint = "pwrite", SetLastError = true)]
    public static partial nint Pwrite(int fd, void* buf, nuint count, long offset);

    [LibraryImport(Lib, EntryPoint = "sched_setaffinity", SetLastError = true)]
    public static partial int SchedSetAffinity(int pid, nuint cpusetsize, ulong* mask);

    [LibraryImport(Lib, EntryPoint = "sched_getaffinity", SetLastError = true)]
    public static partial int SchedGetAffinity(int pid, nuint cpusetsize, ulong* mask);

    [LibraryImport(Lib, EntryPoint = "sched_getcpu", SetLastError = true)]
    public static partial int SchedGetCpu();

    /// <summary>pwrite of all of <paramref name="data"/> at <paramref name="offset"/>, continued after a short write
    /// and EINTR; returns 0, or the errno (EIO for a pwrite that wrote nothing).</summary>
    public static int PwriteAll(int fd, ReadOnlySpan<byte> data, long offset)
    {
        fixed (byte* start = data)
        {
            int done = 0;
            while (done < data.Length)
            {
                nint n = Pwrite(fd, start + done, (nuint)(data.Length - done), offset + done);
                if (n > 0) done += (int)n;
                else if (n == 0) return Errno.EIO; // a regular file never does this; do not loop on it
                else if (LastErrno is var errno && errno != Errno.EINTR) return errno;
            }
        }
        return 0;
    }

    /// <summary>Adds <paramref name="value"/> to an eventfd's counter (wakes whoever reads it).</summary>
    public static void WriteEventFd(int fd, ulong value) => Write(fd, &value, sizeof(ulong));

    /// <summary>The errno of the last failed call on this thread.</summary>
    public static int LastErrno => Marshal.GetLastSystemError();
}

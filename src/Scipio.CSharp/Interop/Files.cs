using System.Runtime.InteropServices;

namespace Scipio.Interop;

/// <summary>Synchronous file facts for cold paths (opening a file): which block device holds it.</summary>
internal static unsafe partial class Files
{
    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatxCall(int dirFd, string path, int flags, uint mask, Statx* buffer);

    /// <summary>(major &lt;&lt; 32) | minor of the device that holds the open file <paramref name="fd"/>: the key the
    /// shard's routing uses to decide whether O_DIRECT I/O on it may go to the poll ring.</summary>
    public static ulong DeviceKey(int fd)
    {
        Statx buffer;
        if (StatxCall(fd, "", Libc.AtEmptyPath, Statx.MaskType, &buffer) != 0)
            throw Errno.ToException(Libc.LastErrno, "statx of an open file");
        return ((ulong)buffer.DevMajor << 32) | buffer.DevMinor;
    }
}

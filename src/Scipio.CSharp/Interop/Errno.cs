using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Scipio.Interop;

/// <summary>Linux errno values the shell names, and their translation into .NET exceptions at the API edge.</summary>
internal static class Errno
{
    public const int EPERM = 1, ENOENT = 2, EINTR = 4, EIO = 5, EBADF = 9, EAGAIN = 11, ENOMEM = 12, EACCES = 13,
        EFAULT = 14, EBUSY = 16, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENFILE = 23, EMFILE = 24,
        EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30, EPIPE = 32, ENAMETOOLONG = 36, ENOSYS = 38,
        ENOTEMPTY = 39, ELOOP = 40, ETIME = 62, EOPNOTSUPP = 95, ECONNRESET = 104, ETIMEDOUT = 110,
        ECONNREFUSED = 111, EALREADY = 114, ECANCELED = 125;

    // Socket errnos (asm-generic/errno.h, the same on x86-64 and arm64).
    public const int EMSGSIZE = 90, EAFNOSUPPORT = 97, EADDRINUSE = 98, EADDRNOTAVAIL = 99, ENETUNREACH = 101,
        ECONNABORTED = 103, ENOBUFS = 105, ENOTCONN = 107, ESHUTDOWN = 108, EHOSTUNREACH = 113;

    /// <summary>The symbolic name of an errno ("ENOENT"), or "errno N" for one not listed.</summary>
    public static string Name(int errno) => errno switch
    {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EINTR => "EINTR",
        EIO => "EIO",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        ENFILE => "ENFILE",
        EMFILE => "EMFILE",
        EFBIG => "EFBIG",
        ENOSPC => "ENOSPC",
        ESPIPE => "ESPIPE",
        EROFS => "EROFS",
        EPIPE => "EPIPE",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ENOTEMPTY => "ENOTEMPTY",
        ELOOP => "ELOOP",
        ETIME => "ETIME",
        EOPNOTSUPP => "EOPNOTSUPP",
        ECONNRESET => "ECONNRESET",
        ETIMEDOUT => "ETIMEDOUT",
        ECONNREFUSED => "ECONNREFUSED",
        EALREADY => "EALREADY",
        ECANCELED => "ECANCELED",
        EMSGSIZE => "EMSGSIZE",
        EAFNOSUPPORT => "EAFNOSUPPORT",
        EADDRINUSE => "EADDRINUSE",
        EADDRNOTAVAIL => "EADDRNOTAVAIL",
        ENETUNREACH => "ENETUNREACH",
        ECONNABORTED => "ECONNABORTED",
        ENOBUFS => "ENOBUFS",
        ENOTCONN => "ENOTCONN",
        ESHUTDOWN => "ESHUTDOWN",
        EHOSTUNREACH => "EHOSTUNREACH",
        _ => $"errno {errno}",
    };

    private static string Advice(int errno) => errno switch
    {
        ENOENT => "Check that the path exists, or create it first.",
        EACCES or EPERM => "Check the file's permissions and the process's user.",
        EEXIST => "The path already exists: use what is there, or delete it first.",
        EISDIR => "The path is a directory; pass a file's path.",
        ENOTDIR => "A component of the path is not a directory.",
        EMFILE or ENFILE => "Too many open files: close some, or raise the limit (ulimit -n).",
        ENOSPC => "The device is full: free space on it.",
        EROFS => "The file system is read-only.",
        EBADF => "The descriptor is not open for this operation (was the file opened for writing?).",
        EINVAL => "The kernel rejected an argument of the operation.",
        ENAMETOOLONG => "Shorten the path.",
        ECANCELED => "It was canceled: its file was closed, or its shard stopped.",
        ENOTEMPTY => "The directory is not empty: delete what is in it first.",
        _ => "",
    };

    /// <summary>The exception for a failed kernel operation: the .NET type a user expects for the errno, carrying
    /// the errno (in <see cref="Exception.HResult"/>, and in <see cref="KernelIOException.Errno"/> where the type is
    /// ours) and a message that names the operation, the path and what to do.</summary>
    public static Exception ToException(int errno, string operation, string? path = null)
    {
        string what = path is null ? operation : $"{operation} '{path}'";
        string advice = Advice(errno);
        string message = $"{what} failed: {Name(errno)} ({errno}). {advice}".TrimEnd();
        Exception e = errno switch
        {
            ENOENT when path is not null => new FileNotFoundException(message, path),
            ENOTDIR => new DirectoryNotFoundException(message),
            EACCES or EPERM => new UnauthorizedAccessException(message),
            ENAMETOOLONG => new PathTooLongException(message),
            ECANCELED => new OperationCanceledException(message),
            _ => new KernelIOException(message, errno),
        };
        e.HResult = errno;
        return e;
    }
}

/// <summary>Throw helpers kept out of line so that hot paths stay small.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowErrno(int errno, string operation, string? path = null) =>
        throw Errno.ToException(errno, operation, path);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowNotOnShard(string member) =>
        throw new InvalidOperationException(
            $"{member} must be called on a shard: inside Shard.Run, Shard.Start or work spawned there. " +
            "Code that left the shard (ConfigureAwait(false), Task.Run, F#'s backgroundTask) cannot use it.");

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowObjectDisposed(string what) => throw new ObjectDisposedException(what);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowArgumentOutOfRange(string paramName, object? value, string message) =>
        throw new ArgumentOutOfRangeException(paramName, value, message);
}

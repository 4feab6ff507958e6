namespace Scipio;

/// <summary>An I/O operation failed in the kernel. <see cref="Errno"/> is the Linux error number;
/// the message names the operation, the path where there is one, and what to do.</summary>
/// <remarks>Errors with a more specific .NET type are raised as that type instead
/// (<see cref="FileNotFoundException"/>, <see cref="UnauthorizedAccessException"/>, …), with the errno in
/// <see cref="Exception.HResult"/>.</remarks>
public class KernelIOException : IOException
{
    /// <summary>Creates the exception for a kernel error.</summary>
    /// <param name="message">What failed and what to do.</param>
    /// <param name="errno">The Linux error number.</param>
    public KernelIOException(string message, int errno) : base(message, errno) => Errno = errno;

    /// <summary>The Linux error number (for example 2 for ENOENT).</summary>
    public int Errno { get; }
}

/// <summary>io_uring cannot be used by this process, so no shard can start. The message says why and how to fix
/// it: a kernel without io_uring (ENOSYS), io_uring disabled by <c>kernel.io_uring_disabled</c>, or blocked by a
/// seccomp profile such as Docker's default (EPERM).</summary>
public sealed class IoUringUnavailableException : KernelIOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">The cause and the fix.</param>
    /// <param name="errno">The errno io_uring_setup returned.</param>
    public IoUringUnavailableException(string message, int errno) : base(message, errno) { }
}

using System.Runtime.InteropServices;

namespace Scipio.Interop;

/// <summary>A file descriptor owned by a <see cref="SafeHandle"/>: closed exactly once — by its owner (often through
/// the ring, then marked closed here), or by the finalizer if the owner was never disposed — and never while a
/// caller holds a reference taken with DangerousAddRef (a thread writing to a shard's eventfd as it closes).</summary>
internal sealed class FileDescriptor : SafeHandle
{
    public FileDescriptor(int fd) : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle < 0;

    /// <summary>The descriptor number; -1 once closed.</summary>
    public int Fd => IsClosed ? -1 : (int)handle;

    protected override bool ReleaseHandle() => Libc.Close((int)handle) == 0;
}

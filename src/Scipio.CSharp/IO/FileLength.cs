using Scipio.Interop;
using Scipio.Ring;
using Scipio.Runtime;

namespace Scipio.IO;

/// <summary>A file's length and reserved space, through the ring, for <see cref="DmaFile"/> and
/// <see cref="BufferedFile"/> alike.</summary>
internal static class FileLength
{
    /// <summary>ftruncate: through the ring (IORING_OP_FTRUNCATE) where the kernel has it (6.9+), else on a helper
    /// thread.</summary>
    public static async ValueTask SetAsync(ShardExecutor owner, FileDescriptor fd, string path, long length, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ct.ThrowIfCancellationRequested();
        if (owner.Backend is IoUringBackend uring && uring.Main.Ring.Supports(Opcode.Ftruncate))
        {
            var op = owner.Operations.RentReadWrite().Start("ftruncate", path, fd, ct);
            op.PrepareFtruncate(fd.Fd, length);
            owner.Submit(op);
            await new ValueTask(op, op.Version);
            return;
        }
        int descriptor = fd.Fd;
        int errno = await Shard.SpawnBlocking(() => Libc.Ftruncate(descriptor, length) == 0 ? 0 : Libc.LastErrno);
        GC.KeepAlive(fd);
        if (errno != 0) throw Errno.ToException(errno, "ftruncate", path);
    }

    /// <summary>fallocate (mode 0) through the ring.</summary>
    public static ValueTask PreallocateAsync(ShardExecutor owner, FileDescriptor fd, string path, long offset, long length, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (ct.IsCancellationRequested) return ValueTask.FromCanceled(ct);
        var op = owner.Operations.RentReadWrite().Start("fallocate", path, fd, ct);
        op.PrepareFallocate(fd.Fd, offset, length);
        owner.Submit(op);
        return new ValueTask(op, op.Version);
    }
}

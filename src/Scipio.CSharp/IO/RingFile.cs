using Scipio.Interop;
using Scipio.Ring;
using Scipio.Runtime;

namespace Scipio.IO;

/// <summary>What <see cref="BufferedFile"/> and <see cref="DmaFile"/> share: an open descriptor owned by a
/// SafeHandle, bound to the shard that opened it, and the operations that do not depend on O_DIRECT — open and
/// stat, flush, length, reserved space and close — all through the ring.</summary>
internal sealed class RingFile(ShardExecutor owner, FileDescriptor fd, string path, string kind)
{
    public ShardExecutor Owner { get; } = owner;
    public FileDescriptor Fd { get; } = fd;
    public string Path { get; } = path;

    /// <summary>Opens <paramref name="path"/> (a full path) through the ring, then statx of the descriptor for
    /// <paramref name="field"/>. A directory opened for reading succeeds in the kernel: the caller looks at the mode.</summary>
    public static async ValueTask<(FileDescriptor Fd, long Stat)> OpenAsync(
        ShardExecutor executor, string path, int flags, PathOperation.StatxField field, CancellationToken ct)
    {
        var open = executor.Operations.RentPath().Start("open", path, null, ct);
        open.PrepareOpen(path, flags, OpenFlags.DefaultCreateMode);
        executor.Submit(open);
        int descriptor = await new ValueTask<int>(open, open.Version);
        var handle = new FileDescriptor(descriptor);
        try
        {
            var stat = executor.Operations.RentPath().Start("statx", path, handle, default);
            stat.PrepareStatx(descriptor, field);
            executor.Submit(stat);
            return (handle, await new ValueTask<long>(stat, stat.Version));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The exception for a directory opened as a file, as <c>File.Open</c> throws it.</summary>
    public static UnauthorizedAccessException IsDirectory(string path, string kind, Exception? inner) =>
        new($"Access to the path '{path}' is denied: it is a directory. {kind} opens files; pass a file's path.", inner)
        { HResult = Errno.EISDIR };

    /// <summary>A read/write operation for this file, or null when the token is already canceled.</summary>
    public ReadWriteOperation? Rent(string what, CancellationToken ct)
    {
        CheckUsable(what);
        return ct.IsCancellationRequested ? null : Owner.Operations.RentReadWrite().Start(what, Path, Fd, ct);
    }

    /// <summary>fdatasync through the ring.</summary>
    public ValueTask FlushAsync(CancellationToken ct)
    {
        var op = Rent("flush (fdatasync)", ct);
        if (op is null) return ValueTask.FromCanceled(ct);
        op.PrepareFsync(Fd.Fd, dataOnly: true);
        Owner.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>The length, by statx through the ring.</summary>
    public ValueTask<long> GetLengthAsync(CancellationToken ct)
    {
        CheckUsable("statx");
        if (ct.IsCancellationRequested) return ValueTask.FromCanceled<long>(ct);
        var op = Owner.Operations.RentPath().Start("statx", Path, Fd, ct);
        op.PrepareStatx(Fd.Fd, PathOperation.StatxField.Size);
        Owner.Submit(op);
        return new ValueTask<long>(op, op.Version);
    }

    /// <summary>ftruncate: through the ring (IORING_OP_FTRUNCATE) where the kernel has it (6.9+), else on a helper
    /// thread.</summary>
    public async ValueTask SetLengthAsync(long length, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        CheckUsable("ftruncate");
        ct.ThrowIfCancellationRequested();
        if (Owner.Backend is IoUringBackend uring && uring.Main.Ring.Supports(Opcode.Ftruncate))
        {
            var op = Owner.Operations.RentReadWrite().Start("ftruncate", Path, Fd, ct);
            op.PrepareFtruncate(Fd.Fd, length);
            Owner.Submit(op);
            await new ValueTask(op, op.Version);
            return;
        }
        var handle = Fd;
        int errno = await Shard.SpawnBlocking(() => Libc.Ftruncate(handle.Fd, length) == 0 ? 0 : Libc.LastErrno);
        if (errno != 0) throw Errno.ToException(errno, "ftruncate", Path);
    }

    /// <summary>fallocate (mode 0) through the ring.</summary>
    public ValueTask PreallocateAsync(long offset, long length, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        var op = Rent("fallocate", ct);
        if (op is null) return ValueTask.FromCanceled(ct);
        op.PrepareFallocate(Fd.Fd, offset, length);
        Owner.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>Cancels the file's pending operations, then closes it through the ring; twice does nothing.</summary>
    public ValueTask CloseAsync()
    {
        if (Fd.IsClosed) return default;
        CheckShard($"{kind}.DisposeAsync");
        return Owner.CloseThroughRing(Fd, "close", Path);
    }

    /// <summary>On the owning shard, and not disposed.</summary>
    public void CheckUsable(string what)
    {
        CheckShard(what);
        if (Fd.IsClosed) ThrowHelper.ThrowObjectDisposed($"{kind} '{Path}'");
    }

    private void CheckShard(string what)
    {
        var current = ShardExecutor.Current;
        if (current == Owner) return;
        if (current is null) ThrowHelper.ThrowNotOnShard($"{kind} {what}");
        throw new InvalidOperationException($"{kind} '{Path}' belongs to shard {Owner.Id}; {what} was called on shard {current.Id}. Use the file on the shard that opened it.");
    }
}

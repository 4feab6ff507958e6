using System.Runtime.CompilerServices;
using Scipio.Interop;
using Scipio.Ring;
using Scipio.Runtime;

namespace Scipio.IO;

/// <summary>A file read and written through the page cache, every operation — open, read, write, flush, stat,
/// close — submitted to the shard's io_uring. Positional: each call names its offset; there is no file position.</summary>
/// <remarks>A file belongs to the shard that opened it; calls from elsewhere throw
/// <see cref="InvalidOperationException"/>. Reads and writes allocate nothing: their ValueTasks are backed by
/// pooled operations. Each buffer stays pinned until the kernel is done with it, also when the call is canceled.</remarks>
public sealed class BufferedFile : IAsyncDisposable
{
    private readonly ShardExecutor _owner;
    private readonly FileDescriptor _fd;
    private readonly bool _lingering; // a FIFO, socket or terminal: reads and writes may wait indefinitely

    private BufferedFile(ShardExecutor owner, FileDescriptor fd, string path, bool lingering)
    {
        _owner = owner;
        _fd = fd;
        _lingering = lingering;
        Path = path;
    }

    /// <summary>The file's full path.</summary>
    public string Path { get; }

    /// <summary>Opens an existing file for reading.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="UnauthorizedAccessException">The path is a directory, or permission is denied.</exception>
    public static ValueTask<BufferedFile> OpenAsync(string path, CancellationToken cancellationToken = default) =>
        OpenAsync(path, FileMode.Open, FileAccess.Read, cancellationToken);

    /// <summary>Creates a file for reading and writing, truncating it if it exists.</summary>
    public static ValueTask<BufferedFile> CreateAsync(string path, CancellationToken cancellationToken = default) =>
        OpenAsync(path, FileMode.Create, FileAccess.ReadWrite, cancellationToken);

    /// <summary>Opens or creates a file as <paramref name="mode"/> and <paramref name="access"/> say.</summary>
    /// <remarks>The descriptor is owned by the returned file: <see cref="DisposeAsync"/> closes it through the ring,
    /// and a file that is never disposed has it closed by the finalizer. A FIFO, socket or terminal opens too; its
    /// pending reads wait indefinitely without holding room in the ring.</remarks>
    /// <exception cref="ArgumentException">The path is empty, or the mode and access contradict each other
    /// (truncating a file opened for reading only), or the mode is Append (writes here are positional).</exception>
    /// <exception cref="FileNotFoundException">Mode Open or Truncate and the file does not exist.</exception>
    /// <exception cref="UnauthorizedAccessException">The path is a directory (as with <c>File.Open</c>), or
    /// permission is denied.</exception>
    /// <exception cref="KernelIOException">Another kernel error; its Errno says which.</exception>
    public static async ValueTask<BufferedFile> OpenAsync(string path, FileMode mode, FileAccess access, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = System.IO.Path.GetFullPath(path);
        int flags = OpenFlags.For(mode, access);
        var executor = ShardExecutor.Require("BufferedFile.OpenAsync");
        cancellationToken.ThrowIfCancellationRequested();
        var open = executor.Operations.RentPath().Start("open", full, null, cancellationToken);
        open.PrepareOpen(full, flags, OpenFlags.DefaultCreateMode);
        executor.Submit(open);
        int fd;
        try { fd = await new ValueTask<int>(open, open.Version); }
        catch (KernelIOException e) when (e.Errno == Errno.EISDIR) { throw IsDirectory(full, e); }
        var handle = new FileDescriptor(fd);
        FileKind kind;
        try
        {
            var stat = executor.Operations.RentPath().Start("statx", full, handle, default);
            stat.PrepareStatx(fd, PathOperation.StatxField.Mode);
            executor.Submit(stat);
            kind = FileKinds.OfMode(await new ValueTask<long>(stat, stat.Version));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        if (kind == FileKind.Directory)
        {
            handle.Dispose();
            throw IsDirectory(full, null);
        }
        return new BufferedFile(executor, handle, full, lingering: kind == FileKind.Other);
    }

    private static UnauthorizedAccessException IsDirectory(string path, Exception? inner) =>
        new($"Access to the path '{path}' is denied: it is a directory. BufferedFile opens files; pass a file's path.", inner)
        { HResult = Errno.EISDIR };

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>; returns how many
    /// were read: fewer at the end of the file, 0 at or past it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The offset is negative.</exception>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    /// <exception cref="OperationCanceledException">Canceled, or the file was disposed while the read waited; the
    /// buffer is no longer used by the kernel.</exception>
    public ValueTask<int> ReadAtAsync(Memory<byte> buffer, long offset, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var op = Begin("read", cancellationToken);
        if (op is null) return ValueTask.FromCanceled<int>(cancellationToken);
        op.PrepareRead(_fd.Fd, buffer, offset);
        _owner.Submit(op);
        return new ValueTask<int>(op, op.Version);
    }

    /// <summary>Writes all of <paramref name="buffer"/> at <paramref name="offset"/> (a short write by the kernel
    /// is continued until every byte is written or an error occurs).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The offset is negative.</exception>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    /// <exception cref="KernelIOException">For example EBADF when the file was opened for reading only.</exception>
    public ValueTask WriteAtAsync(ReadOnlyMemory<byte> buffer, long offset, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var op = Begin("write", cancellationToken);
        if (op is null) return ValueTask.FromCanceled(cancellationToken);
        op.PrepareWrite(_fd.Fd, buffer, offset);
        _owner.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>Makes written data durable: fdatasync through the ring.</summary>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        var op = Begin("flush (fdatasync)", cancellationToken);
        if (op is null) return ValueTask.FromCanceled(cancellationToken);
        op.PrepareFsync(_fd.Fd, dataOnly: true);
        _owner.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>The file's length in bytes (statx through the ring).</summary>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ValueTask<long> GetLengthAsync(CancellationToken cancellationToken = default)
    {
        CheckUsable("statx");
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<long>(cancellationToken);
        var op = _owner.Operations.RentPath().Start("statx", Path, _fd, cancellationToken);
        op.PrepareStatx(_fd.Fd, PathOperation.StatxField.Size);
        _owner.Submit(op);
        return new ValueTask<long>(op, op.Version);
    }

    /// <summary>Sets the file's length: through the ring (IORING_OP_FTRUNCATE) where the kernel has it (6.9+), else on
    /// a helper thread.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative.</exception>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ValueTask SetLengthAsync(long length, CancellationToken cancellationToken = default)
    {
        CheckUsable("ftruncate");
        return FileLength.SetAsync(_owner, _fd, Path, length, cancellationToken);
    }

    /// <summary>Reserves <paramref name="length"/> bytes of disk at <paramref name="offset"/> (fallocate through the
    /// ring): later writes there do not fail for lack of space, and the file grows to cover the range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The offset is negative or the length not positive.</exception>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ValueTask PreallocateAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckUsable("fallocate");
        return FileLength.PreallocateAsync(_owner, _fd, Path, offset, length, cancellationToken);
    }

    /// <summary>Cancels the file's pending operations (they end with <see cref="OperationCanceledException"/>) and
    /// closes it through the ring. Later calls throw <see cref="ObjectDisposedException"/>; disposing twice does
    /// nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_fd.IsClosed) return;
        CheckShard("BufferedFile.DisposeAsync");
        int fd = _fd.Fd;
        _fd.SetHandleAsInvalid(); // closed through the ring below, not by the finalizer; later calls see it closed
        _owner.Backend.CancelDescriptor(fd);
        var op = _owner.Operations.RentReadWrite().Start("close", Path, null, default);
        op.PrepareClose(fd);
        _owner.Submit(op);
        await new ValueTask(op, op.Version);
    }

    /// <summary>Checks the call and rents an operation; null when the token is already canceled.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ReadWriteOperation? Begin(string what, CancellationToken cancellationToken)
    {
        CheckUsable(what);
        if (cancellationToken.IsCancellationRequested) return null;
        var op = _owner.Operations.RentReadWrite().Start(what, Path, _fd, cancellationToken);
        if (_lingering) op.SetLingering(true);
        return op;
    }

    private void CheckUsable(string what)
    {
        CheckShard(what);
        if (_fd.IsClosed) ThrowHelper.ThrowObjectDisposed($"BufferedFile '{Path}'");
    }

    private void CheckShard(string what)
    {
        var current = ShardExecutor.Current;
        if (current == _owner) return;
        if (current is null) ThrowHelper.ThrowNotOnShard($"BufferedFile {what}");
        throw new InvalidOperationException($"BufferedFile '{Path}' belongs to shard {_owner.Id}; {what} was called on shard {current.Id}. Use the file on the shard that opened it.");
    }

    /// <inheritdoc/>
    public override string ToString() => $"BufferedFile '{Path}'";
}

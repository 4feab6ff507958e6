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
    private readonly RingFile _file;
    private readonly bool _lingering; // a FIFO, socket or terminal: reads and writes may wait indefinitely

    private BufferedFile(RingFile file, bool lingering)
    {
        _file = file;
        _lingering = lingering;
    }

    /// <summary>The file's full path.</summary>
    public string Path => _file.Path;

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
        FileDescriptor handle;
        long stMode;
        try { (handle, stMode) = await RingFile.OpenAsync(executor, full, flags, PathOperation.StatxField.Mode, cancellationToken); }
        catch (KernelIOException e) when (e.Errno == Errno.EISDIR) { throw RingFile.IsDirectory(full, "BufferedFile", e); }
        var kind = FileKinds.OfMode(stMode);
        if (kind == FileKind.Directory)
        {
            handle.Dispose();
            throw RingFile.IsDirectory(full, "BufferedFile", null);
        }
        return new BufferedFile(new RingFile(executor, handle, full, "BufferedFile"), lingering: kind == FileKind.Other);
    }

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
        op.PrepareRead(_file.Fd.Fd, buffer, offset);
        _file.Owner.Submit(op);
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
        op.PrepareWrite(_file.Fd.Fd, buffer, offset);
        _file.Owner.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>Makes written data durable: fdatasync through the ring.</summary>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
        => _file.FlushAsync(cancellationToken);

    /// <summary>The file's length in bytes (statx through the ring).</summary>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ValueTask<long> GetLengthAsync(CancellationToken cancellationToken = default)
        => _file.GetLengthAsync(cancellationToken);

    /// <summary>Sets the file's length: through the ring (IORING_OP_FTRUNCATE) where the kernel has it (6.9+), else on
    /// a helper thread.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative.</exception>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ValueTask SetLengthAsync(long length, CancellationToken cancellationToken = default)
        => _file.SetLengthAsync(length, cancellationToken);

    /// <summary>Reserves <paramref name="length"/> bytes of disk at <paramref name="offset"/> (fallocate through the
    /// ring): later writes there do not fail for lack of space, and the file grows to cover the range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The offset is negative or the length not positive.</exception>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ValueTask PreallocateAsync(long offset, long length, CancellationToken cancellationToken = default)
        => _file.PreallocateAsync(offset, length, cancellationToken);

    /// <summary>Cancels the file's pending operations (they end with <see cref="OperationCanceledException"/>) and
    /// closes it through the ring. Later calls throw <see cref="ObjectDisposedException"/>; disposing twice does
    /// nothing.</summary>
    public ValueTask DisposeAsync() => _file.CloseAsync();

    /// <summary>Checks the call and rents an operation; null when the token is already canceled.</summary>
    private ReadWriteOperation? Begin(string what, CancellationToken cancellationToken)
    {
        var op = _file.Rent(what, cancellationToken);
        if (_lingering) op?.SetLingering(true);
        return op;
    }

    /// <inheritdoc/>
    public override string ToString() => $"BufferedFile '{Path}'";
}

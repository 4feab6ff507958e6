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
    /// <summary>The default <see cref="InlineWriteLimit"/>: 64 KiB.</summary>
    public const int DefaultInlineWriteLimit = 64 << 10;

    private readonly RingFile _file;
    private int _inlineWriteLimit = DefaultInlineWriteLimit;
    private readonly bool _lingering; // a FIFO, socket or terminal: reads and writes may wait indefinitely

    private BufferedFile(RingFile file, bool lingering)
    {
        _file = file;
        _lingering = lingering;
    }

    /// <summary>The file's full path.</summary>
    public string Path => _file.Path;

    /// <summary>Writes of at most this many bytes are done by a <c>pwrite</c> on the shard's own thread, and
    /// complete before <see cref="WriteAtAsync"/> returns; longer ones go through the ring. 0 sends every write
    /// through the ring.</summary>
    /// <remarks>
    /// <para>Why: ext4 (and most file systems but XFS) cannot write to the page cache without possibly blocking, so
    /// io_uring hands every buffered write to an io-wq worker thread, on another CPU: a 4 KiB write then costs two
    /// cross-CPU hand-offs, about 3–4× a plain <c>pwrite</c>. A <c>pwrite</c> into the page cache is a memory copy
    /// of a few microseconds, so for small writes it is the faster way, and it holds the shard no longer than a
    /// task's own work would.</para>
    /// <para>The trade-off: while the copy runs the shard runs nothing else, and a write may block the shard when the
    /// kernel throttles a process that dirties pages faster than the disk takes them (balance_dirty_pages), or on a
    /// page that must first be read from disk (a partial-page write to a cold file). Where that matters more than a
    /// few microseconds per write (a shard serving latency-sensitive requests beside a bulk writer), set 0 for that
    /// file. Durability is the same either way: data is in the page cache when the write completes, and on disk
    /// when <see cref="FlushAsync"/> completes. Default <see cref="DefaultInlineWriteLimit"/>; FIFOs, sockets and
    /// terminals always go through the ring (a write there may wait indefinitely).</para>
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public int InlineWriteLimit
    {
        get => _inlineWriteLimit;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _inlineWriteLimit = value;
        }
    }

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
        if (buffer.Length <= _inlineWriteLimit && !_lingering) return WriteInline(buffer.Span, offset, cancellationToken);
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

    /// <summary>pwrite on the shard's thread, continued after a short write (<see cref="InlineWriteLimit"/>).</summary>
    private ValueTask WriteInline(ReadOnlySpan<byte> data, long offset, CancellationToken cancellationToken)
    {
        _file.CheckUsable("write");
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
        _file.Owner.InlineWrites++;
        int errno = Libc.PwriteAll(_file.Fd.Fd, data, offset);
        return errno == 0 ? ValueTask.CompletedTask : ValueTask.FromException(Errno.ToException(errno, "write", Path));
    }

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

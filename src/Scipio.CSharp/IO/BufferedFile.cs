using System.Runtime.CompilerServices;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio.IO;

/// <summary>A file read and written through the page cache, every operation — open, read, write, flush, stat,
/// close — submitted to the shard's io_uring. Positional: each call names its offset; there is no file position.</summary>
/// <remarks>A file belongs to the shard that opened it; calls from elsewhere throw
/// <see cref="InvalidOperationException"/>. Reads and writes allocate nothing: their ValueTasks are backed by
/// pooled operations. Each buffer stays pinned until the kernel is done with it, also when the call is canceled.</remarks>
public sealed class BufferedFile : IAsyncDisposable
{
    private const uint DefaultMode = 0x1B6; // 0666, less the umask, as File.Create does
    private readonly ShardExecutor _owner;
    private int _fd;

    private BufferedFile(ShardExecutor owner, int fd, string path)
    {
        _owner = owner;
        _fd = fd;
        Path = path;
    }

    /// <summary>The file's full path.</summary>
    public string Path { get; }

    /// <summary>Opens an existing file for reading.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static ValueTask<BufferedFile> OpenAsync(string path, CancellationToken cancellationToken = default) =>
        OpenAsync(path, FileMode.Open, FileAccess.Read, cancellationToken);

    /// <summary>Creates a file for reading and writing, truncating it if it exists.</summary>
    public static ValueTask<BufferedFile> CreateAsync(string path, CancellationToken cancellationToken = default) =>
        OpenAsync(path, FileMode.Create, FileAccess.ReadWrite, cancellationToken);

    /// <summary>Opens or creates a file as <paramref name="mode"/> and <paramref name="access"/> say.</summary>
    /// <exception cref="ArgumentException">The path is empty, or the mode and access contradict each other
    /// (truncating a file opened for reading only), or the mode is Append (writes here are positional).</exception>
    /// <exception cref="FileNotFoundException">Mode Open or Truncate and the file does not exist.</exception>
    /// <exception cref="KernelIOException">Another kernel error; its Errno says which.</exception>
    public static async ValueTask<BufferedFile> OpenAsync(string path, FileMode mode, FileAccess access, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = System.IO.Path.GetFullPath(path);
        int flags = OpenFlags(mode, access);
        var executor = ShardExecutor.Require("BufferedFile.OpenAsync");
        cancellationToken.ThrowIfCancellationRequested();
        var op = executor.RentOperation("open", full, cancellationToken);
        op.SetOpenAt(full, flags, DefaultMode);
        executor.Submit(op);
        int fd = await new ValueTask<int>(op, op.Version);
        return new BufferedFile(executor, fd, full);
    }

    internal static int OpenFlags(FileMode mode, FileAccess access)
    {
        int accessFlags = access switch
        {
            FileAccess.Read => Libc.ORdonly,
            FileAccess.Write => Libc.OWronly,
            FileAccess.ReadWrite => Libc.ORdwr,
            _ => throw new ArgumentOutOfRangeException(nameof(access), access, "Unknown FileAccess."),
        };
        int modeFlags = mode switch
        {
            FileMode.CreateNew => Libc.OCreat | Libc.OExcl,
            FileMode.Create => Libc.OCreat | Libc.OTrunc,
            FileMode.Open => 0,
            FileMode.OpenOrCreate => Libc.OCreat,
            FileMode.Truncate => Libc.OTrunc,
            FileMode.Append => throw new ArgumentException("FileMode.Append is not supported: writes name their offset. Open with OpenOrCreate and write at GetLengthAsync().", nameof(mode)),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown FileMode."),
        };
        if (access == FileAccess.Read && mode is FileMode.Create or FileMode.CreateNew or FileMode.Truncate)
            throw new ArgumentException($"FileMode.{mode} changes the file, so it needs write access, not FileAccess.Read.", nameof(access));
        return accessFlags | modeFlags | Libc.OCloexec;
    }

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>; returns how many
    /// were read: fewer at the end of the file, 0 at or past it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The offset is negative.</exception>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    /// <exception cref="OperationCanceledException">Canceled; the buffer is no longer used by the kernel.</exception>
    public ValueTask<int> ReadAtAsync(Memory<byte> buffer, long offset, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var op = Begin("read", cancellationToken);
        if (op is null) return ValueTask.FromCanceled<int>(cancellationToken);
        var pin = buffer.Pin();
        op.SetRead(_fd, pin, Pinning.Address(pin), (uint)buffer.Length, (ulong)offset);
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
        var pin = buffer.Pin();
        op.SetWrite(_fd, pin, Pinning.Address(pin), (uint)buffer.Length, (ulong)offset);
        _owner.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>Makes written data durable: fdatasync through the ring.</summary>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        var op = Begin("flush (fdatasync)", cancellationToken);
        if (op is null) return ValueTask.FromCanceled(cancellationToken);
        op.SetFsync(_fd, IoUringConst.FsyncDataSync);
        _owner.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>The file's length in bytes (statx through the ring).</summary>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ValueTask<long> GetLengthAsync(CancellationToken cancellationToken = default)
    {
        var op = Begin("statx", cancellationToken);
        if (op is null) return ValueTask.FromCanceled<long>(cancellationToken);
        op.SetStatx(_fd, Statx.MaskSize);
        _owner.Submit(op);
        return new ValueTask<long>(op, op.Version);
    }

    /// <summary>Closes the file through the ring. Later calls throw <see cref="ObjectDisposedException"/>;
    /// disposing twice does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_fd < 0) return;
        CheckShard("BufferedFile.DisposeAsync");
        int fd = _fd;
        _fd = -1;
        var op = _owner.RentOperation("close", Path, default);
        op.SetClose(fd);
        _owner.Submit(op);
        await new ValueTask(op, op.Version);
    }

    /// <summary>Checks the call and rents an operation; null when the token is already canceled.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private IoOperation? Begin(string what, CancellationToken cancellationToken)
    {
        CheckShard(what);
        if (_fd < 0) ThrowHelper.ThrowObjectDisposed($"BufferedFile '{Path}'");
        if (cancellationToken.IsCancellationRequested) return null;
        return _owner.RentOperation(what, Path, cancellationToken);
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

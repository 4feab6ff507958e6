using Scipio.Interop;
using Scipio.Ring;
using Scipio.Runtime;

namespace Scipio.IO;

/// <summary>File-system metadata operations — rename, delete, create and delete a directory, stat, make a
/// directory's entries durable — each submitted to the shard's io_uring, none blocking the shard's thread.</summary>
/// <remarks>Call on a shard (<see cref="InvalidOperationException"/> elsewhere). Relative paths are resolved against
/// the process's current directory (<see cref="Path.GetFullPath(string)"/>) when the call is made; error messages
/// name the full path. Each call takes a <see cref="CancellationToken"/>: a token canceled before the call returns a
/// canceled task and nothing reaches the kernel; a cancel while the operation is in flight is sent to the kernel,
/// which may still complete it (the call then succeeds). The operations need kernel 5.11 (renameat, unlinkat),
/// 5.15 (mkdirat) and 5.6 (statx, openat, fsync, close) or later.</remarks>
public static class FileSystem
{
    /// <summary>0777 less the umask, as Directory.CreateDirectory does.</summary>
    private const uint DirectoryMode = 0x1FF;

    /// <summary>Renames <paramref name="from"/> to <paramref name="to"/>, replacing <paramref name="to"/> if it
    /// exists (rename(2)): atomic, so a reader sees the old file or the new one, never neither.</summary>
    /// <remarks>Both paths must be on one file system. The rename is durable only once the directory is synced:
    /// await <see cref="SyncDirectoryAsync"/> on the directory of <paramref name="to"/> (and of
    /// <paramref name="from"/> if it differs).</remarks>
    /// <exception cref="ArgumentException">A path is null or empty.</exception>
    /// <exception cref="FileNotFoundException"><paramref name="from"/> (or the directory of
    /// <paramref name="to"/>) does not exist.</exception>
    /// <exception cref="UnauthorizedAccessException">Permission is denied.</exception>
    /// <exception cref="KernelIOException">Another kernel error: EXDEV across file systems, EISDIR or ENOTEMPTY when
    /// replacing a directory with a file or with a non-empty directory; its Errno says which.</exception>
    public static ValueTask RenameAsync(string from, string to, CancellationToken cancellationToken = default) =>
        RenameAsync(from, to, replace: true, cancellationToken);

    /// <summary>Renames <paramref name="from"/> to <paramref name="to"/>; when <paramref name="replace"/> is false,
    /// fails if <paramref name="to"/> exists (renameat2 with RENAME_NOREPLACE: checked and renamed atomically, so
    /// two shards cannot both win).</summary>
    /// <remarks>RENAME_NOREPLACE is supported by ext4, XFS, btrfs and tmpfs; other file systems answer EINVAL. See
    /// <see cref="RenameAsync(string, string, CancellationToken)"/> for durability.</remarks>
    /// <exception cref="ArgumentException">A path is null or empty.</exception>
    /// <exception cref="FileNotFoundException"><paramref name="from"/> (or the directory of
    /// <paramref name="to"/>) does not exist.</exception>
    /// <exception cref="KernelIOException">EEXIST: <paramref name="replace"/> is false and <paramref name="to"/>
    /// exists; or another kernel error, its Errno says which.</exception>
    public static ValueTask RenameAsync(string from, string to, bool replace, CancellationToken cancellationToken = default)
    {
        string fullFrom = FullPath(from, nameof(from));
        string fullTo = FullPath(to, nameof(to));
        var op = Rent("FileSystem.RenameAsync", $"rename to '{fullTo}' of", fullFrom, cancellationToken, out var executor);
        if (op is null) return ValueTask.FromCanceled(cancellationToken);
        op.PrepareRename(fullFrom, fullTo, replace ? 0 : Libc.RenameNoReplace);
        executor.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>Deletes a file (unlinkat): a regular file, a symbolic link (not its target), a FIFO or socket.</summary>
    /// <remarks>Unlike <see cref="File.Delete(string)"/>, a missing file is an error. Open descriptors of the file
    /// keep its data until they are closed. Durable once the directory is synced (<see cref="SyncDirectoryAsync"/>).</remarks>
    /// <exception cref="ArgumentException">The path is null or empty.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="UnauthorizedAccessException">Permission is denied.</exception>
    /// <exception cref="KernelIOException">EISDIR: the path is a directory (use <see cref="DeleteDirectoryAsync"/>);
    /// or another kernel error.</exception>
    public static ValueTask DeleteAsync(string path, CancellationToken cancellationToken = default)
    {
        string full = FullPath(path, nameof(path));
        var op = Rent("FileSystem.DeleteAsync", "delete", full, cancellationToken, out var executor);
        if (op is null) return ValueTask.FromCanceled(cancellationToken);
        op.PrepareUnlink(full, 0);
        executor.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>Creates a directory (mkdirat) with mode 0777 less the process's umask. Its parent must exist: one
    /// level is created, not a chain.</summary>
    /// <remarks>Unlike <see cref="Directory.CreateDirectory(string)"/>, an existing path is an error: the call says
    /// whether this caller created it. Durable once the parent is synced (<see cref="SyncDirectoryAsync"/>).</remarks>
    /// <exception cref="ArgumentException">The path is null or empty.</exception>
    /// <exception cref="FileNotFoundException">The parent directory does not exist (ENOENT).</exception>
    /// <exception cref="KernelIOException">EEXIST: the path already exists (a directory or anything else); or another
    /// kernel error, its Errno says which.</exception>
    public static ValueTask CreateDirectoryAsync(string path, CancellationToken cancellationToken = default)
    {
        string full = FullPath(path, nameof(path));
        var op = Rent("FileSystem.CreateDirectoryAsync", "create directory", full, cancellationToken, out var executor);
        if (op is null) return ValueTask.FromCanceled(cancellationToken);
        op.PrepareMkdir(full, DirectoryMode);
        executor.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>Deletes an empty directory (unlinkat with AT_REMOVEDIR).</summary>
    /// <remarks>Not recursive: delete the entries first. Durable once the parent is synced
    /// (<see cref="SyncDirectoryAsync"/>).</remarks>
    /// <exception cref="ArgumentException">The path is null or empty.</exception>
    /// <exception cref="FileNotFoundException">The directory does not exist.</exception>
    /// <exception cref="DirectoryNotFoundException">ENOTDIR: the path is not a directory (a file, say).</exception>
    /// <exception cref="KernelIOException">ENOTEMPTY: the directory is not empty (the message says so); or another
    /// kernel error (EBUSY for a mount point), its Errno says which.</exception>
    public static ValueTask DeleteDirectoryAsync(string path, CancellationToken cancellationToken = default)
    {
        string full = FullPath(path, nameof(path));
        var op = Rent("FileSystem.DeleteDirectoryAsync", "delete directory", full, cancellationToken, out var executor);
        if (op is null) return ValueTask.FromCanceled(cancellationToken);
        op.PrepareUnlink(full, Libc.AtRemoveDir);
        executor.Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>The metadata of the entry at <paramref name="path"/> (statx through the ring): length, type, mode,
    /// times, device, inode, link count.</summary>
    /// <remarks>A symbolic link at the end of the path is described itself, not followed (as lstat(2) does):
    /// <see cref="FileStatus.Kind"/> is then <see cref="FileType.SymbolicLink"/>. Links earlier in the path are
    /// followed. Allocates the async call's state (a metadata call, not a per-byte one).</remarks>
    /// <exception cref="ArgumentException">The path is null or empty.</exception>
    /// <exception cref="FileNotFoundException">Nothing exists at the path; its FileName is the full path.</exception>
    /// <exception cref="DirectoryNotFoundException">A component of the path is not a directory.</exception>
    /// <exception cref="UnauthorizedAccessException">Search permission is denied on a directory of the path.</exception>
    public static ValueTask<FileStatus> GetInfoAsync(string path, CancellationToken cancellationToken = default)
    {
        string full = FullPath(path, nameof(path));
        var op = Rent("FileSystem.GetInfoAsync", "statx", full, cancellationToken, out var executor);
        if (op is null) return ValueTask.FromCanceled<FileStatus>(cancellationToken);
        var copy = new StatxCopy();
        op.PrepareStatx(full, Libc.AtSymlinkNoFollow, Statx.MaskBasicStats | Statx.MaskBtime, copy);
        executor.Submit(op);
        return Status(new ValueTask<long>(op, op.Version), copy);

        static async ValueTask<FileStatus> Status(ValueTask<long> statx, StatxCopy copy)
        {
            await statx;
            return FileStatus.From(copy.Value);
        }
    }

    /// <summary>Makes the entries of a directory durable: what was created, renamed or deleted in it survives a
    /// crash once this completes. Opens the directory (O_RDONLY | O_DIRECTORY), fsyncs it and closes it, each
    /// through the ring.</summary>
    /// <remarks>Syncing a file's data is the file's own flush; a new or renamed file also needs its directory
    /// synced. The descriptor is closed also when the fsync fails or is canceled.</remarks>
    /// <exception cref="ArgumentException">The path is null or empty.</exception>
    /// <exception cref="FileNotFoundException">The directory does not exist; its FileName is the full path.</exception>
    /// <exception cref="DirectoryNotFoundException">The path, or a component of it, is not a directory.</exception>
    /// <exception cref="UnauthorizedAccessException">Permission is denied.</exception>
    /// <exception cref="KernelIOException">The fsync failed (EIO: the device lost writes); its Errno says which.</exception>
    public static ValueTask SyncDirectoryAsync(string path, CancellationToken cancellationToken = default)
    {
        string full = FullPath(path, nameof(path));
        var open = Rent("FileSystem.SyncDirectoryAsync", "open directory", full, cancellationToken, out var executor);
        if (open is null) return ValueTask.FromCanceled(cancellationToken);
        open.PrepareOpen(full, Libc.ORdonly | Libc.ODirectory | Libc.OCloexec, 0);
        executor.Submit(open);
        return SyncAndClose(executor, new ValueTask<int>(open, open.Version), full, cancellationToken);
    }

    private static async ValueTask SyncAndClose(ShardExecutor executor, ValueTask<int> open, string full, CancellationToken cancellationToken)
    {
        int fd = await open;
        var handle = new FileDescriptor(fd);
        try
        {
            cancellationToken.ThrowIfCancellationRequested(); // canceled while the open was in flight
            var sync = executor.Operations.RentReadWrite().Start("fsync directory", full, handle, cancellationToken);
            sync.PrepareFsync(fd, dataOnly: false);
            executor.Submit(sync);
            await new ValueTask(sync, sync.Version);
        }
        finally
        {
            await executor.CloseThroughRing(handle, "close directory", full);
        }
    }

    private static string FullPath(string path, string paramName)
    {
        ArgumentException.ThrowIfNullOrEmpty(path, paramName);
        return Path.GetFullPath(path);
    }

    /// <summary>Checks that the call is on a shard and rents a path operation for it; null when the token is
    /// already canceled (nothing is submitted).</summary>
    private static PathOperation? Rent(string member, string what, string fullPath, CancellationToken cancellationToken, out ShardExecutor executor)
    {
        executor = ShardExecutor.Require(member);
        if (cancellationToken.IsCancellationRequested) return null;
        return executor.Operations.RentPath().Start(what, fullPath, null, cancellationToken);
    }
}

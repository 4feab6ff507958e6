using Scipio.Interop;

namespace Scipio.IO;

/// <summary>What a directory entry is: the file type bits (S_IFMT) of its mode.</summary>
public enum FileType
{
    /// <summary>A regular file.</summary>
    File,
    /// <summary>A directory.</summary>
    Directory,
    /// <summary>A symbolic link (reported for the link itself: <see cref="FileSystem.GetInfoAsync"/> does not
    /// follow a final link).</summary>
    SymbolicLink,
    /// <summary>A block device.</summary>
    BlockDevice,
    /// <summary>A character device.</summary>
    CharacterDevice,
    /// <summary>A FIFO (named pipe).</summary>
    Fifo,
    /// <summary>A Unix domain socket.</summary>
    Socket,
}

/// <summary>A file's metadata as statx(2) reported it: what <see cref="FileSystem.GetInfoAsync"/> returns. A
/// snapshot: it does not change when the file does.</summary>
/// <remarks>Times are in UTC with the file system's precision (nanoseconds on ext4, truncated here to .NET's
/// 100 ns ticks). <see cref="CreationTime"/> is null where the file system or kernel does not report a birth time
/// (statx's STATX_BTIME: ext4, XFS and btrfs do on 4.11 and later; tmpfs only since 5.18).</remarks>
public readonly record struct FileStatus
{
    /// <summary>The length in bytes (stx_size): for a symbolic link, the length of the path it holds.</summary>
    public long Length { get; init; }

    /// <summary>What the entry is.</summary>
    public FileType Kind { get; init; }

    /// <summary>The permission bits, set-user-ID, set-group-ID and sticky bits (the low 12 bits of stx_mode).</summary>
    public UnixFileMode Mode { get; init; }

    /// <summary>When the data was last written (stx_mtime).</summary>
    public DateTimeOffset LastWriteTime { get; init; }

    /// <summary>When the data was last read (stx_atime), as far as the mount's atime policy (relatime, noatime)
    /// keeps it.</summary>
    public DateTimeOffset LastAccessTime { get; init; }

    /// <summary>When the metadata (mode, owner, link count, name) or data last changed (stx_ctime).</summary>
    public DateTimeOffset ChangeTime { get; init; }

    /// <summary>When the file was created (stx_btime), or null where it is not reported.</summary>
    public DateTimeOffset? CreationTime { get; init; }

    /// <summary>The preferred block size for I/O on the file (stx_blksize).</summary>
    public int BlockSize { get; init; }

    /// <summary>The major number of the device that holds the file (stx_dev_major).</summary>
    public int DeviceMajor { get; init; }

    /// <summary>The minor number of the device that holds the file (stx_dev_minor).</summary>
    public int DeviceMinor { get; init; }

    /// <summary>The inode number: with the device, it identifies the file (two paths with the same device and
    /// inode are hard links to one file).</summary>
    public long Inode { get; init; }

    /// <summary>How many hard links the file has (stx_nlink).</summary>
    public long LinkCount { get; init; }

    /// <summary>The owner's user ID.</summary>
    public int OwnerId { get; init; }

    /// <summary>The owner's group ID.</summary>
    public int GroupId { get; init; }

    /// <summary>A status from the kernel's struct.</summary>
    internal static FileStatus From(in Statx stx) => new()
    {
        Length = (long)stx.Size,
        Kind = TypeOf(stx.Mode),
        Mode = (UnixFileMode)(stx.Mode & 0xFFF),
        LastWriteTime = Time(stx.MtimeSec, stx.MtimeNsec),
        LastAccessTime = Time(stx.AtimeSec, stx.AtimeNsec),
        ChangeTime = Time(stx.CtimeSec, stx.CtimeNsec),
        CreationTime = (stx.Mask & Statx.MaskBtime) != 0 ? Time(stx.BtimeSec, stx.BtimeNsec) : null,
        BlockSize = (int)stx.BlockSize,
        DeviceMajor = (int)stx.DevMajor,
        DeviceMinor = (int)stx.DevMinor,
        Inode = (long)stx.Inode,
        LinkCount = stx.LinkCount,
        OwnerId = (int)stx.Uid,
        GroupId = (int)stx.Gid,
    };

    private static FileType TypeOf(ushort mode) => (mode & 0xF000) switch // S_IFMT
    {
        0x4000 => FileType.Directory,
        0xA000 => FileType.SymbolicLink,
        0x6000 => FileType.BlockDevice,
        0x2000 => FileType.CharacterDevice,
        0x1000 => FileType.Fifo,
        0xC000 => FileType.Socket,
        _ => FileType.File,
    };

    private static DateTimeOffset Time(long seconds, uint nanoseconds) =>
        DateTimeOffset.UnixEpoch.AddTicks(seconds * TimeSpan.TicksPerSecond + nanoseconds / 100);
}

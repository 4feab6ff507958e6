namespace Scipio.Interop;

/// <summary>open(2) flags for a .NET <see cref="FileMode"/> and <see cref="FileAccess"/>, checked as
/// <c>File.Open</c> checks them.</summary>
internal static class OpenFlags
{
    /// <summary>0666 less the umask, as File.Create does.</summary>
    public const uint DefaultCreateMode = 0x1B6;

    /// <summary>The flags (O_CLOEXEC always among them).</summary>
    /// <exception cref="ArgumentException">Truncating or creating with read access only, or Append (writes in
    /// Scipio are positional).</exception>
    public static int For(FileMode mode, FileAccess access)
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
}

/// <summary>What a file's statx mode says it is, as far as the shard cares.</summary>
internal enum FileKind
{
    /// <summary>A regular file or a block device: its I/O completes by itself.</summary>
    Regular,
    /// <summary>A directory: not a file to read or write.</summary>
    Directory,
    /// <summary>A FIFO, socket or character device: its reads and writes may wait indefinitely.</summary>
    Other,
}

internal static class FileKinds
{
    private const long TypeMask = 0xF000, Directory = 0x4000, Regular = 0x8000, Block = 0x6000; // S_IFMT and kin

    public static FileKind OfMode(long mode) => (mode & TypeMask) switch
    {
        Directory => FileKind.Directory,
        Regular or Block => FileKind.Regular,
        _ => FileKind.Other,
    };
}

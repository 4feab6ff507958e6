using System.Runtime.InteropServices;
using System.Text;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio.Ring;

/// <summary>Operations on paths and file metadata: openat, statx, and the two-path ones (renameat, linkat). The
/// kernel reads the paths and writes the statx buffer until the final CQE, so they live in native scratch memory
/// the operation owns: grown to the largest use so far and kept, not a malloc per call; freed when the pool trims
/// the operation.</summary>
internal sealed unsafe class PathOperation(ShardExecutor owner, OperationTable table) : IoOperation(owner, table)
{
    private const int StatxBytes = 256;
    private byte* _scratch;
    private int _capacity;
    private StatxField _field;

    /// <summary>Which statx field becomes the result of a statx use.</summary>
    public enum StatxField : byte
    {
        /// <summary>The CQE's result (0) itself: not a statx use.</summary>
        None,
        /// <summary>stx_size.</summary>
        Size,
        /// <summary>stx_mode (file type and permissions).</summary>
        Mode,
        /// <summary>stx_dio_offset_align in the low 32 bits and stx_dio_mem_align in the high 32 (0: not reported).</summary>
        DioAlign,
        /// <summary>The whole struct, copied into a <see cref="StatxCopy"/>; the result is 0.</summary>
        Whole,
    }

    /// <summary>Starts a use; then one Prepare* and submit.</summary>
    public PathOperation Start(string what, string? path, SafeHandle? file, CancellationToken ct)
    {
        Begin(what, path, file, ct);
        return this;
    }

    /// <summary>openat(AT_FDCWD, path, flags, mode); the result is the new descriptor.</summary>
    public void PrepareOpen(string path, int flags, uint mode)
    {
        byte* p = Scratch(PathBytes(path));
        WritePath(path, p);
        SqeWriter.OpenAt(ref Sqe, Libc.AtFdCwd, (ulong)p, flags, mode);
    }

    /// <summary>statx of an open descriptor (AT_EMPTY_PATH); the result is <paramref name="field"/>.</summary>
    public void PrepareStatx(int fd, StatxField field)
    {
        uint mask = field switch
        {
            StatxField.Size => Statx.MaskSize,
            StatxField.DioAlign => Statx.MaskDioAlign | Statx.MaskType,
            _ => Statx.MaskType,
        };
        byte* p = Scratch(StatxBytes + 1); // the buffer, then an empty NUL-terminated path
        new Span<byte>(p, StatxBytes + 1).Clear();
        _field = field;
        SqeWriter.Statx(ref Sqe, fd, (ulong)(p + StatxBytes), Libc.AtEmptyPath, mask, (ulong)p);
    }

    /// <summary>renameat(AT_FDCWD, from, AT_FDCWD, to, flags).</summary>
    public void PrepareRename(string from, string to, uint flags)
    {
        var (a, b) = WriteTwoPaths(from, to);
        SqeWriter.RenameAt(ref Sqe, Libc.AtFdCwd, a, Libc.AtFdCwd, b, flags);
    }

    /// <summary>linkat(AT_FDCWD, existing, AT_FDCWD, link, flags).</summary>
    public void PrepareLink(string existing, string link, int flags)
    {
        var (a, b) = WriteTwoPaths(existing, link);
        SqeWriter.LinkAt(ref Sqe, Libc.AtFdCwd, a, Libc.AtFdCwd, b, flags);
    }

    /// <summary>Both paths, NUL-terminated, one after the other in the scratch; their addresses.</summary>
    private (ulong First, ulong Second) WriteTwoPaths(string first, string second)
    {
        int a = PathBytes(first);
        byte* p = Scratch(a + PathBytes(second));
        WritePath(first, p);
        WritePath(second, p + a);
        return ((ulong)p, (ulong)(p + a));
    }

    public override CqeAction OnCqe(in IoUringCqe cqe)
    {
        long result = cqe.Res;
        if (result >= 0 && _field != StatxField.None)
        {
            ref readonly Statx stx = ref *(Statx*)_scratch;
            if (_field == StatxField.Whole) _copy!.Value = stx;
            else
                result = _field switch
                {
                    StatxField.Size => (long)stx.Size,
                    StatxField.DioAlign => stx.DioOffsetAlign | ((long)stx.DioMemAlign << 32),
                    _ => stx.Mode,
                };
        }
        Complete(result);
        return CqeAction.Complete;
    }

    protected override void ReturnToPool() => Table.Return(this);

    protected override void Reset()
    {
        base.Reset();
        _field = StatxField.None;
        _copy = null;
    }

    /// <summary>Frees the scratch memory: the pool dropped the operation.</summary>
    public override void FreeScratch()
    {
        NativeMemory.Free(_scratch);
        _scratch = null;
        _capacity = 0;
    }

    private static int PathBytes(string path) => Encoding.UTF8.GetMaxByteCount(path.Length) + 1;

    private static void WritePath(string path, byte* at)
    {
        int n = Encoding.UTF8.GetBytes(path, new Span<byte>(at, PathBytes(path)));
        at[n] = 0;
    }

    private byte* Scratch(int bytes)
    {
        if (bytes > _capacity)
        {
            NativeMemory.Free(_scratch);
            _capacity = Math.Max(bytes, 512);
            _scratch = (byte*)NativeMemory.Alloc((nuint)_capacity);
        }
        return _scratch;
    }

    private StatxCopy? _copy;

    /// <summary>unlinkat(AT_FDCWD, path, flags): a file, or an empty directory with AT_REMOVEDIR.</summary>
    public void PrepareUnlink(string path, int flags)
    {
        byte* p = Scratch(PathBytes(path));
        WritePath(path, p);
        SqeWriter.UnlinkAt(ref Sqe, Libc.AtFdCwd, (ulong)p, flags);
    }

    /// <summary>mkdirat(AT_FDCWD, path, mode).</summary>
    public void PrepareMkdir(string path, uint mode)
    {
        byte* p = Scratch(PathBytes(path));
        WritePath(path, p);
        SqeWriter.MkdirAt(ref Sqe, Libc.AtFdCwd, (ulong)p, mode);
    }

    /// <summary>statx(AT_FDCWD, path, flags, <paramref name="mask"/>): the whole struct is copied into
    /// <paramref name="copy"/> when the CQE arrives, before the awaiter runs; the result is 0.</summary>
    public void PrepareStatx(string path, int flags, uint mask, StatxCopy copy)
    {
        byte* p = Scratch(StatxBytes + PathBytes(path)); // the buffer, then the path
        new Span<byte>(p, StatxBytes).Clear();
        WritePath(path, p + StatxBytes);
        _field = StatxField.Whole;
        _copy = copy;
        SqeWriter.Statx(ref Sqe, Libc.AtFdCwd, (ulong)(p + StatxBytes), flags, mask, (ulong)p);
    }
}

/// <summary>Where a whole-statx use of a <see cref="PathOperation"/> leaves the struct: the operation goes back to its
/// pool when its result is read, so what the caller needs outlives it here.</summary>
internal sealed class StatxCopy
{
    public Statx Value;
}

using System.Buffers;
using Scipio.Interop;
using Scipio.Ring;

namespace Scipio.Runtime;

/// <summary>One io_uring operation, pooled per shard. It holds what its SQE needs (so it can wait in the backlog
/// and be written later), keeps its buffer pinned until the kernel's completion arrives — also after a
/// cancellation — and completes a write in full by resubmitting after a short write.</summary>
internal sealed class IoOperation : ShardOperation
{
    private Opcode _opcode;
    private int _fd;
    private ulong _address;
    private uint _length;
    private ulong _offset;
    private uint _opFlags;
    private ulong _address2; // statx buffer, timeout-update timespec
    private MemoryHandle _pin;
    private nint _native; // native memory the operation owns for this use (a path, a statx buffer)
    private string _what = "";
    private string? _path;
    private int _done; // bytes a write has completed so far

    public IoOperation(ShardExecutor owner, int slot) : base(owner) => Slot = slot;

    /// <summary>Index in the shard's operation table: the low half of the user_data.</summary>
    public int Slot { get; }

    /// <summary>The user_data that identifies this use of the operation in its CQE.</summary>
    public ulong UserData => (uint)Slot | ((ulong)(ushort)Version << 32);

    /// <summary>Whether the operation has been handed to the reactor and not completed.</summary>
    public bool InFlight { get; set; }

    /// <summary>The ring it was submitted to.</summary>
    public RingChannel? Channel { get; set; }

    /// <summary>O_DIRECT I/O, which may go to the poll ring.</summary>
    public bool DirectIo { get; private set; }

    /// <summary>(major &lt;&lt; 32) | minor of the file's block device, for O_DIRECT I/O.</summary>
    public ulong DeviceKey { get; private set; }

    /// <summary>Marks the use as O_DIRECT I/O on the given device, so that routing may send it to the poll ring.</summary>
    public void SetDirect(ulong deviceKey)
    {
        DirectIo = true;
        DeviceKey = deviceKey;
    }

    /// <summary>Sets the operation up for a use; then call one of the Set* methods and submit.</summary>
    public IoOperation Prepare(string what, string? path, CancellationToken ct)
    {
        _what = what;
        _path = path;
        Begin(ct);
        return this;
    }

    public void SetNop() => _opcode = Opcode.Nop;

    public void SetRead(int fd, MemoryHandle pin, ulong address, uint length, ulong offset) =>
        SetRw(Opcode.Read, fd, pin, address, length, offset);

    public void SetWrite(int fd, MemoryHandle pin, ulong address, uint length, ulong offset) =>
        SetRw(Opcode.Write, fd, pin, address, length, offset);

    private void SetRw(Opcode op, int fd, MemoryHandle pin, ulong address, uint length, ulong offset)
    {
        _opcode = op;
        _fd = fd;
        _pin = pin;
        _address = address;
        _length = length;
        _offset = offset;
    }

    public void SetFsync(int fd, uint flags)
    {
        _opcode = Opcode.Fsync;
        _fd = fd;
        _opFlags = flags;
    }

    public void SetClose(int fd)
    {
        _opcode = Opcode.Close;
        _fd = fd;
    }

    /// <summary>openat on a path copied to native memory that lives until the completion.</summary>
    public void SetOpenAt(string path, int flags, uint mode)
    {
        _opcode = Opcode.OpenAt;
        _fd = Libc.AtFdCwd;
        _native = NativePath(path);
        _address = (ulong)_native;
        _opFlags = (uint)flags;
        _length = mode;
    }

    /// <summary>statx of an open file into native memory the operation owns; the operation's 64-bit result is
    /// the file size.</summary>
    public void SetStatx(int fd, uint mask)
    {
        _opcode = Opcode.Statx;
        _fd = fd;
        _native = Pinning.AllocZeroed(256 + 8); // statx buffer, then an empty NUL-terminated path
        _address = (ulong)_native + 256;
        _address2 = (ulong)_native;
        _opFlags = Libc.AtEmptyPath;
        _length = mask;
    }

    public void SetCancel(ulong target)
    {
        _opcode = Opcode.AsyncCancel;
        _address = target;
    }

    private static nint NativePath(string path)
    {
        int max = System.Text.Encoding.UTF8.GetMaxByteCount(path.Length) + 1;
        nint p = Pinning.AllocZeroed(max);
        System.Text.Encoding.UTF8.GetBytes(path, Pinning.Span(p, max));
        return p;
    }

    /// <summary>Writes the SQE for the current use.</summary>
    public void WriteSqe(ref IoUringSqe sqe)
    {
        ulong ud = UserData;
        switch (_opcode)
        {
            case Opcode.Nop: SqeWriter.Nop(ref sqe, ud); break;
            case Opcode.Read: SqeWriter.Read(ref sqe, _fd, _address, _length, _offset, ud); break;
            case Opcode.Write:
                SqeWriter.Write(ref sqe, _fd, _address + (uint)_done, _length - (uint)_done, _offset + (uint)_done, ud);
                break;
            case Opcode.Fsync: SqeWriter.Fsync(ref sqe, _fd, _opFlags, ud); break;
            case Opcode.Close: SqeWriter.Close(ref sqe, _fd, ud); break;
            case Opcode.OpenAt: SqeWriter.OpenAt(ref sqe, _fd, _address, (int)_opFlags, _length, ud); break;
            case Opcode.Statx: SqeWriter.Statx(ref sqe, _fd, _address, (int)_opFlags, _length, _address2, ud); break;
            case Opcode.AsyncCancel: SqeWriter.AsyncCancel(ref sqe, _address, ud); break;
            default: throw new InvalidOperationException($"No SQE writer for {_opcode}.");
        }
    }

    /// <summary>The kernel's completion. Returns false when the operation went back to the ring instead of
    /// completing (the rest of a short write).</summary>
    public bool OnCompletion(int res)
    {
        if (_opcode == Opcode.Write && res > 0 && _done + res < _length)
        {
            _done += res;
            return false;
        }
        if (_opcode == Opcode.Write && res >= 0) res += _done;
        Complete(_opcode == Opcode.Statx && res >= 0 ? (long)Pinning.Read<Statx>(_native).Size : res);
        return true;
    }

    /// <summary>Releases the pin and native memory of the current use (also at shutdown, for a use whose awaiter will never run).</summary>
    public void ReleaseBuffers()
    {
        _pin.Dispose();
        _pin = default;
        if (_native != 0)
        {
            Pinning.Free(_native);
            _native = 0;
        }
    }

    protected override void OnCancelRequested() => Owner.RequestCancel(this, Version);

    protected override Exception CreateException(int errno, CancellationToken ct) =>
        errno == Errno.ECANCELED && ct.IsCancellationRequested
            ? new OperationCanceledException($"{_what} was canceled.", ct)
            : Errno.ToException(errno, _what, _path);

    protected override void Reset()
    {
        ReleaseBuffers();
        Channel = null;
        DirectIo = false;
        DeviceKey = 0;
        _opcode = Opcode.Nop;
        _fd = -1;
        _address = _address2 = _offset = 0;
        _length = _opFlags = 0;
        _done = 0;
        _what = "";
        _path = null;
    }

    protected override void ReturnToPool() => Owner.Reactor.ReturnOperation(this);
}

using System.Numerics;
using System.Runtime.CompilerServices;
using Scipio.Interop;

namespace Scipio.Ring;

/// <summary>What a ring is for; it decides the setup flags tried.</summary>
internal enum RingRole
{
    /// <summary>Most operations; the ring the shard blocks on.</summary>
    Main,
    /// <summary>The preemption timer and latency-sensitive I/O. Its completions must become visible while the
    /// shard runs user code, so it takes neither COOP_TASKRUN nor DEFER_TASKRUN (both hold completions back until
    /// the thread enters the kernel).</summary>
    Latency,
    /// <summary>IORING_SETUP_IOPOLL, for O_DIRECT I/O on devices that poll.</summary>
    Poll,
}

/// <summary>One io_uring instance: the mapped SQ and CQ, SQE acquisition, submission, waiting and reaping.
/// Single-threaded by design: only the shard thread that created it may use it (IORING_SETUP_SINGLE_ISSUER).</summary>
internal sealed unsafe class Ring : IDisposable
{
    private readonly int _fd;
    private readonly byte* _sqRing, _cqRing;
    private readonly nuint _sqRingSize, _cqRingSize, _sqesSize;
    private readonly IoUringSqe* _sqes;
    private readonly uint* _sqHead, _sqTail, _sqFlags;
    private readonly uint _sqMask;
    private readonly uint* _cqHead, _cqTail;
    private readonly IoUringCqe* _cqes;
    private readonly uint _cqMask;
    private readonly ulong[] _supportedOps = new ulong[4];
    private uint _sqeTail; // next SQE to hand out; published to *_sqTail on submit
    private bool _disposed;

    /// <summary>The ring's file descriptor.</summary>
    public int Fd => _fd;
    public RingRole Role { get; }
    public SetupFlags Flags { get; }
    public RingFeatures Features { get; }
    public uint SqEntries { get; }
    public uint CqEntries { get; }

    private Ring(RingRole role, int fd, in IoUringParams p)
    {
        Role = role;
        _fd = fd;
        Flags = p.Flags;
        Features = p.Features;
        SqEntries = p.SqEntries;
        CqEntries = p.CqEntries;
        if (!BitOperations.IsPow2(SqEntries) || !BitOperations.IsPow2(CqEntries))
            throw new InvalidOperationException($"io_uring returned ring sizes that are not powers of two ({SqEntries}, {CqEntries}).");

        bool noSqArray = (p.Flags & SetupFlags.NoSqArray) != 0;
        _sqRingSize = noSqArray ? p.SqOff.Dropped + 4u : p.SqOff.Array + SqEntries * 4;
        _cqRingSize = p.CqOff.Cqes + CqEntries * (uint)sizeof(IoUringCqe);
        bool single = (p.Features & RingFeatures.SingleMmap) != 0;
        if (single) _sqRingSize = _cqRingSize = Math.Max(_sqRingSize, _cqRingSize);

        _sqRing = Map(_sqRingSize, IoUringConst.OffSqRing);
        _cqRing = single ? _sqRing : Map(_cqRingSize, IoUringConst.OffCqRing);
        _sqesSize = SqEntries * (uint)sizeof(IoUringSqe);
        _sqes = (IoUringSqe*)Map(_sqesSize, IoUringConst.OffSqes);

        // Never trust an offset the kernel hands back without checking it lies inside the mapping.
        CheckOffset(p.SqOff.Head, _sqRingSize, "sq head"); CheckOffset(p.SqOff.Tail, _sqRingSize, "sq tail");
        CheckOffset(p.SqOff.RingMask, _sqRingSize, "sq mask"); CheckOffset(p.SqOff.Flags, _sqRingSize, "sq flags");
        CheckOffset(p.CqOff.Head, _cqRingSize, "cq head"); CheckOffset(p.CqOff.Tail, _cqRingSize, "cq tail");
        CheckOffset(p.CqOff.RingMask, _cqRingSize, "cq mask");
        if (p.CqOff.Cqes + (ulong)CqEntries * 16 > _cqRingSize) throw BadOffset("cqes");

        _sqHead = (uint*)(_sqRing + p.SqOff.Head);
        _sqTail = (uint*)(_sqRing + p.SqOff.Tail);
        _sqFlags = (uint*)(_sqRing + p.SqOff.Flags);
        _sqMask = *(uint*)(_sqRing + p.SqOff.RingMask);
        _cqHead = (uint*)(_cqRing + p.CqOff.Head);
        _cqTail = (uint*)(_cqRing + p.CqOff.Tail);
        _cqMask = *(uint*)(_cqRing + p.CqOff.RingMask);
        _cqes = (IoUringCqe*)(_cqRing + p.CqOff.Cqes);
        if (_sqMask != SqEntries - 1 || _cqMask != CqEntries - 1) throw BadOffset("ring masks");

        if (!noSqArray)
        {
            // An identity map from SQ slot to SQE index, set once: SQEs are then consumed in order, as with
            // IORING_SETUP_NO_SQARRAY.
            CheckOffset(p.SqOff.Array + (SqEntries - 1) * 4, _sqRingSize, "sq array");
            uint* array = (uint*)(_sqRing + p.SqOff.Array);
            for (uint i = 0; i < SqEntries; i++) array[i] = i;
        }
        _sqeTail = *_sqTail;
        Probe();
    }

    /// <summary>The completion queue's size for <paramref name="sqEntries"/> submission entries: 16 times as many,
    /// at least 1024 (IORING_SETUP_CQSIZE; the kernel clamps it to its maximum). Operations that wait indefinitely
    /// (idle receives, a read on a FIFO) hold no room in it — the ring relies on IORING_FEAT_NODROP should their
    /// completions all arrive at once — so it is sized for bursts, not for everything in flight.</summary>
    public static uint CqEntriesFor(uint sqEntries) => Math.Max(1024u, 16 * sqEntries);

    /// <summary>Creates a ring for <paramref name="role"/>, trying the best setup flags first and dropping the
    /// ones an older kernel rejects (EINVAL).</summary>
    /// <exception cref="IoUringUnavailableException">io_uring cannot be used by this process, or the kernel
    /// lacks IORING_FEAT_NODROP (Linux 5.5), which the shard's accounting relies on.</exception>
    public static Ring Create(RingRole role, uint entries)
    {
        int lastErrno = 0;
        foreach (var flags in FlagSets(role))
        {
            var p = new IoUringParams { Flags = flags | SetupFlags.CqSize, CqEntries = CqEntriesFor(entries) };
            long fd = Libc.Syscall(Libc.SysIoUringSetup, entries, (long)&p, 0, 0, 0, 0);
            if (fd >= 0)
            {
                if ((p.Features & RingFeatures.NoDrop) == 0)
                {
                    Libc.Close((int)fd);
                    throw new IoUringUnavailableException(
                        "This kernel's io_uring lacks IORING_FEAT_NODROP, which Scipio relies on so that no completion is ever lost. Scipio needs Linux 6.1 or later.",
                        Errno.EOPNOTSUPP);
                }
                try { return new Ring(role, (int)fd, p); }
                catch { Libc.Close((int)fd); throw; }
            }
            lastErrno = Libc.LastErrno;
            if (lastErrno != Errno.EINVAL) break;
        }
        throw Unavailable(lastErrno);
    }

    private static SetupFlags[] FlagSets(RingRole role)
    {
        const SetupFlags basic = SetupFlags.Clamp | SetupFlags.SubmitAll;
        var extra = role == RingRole.Poll ? SetupFlags.IoPoll : SetupFlags.None;
        return role == RingRole.Main
            ? [
                basic | SetupFlags.SingleIssuer | SetupFlags.DeferTaskRun | SetupFlags.TaskRunFlag | SetupFlags.CoopTaskRun | SetupFlags.NoSqArray,
                basic | SetupFlags.SingleIssuer | SetupFlags.DeferTaskRun | SetupFlags.TaskRunFlag | SetupFlags.CoopTaskRun,
                basic | SetupFlags.SingleIssuer | SetupFlags.CoopTaskRun | SetupFlags.TaskRunFlag,
                basic | SetupFlags.CoopTaskRun,
                basic,
                SetupFlags.None,
            ]
            : [
                extra | basic | SetupFlags.SingleIssuer | SetupFlags.NoSqArray,
                extra | basic | SetupFlags.SingleIssuer,
                extra | basic,
                extra,
            ];
    }

    /// <summary>The exception for an io_uring_setup failure that no flag fallback can fix.</summary>
    internal static IoUringUnavailableException Unavailable(int errno)
    {
        string disabled = "";
        try { disabled = File.ReadAllText("/proc/sys/kernel/io_uring_disabled").Trim(); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        string why = errno switch
        {
            Errno.ENOSYS => "this kernel has no io_uring (ENOSYS). Scipio needs Linux 6.1 or later built with CONFIG_IO_URING.",
            Errno.EPERM when disabled == "2" => "io_uring is disabled system-wide (EPERM: kernel.io_uring_disabled = 2). Enable it with 'sysctl kernel.io_uring_disabled=0'.",
            Errno.EPERM when disabled == "1" => "io_uring is limited to the group in kernel.io_uring_group (EPERM: kernel.io_uring_disabled = 1). Add the user to that group, or set 'sysctl kernel.io_uring_disabled=0'.",
            Errno.EPERM => "io_uring_setup was denied (EPERM), most likely by a seccomp profile: Docker's default profile blocks io_uring. Run the container with a profile that allows io_uring_setup, io_uring_enter and io_uring_register (for example --security-opt seccomp=<profile>).",
            Errno.ENOMEM => "the kernel could not allocate the ring (ENOMEM): raise the locked-memory limit (ulimit -l) or use fewer ring entries.",
            Errno.EMFILE or Errno.ENFILE => $"no file descriptor was left for the ring ({Errno.Name(errno)}): raise the open-files limit (ulimit -n).",
            _ => $"io_uring_setup failed with {Errno.Name(errno)} ({errno}).",
        };
        return new IoUringUnavailableException("io_uring is unavailable, so no shard can start: " + why, errno);
    }

    private byte* Map(nuint size, ulong offset)
    {
        nint p = Libc.Mmap(0, size, Libc.ProtRead | Libc.ProtWrite, Libc.MapShared | Libc.MapPopulate, _fd, (long)offset);
        if (p == Libc.MapFailed) throw Errno.ToException(Libc.LastErrno, "mmap of the io_uring rings");
        return (byte*)p;
    }

    private static void CheckOffset(ulong offset, nuint size, string what)
    {
        if (offset + 4 > size) throw BadOffset(what);
    }

    private static InvalidOperationException BadOffset(string what) =>
        new($"io_uring reported an offset for the {what} outside its mapping; refusing to use the ring.");

    private void Probe()
    {
        const int ops = 256;
        byte* buf = stackalloc byte[sizeof(ProbeHeader) + ops * sizeof(ProbeOp)];
        new Span<byte>(buf, sizeof(ProbeHeader) + ops * sizeof(ProbeOp)).Clear();
        if (Libc.Syscall(Libc.SysIoUringRegister, _fd, IoUringConst.RegisterProbe, (long)buf, ops, 0, 0) < 0) return;
        var header = (ProbeHeader*)buf;
        var entries = (ProbeOp*)(buf + sizeof(ProbeHeader));
        for (int i = 0; i < header->OpsLen && i < ops; i++)
            if ((entries[i].Flags & IoUringConst.ProbeOpSupported) != 0)
                _supportedOps[entries[i].Op >> 6] |= 1ul << (entries[i].Op & 63);
    }

    /// <summary>Sets the CPUs of the kernel's io-wq workers for this ring (IORING_REGISTER_IOWQ_AFF). They would
    /// otherwise inherit the shard thread's pin and compete with it for its own CPU. Best effort: false if the
    /// kernel refuses.</summary>
    public bool SetWorkerAffinity(int[] cpus)
    {
        ulong* mask = stackalloc ulong[Cpus.MaskWords];
        Cpus.FillMask(mask, cpus);
        return Libc.Syscall(Libc.SysIoUringRegister, _fd, IoUringConst.RegisterIowqAff, (long)mask, Cpus.MaskWords * sizeof(ulong), 0, 0) == 0;
    }

    /// <summary>Throws <see cref="IoUringUnavailableException"/> naming every opcode in <paramref name="required"/>
    /// that the kernel's probe does not list.</summary>
    public void RequireOpcodes(ReadOnlySpan<Opcode> required)
    {
        var missing = new List<Opcode>();
        foreach (var op in required)
            if (!Supports(op)) missing.Add(op);
        if (missing.Count > 0)
            throw new IoUringUnavailableException(
                $"This kernel's io_uring lacks operations Scipio needs: {string.Join(", ", missing)}. Scipio needs Linux 6.1 or later.",
                Errno.EOPNOTSUPP);
    }

    /// <summary>Whether the kernel supports <paramref name="op"/> (IORING_REGISTER_PROBE).</summary>
    public bool Supports(Opcode op) => (_supportedOps[(byte)op >> 6] & (1ul << ((byte)op & 63))) != 0;

    /// <summary>SQEs written and not yet consumed by the kernel.</summary>
    public uint Prepared => _sqeTail - Volatile.Read(ref *_sqHead);

    /// <summary>Hands out the next SQE, zeroed, or returns false when the SQ is full (submit first).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref IoUringSqe TryGetSqe(out bool ok)
    {
        uint tail = _sqeTail;
        if (tail - Volatile.Read(ref *_sqHead) >= SqEntries)
        {
            ok = false;
            return ref Unsafe.NullRef<IoUringSqe>();
        }
        ref IoUringSqe sqe = ref _sqes[tail & _sqMask];
        sqe = default;
        _sqeTail = tail + 1;
        ok = true;
        return ref sqe;
    }

    /// <summary>A <see cref="PreemptSignal"/> over this ring's CQ: raised while a completion waits in it.</summary>
    public PreemptSignal CreatePreemptSignal() => new(_cqTail, _cqHead);

    /// <summary>True when completions are waiting in the CQ: a memory compare, no syscall. On the latency ring
    /// this is what <c>Shard.NeedPreempt</c> reads.</summary>
    public bool HasCompletions
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref *_cqTail) != *_cqHead;
    }

    /// <summary>True when the kernel holds completions that only an io_uring_enter(GETEVENTS) will post
    /// (DEFER_TASKRUN / TASKRUN_FLAG), or the CQ overflowed into the kernel's backlog.</summary>
    public bool KernelHasPendingWork =>
        (Volatile.Read(ref *_sqFlags) & (IoUringConst.SqTaskRun | IoUringConst.SqCqOverflow)) != 0;

    /// <summary>The next completion, left in the CQ.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPeekCompletion(out IoUringCqe cqe)
    {
        uint head = *_cqHead;
        if (head == Volatile.Read(ref *_cqTail))
        {
            cqe = default;
            return false;
        }
        cqe = _cqes[head & _cqMask];
        return true;
    }

    /// <summary>Reads the next completion and releases its slot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadCompletion(out IoUringCqe cqe)
    {
        if (!TryPeekCompletion(out cqe)) return false;
        Volatile.Write(ref *_cqHead, *_cqHead + 1);
        return true;
    }

    /// <summary>Publishes prepared SQEs and enters the kernel: submits them, runs deferred task work, and, when
    /// <paramref name="waitFor"/> &gt; 0, blocks until that many completions are available or
    /// <paramref name="timeoutNs"/> passes (negative: no timeout). Returns the SQEs consumed, or a negated errno
    /// (ETIME on timeout, EINTR on a signal: both harmless).</summary>
    public int Enter(uint waitFor, long timeoutNs)
    {
        uint toSubmit = _sqeTail - Volatile.Read(ref *_sqHead);
        Volatile.Write(ref *_sqTail, _sqeTail);
        var flags = EnterFlags.None;
        if (waitFor > 0 || (Flags & SetupFlags.DeferTaskRun) != 0 || KernelHasPendingWork) flags |= EnterFlags.GetEvents;
        long r;
        if (waitFor > 0 && timeoutNs >= 0)
        {
            var ts = KernelTimespec.FromNanoseconds(timeoutNs);
            var arg = new GetEventsArg { Ts = (ulong)&ts };
            r = Libc.Syscall(Libc.SysIoUringEnter, _fd, toSubmit, waitFor, (long)(flags | EnterFlags.ExtArg), (long)&arg, sizeof(GetEventsArg));
        }
        else
        {
            r = Libc.Syscall(Libc.SysIoUringEnter, _fd, toSubmit, waitFor, (long)flags, 0, 0);
        }
        return r >= 0 ? (int)r : -Libc.LastErrno;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Libc.Munmap((nint)_sqes, _sqesSize);
        if (_cqRing != _sqRing) Libc.Munmap((nint)_cqRing, _cqRingSize);
        Libc.Munmap((nint)_sqRing, _sqRingSize);
        Libc.Close(_fd);
    }
}

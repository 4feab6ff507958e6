using System.Runtime.InteropServices;

namespace Scipio.Interop;

// The io_uring kernel ABI (include/uapi/linux/io_uring.h). Layouts are explicit and checked by a test
// (sizes and offsets) so that a typo cannot silently corrupt what the kernel reads.

/// <summary>io_uring_setup flags (IORING_SETUP_*).</summary>
[Flags]
internal enum SetupFlags : uint
{
    None = 0,
    IoPoll = 1u << 0,
    Clamp = 1u << 4,
    CqSize = 1u << 3,
    SubmitAll = 1u << 7,
    CoopTaskRun = 1u << 8,
    TaskRunFlag = 1u << 9,
    SingleIssuer = 1u << 12,
    DeferTaskRun = 1u << 13,
    NoSqArray = 1u << 16,
}

/// <summary>IORING_FEAT_* bits reported by io_uring_setup.</summary>
[Flags]
internal enum RingFeatures : uint
{
    SingleMmap = 1u << 0,
    NoDrop = 1u << 1,
    SubmitStable = 1u << 2,
    ExtArg = 1u << 8,
}

/// <summary>io_uring_enter flags (IORING_ENTER_*).</summary>
[Flags]
internal enum EnterFlags : uint
{
    None = 0,
    GetEvents = 1u << 0,
    ExtArg = 1u << 3,
}

/// <summary>io_uring opcodes this shell writes (enum io_uring_op).</summary>
internal enum Opcode : byte
{
    Nop = 0,
    Fsync = 3,
    /// <summary>pread into a registered buffer (sqe->buf_index): see Scipio.Ring.FixedBuffers.</summary>
    ReadFixed = 4,
    /// <summary>pwrite from a registered buffer (sqe->buf_index).</summary>
    WriteFixed = 5,
    PollAdd = 6,
    Timeout = 11,
    TimeoutRemove = 12,
    AsyncCancel = 14,
    Fallocate = 17,
    OpenAt = 18,
    Close = 19,
    Statx = 21,
    Read = 22,
    Write = 23,
    RenameAt = 35,
    LinkAt = 39,
    MsgRing = 40,
    Ftruncate = 55,
    UnlinkAt = 36,
    MkdirAt = 37,

    // sockets
    SendMsg = 9,
    RecvMsg = 10,
    Accept = 13,
    Connect = 16,
    Send = 26,
    Recv = 27,
    Shutdown = 34,
    Socket = 45,
    SendZc = 47,
}

internal static class IoUringConst
{
    public const ulong OffSqRing = 0, OffCqRing = 0x8000000, OffSqes = 0x10000000;
    public const uint SqCqOverflow = 2, SqTaskRun = 4;
    public const uint CqeFMore = 1u << 1;
    public const uint FsyncDataSync = 1;
    public const uint TimeoutAbs = 1, TimeoutUpdate = 2, TimeoutMultishot = 1u << 6;
    public const uint AsyncCancelAll = 1u << 0, AsyncCancelFd = 1u << 1, AsyncCancelAny = 1u << 2;
    public const uint PollAddMulti = 1u << 0;
    public const uint RegisterProbe = 8;
    public const uint RegisterIowqAff = 17;
    public const ushort ProbeOpSupported = 1;

    // sockets and provided-buffer rings
    /// <summary>IOSQE_BUFFER_SELECT: the kernel picks the buffer from the group in buf_group.</summary>
    public const byte SqeBufferSelect = 1 << 5;
    /// <summary>In sqe->ioprio: IORING_RECV_MULTISHOT, IORING_ACCEPT_MULTISHOT.</summary>
    public const ushort RecvMultishot = 1 << 1, AcceptMultishot = 1 << 0;
    /// <summary>IORING_CQE_F_BUFFER: the upper 16 bits of the flags name the buffer used.</summary>
    public const uint CqeFBuffer = 1u << 0;
    public const int CqeBufferShift = 16;
    /// <summary>IORING_CQE_F_NOTIF: a zero-copy send's second CQE — the kernel no longer reads the buffer.</summary>
    public const uint CqeFNotif = 1u << 3;
    public const uint RegisterPbufRing = 22, UnregisterPbufRing = 23;
}

/// <summary>struct io_uring_buf_reg: the argument of IORING_REGISTER_PBUF_RING.</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
internal struct BufferRingRegistration
{
    [FieldOffset(0)] public ulong RingAddress;
    [FieldOffset(8)] public uint RingEntries;
    [FieldOffset(12)] public ushort GroupId;
    [FieldOffset(14)] public ushort Flags;
}

/// <summary>struct io_uring_buf: one entry of a provided-buffer ring. The first entry's last field is the ring's
/// tail (struct io_uring_buf_ring overlays it), which only the application writes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct ProvidedBufferEntry
{
    [FieldOffset(0)] public ulong Address;
    [FieldOffset(8)] public uint Length;
    [FieldOffset(12)] public ushort BufferId;
    [FieldOffset(14)] public ushort TailOrReserved;
}

// ---- Registered buffers (IORING_OP_READ_FIXED / WRITE_FIXED): see Scipio.Ring.FixedBuffers ----

/// <summary>io_uring_register opcodes and flags for a table of registered buffers.</summary>
internal static class FixedBufferAbi
{
    /// <summary>IORING_UNREGISTER_BUFFERS: drops the whole table.</summary>
    public const uint UnregisterBuffers = 1;
    /// <summary>IORING_REGISTER_BUFFERS2 (5.13): a table described by <see cref="RsrcRegister"/>.</summary>
    public const uint RegisterBuffers2 = 15;
    /// <summary>IORING_REGISTER_BUFFERS_UPDATE (5.13): replaces entries, described by <see cref="RsrcUpdate2"/>.</summary>
    public const uint RegisterBuffersUpdate = 16;
    /// <summary>IORING_RSRC_REGISTER_SPARSE (5.19): a table of empty entries, filled later by updates.</summary>
    public const uint RsrcRegisterSparse = 1u << 0;
}

/// <summary>struct io_uring_rsrc_register: IORING_REGISTER_BUFFERS2's argument (nr_args = its size).</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct RsrcRegister
{
    [FieldOffset(0)] public uint Nr;
    [FieldOffset(4)] public uint Flags;
    [FieldOffset(8)] public ulong Resv2;
    /// <summary>Pointer to <see cref="Nr"/> iovecs; 0 with IORING_RSRC_REGISTER_SPARSE.</summary>
    [FieldOffset(16)] public ulong Data;
    [FieldOffset(24)] public ulong Tags;
}

/// <summary>struct io_uring_rsrc_update2: IORING_REGISTER_BUFFERS_UPDATE's argument (nr_args = its size).</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct RsrcUpdate2
{
    /// <summary>The first table index updated.</summary>
    [FieldOffset(0)] public uint Offset;
    [FieldOffset(4)] public uint Resv;
    /// <summary>Pointer to <see cref="Nr"/> iovecs; an iovec {NULL, 0} empties its entry.</summary>
    [FieldOffset(8)] public ulong Data;
    [FieldOffset(16)] public ulong Tags;
    [FieldOffset(24)] public uint Nr;
    [FieldOffset(28)] public uint Resv2;
}

/// <summary>struct iovec.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct IoVec
{
    [FieldOffset(0)] public ulong Base;
    [FieldOffset(8)] public ulong Length;
}

// ---- end of registered buffers ----

[StructLayout(LayoutKind.Explicit, Size = 40)]
internal struct SqRingOffsets
{
    [FieldOffset(0)] public uint Head;
    [FieldOffset(4)] public uint Tail;
    [FieldOffset(8)] public uint RingMask;
    [FieldOffset(12)] public uint RingEntries;
    [FieldOffset(16)] public uint Flags;
    [FieldOffset(20)] public uint Dropped;
    [FieldOffset(24)] public uint Array;
    [FieldOffset(28)] public uint Resv1;
    [FieldOffset(32)] public ulong UserAddr;
}

[StructLayout(LayoutKind.Explicit, Size = 40)]
internal struct CqRingOffsets
{
    [FieldOffset(0)] public uint Head;
    [FieldOffset(4)] public uint Tail;
    [FieldOffset(8)] public uint RingMask;
    [FieldOffset(12)] public uint RingEntries;
    [FieldOffset(16)] public uint Overflow;
    [FieldOffset(20)] public uint Cqes;
    [FieldOffset(24)] public uint Flags;
    [FieldOffset(28)] public uint Resv1;
    [FieldOffset(32)] public ulong UserAddr;
}

/// <summary>struct io_uring_params: in/out argument of io_uring_setup.</summary>
[StructLayout(LayoutKind.Explicit, Size = 120)]
internal struct IoUringParams
{
    [FieldOffset(0)] public uint SqEntries;
    [FieldOffset(4)] public uint CqEntries;
    [FieldOffset(8)] public SetupFlags Flags;
    [FieldOffset(12)] public uint SqThreadCpu;
    [FieldOffset(16)] public uint SqThreadIdle;
    [FieldOffset(20)] public RingFeatures Features;
    [FieldOffset(24)] public uint WqFd;
    [FieldOffset(40)] public SqRingOffsets SqOff;
    [FieldOffset(80)] public CqRingOffsets CqOff;
}

/// <summary>struct io_uring_sqe: one submission, 64 bytes. Unions are named by the meaning each writer uses.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct IoUringSqe
{
    [FieldOffset(0)] public Opcode Opcode;
    [FieldOffset(1)] public byte Flags;
    [FieldOffset(2)] public ushort IoPrio;
    [FieldOffset(4)] public int Fd;
    /// <summary>off / addr2.</summary>
    [FieldOffset(8)] public ulong Off;
    /// <summary>addr / splice_off_in.</summary>
    [FieldOffset(16)] public ulong Addr;
    [FieldOffset(24)] public uint Len;
    /// <summary>rw_flags, fsync_flags, timeout_flags, open_flags, statx_flags, cancel_flags, poll32_events…</summary>
    [FieldOffset(28)] public uint OpFlags;
    [FieldOffset(32)] public ulong UserData;
    [FieldOffset(40)] public ushort BufIndex;
    [FieldOffset(42)] public ushort Personality;
    [FieldOffset(44)] public int FileIndex;
    [FieldOffset(48)] public ulong Addr3;
    [FieldOffset(56)] public ulong Pad2;
}

/// <summary>struct io_uring_cqe: one completion, 16 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct IoUringCqe
{
    [FieldOffset(0)] public ulong UserData;
    /// <summary>The result: a byte count or fd when ≥ 0, a negated errno when &lt; 0.</summary>
    [FieldOffset(8)] public int Res;
    [FieldOffset(12)] public uint Flags;
}

/// <summary>struct __kernel_timespec.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct KernelTimespec
{
    [FieldOffset(0)] public long Sec;
    [FieldOffset(8)] public long Nsec;

    public static KernelTimespec FromNanoseconds(long ns) => new() { Sec = ns / 1_000_000_000, Nsec = ns % 1_000_000_000 };
}

/// <summary>struct io_uring_getevents_arg: io_uring_enter's argument with IORING_ENTER_EXT_ARG.</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct GetEventsArg
{
    [FieldOffset(0)] public ulong Sigmask;
    [FieldOffset(8)] public uint SigmaskSize;
    [FieldOffset(12)] public uint MinWaitUsec;
    /// <summary>Pointer to a KernelTimespec: the longest the call may wait.</summary>
    [FieldOffset(16)] public ulong Ts;
}

/// <summary>struct io_uring_probe header; followed by <see cref="ProbeOp"/> entries.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct ProbeHeader
{
    [FieldOffset(0)] public byte LastOp;
    [FieldOffset(1)] public byte OpsLen;
}

/// <summary>struct io_uring_probe_op.</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
internal struct ProbeOp
{
    [FieldOffset(0)] public byte Op;
    [FieldOffset(2)] public ushort Flags;
}

/// <summary>struct statx (the fields the shell reads), 256 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 256)]
internal struct Statx
{
    public const uint MaskType = 0x1, MaskSize = 0x200, MaskDioAlign = 0x2000;

    [FieldOffset(0)] public uint Mask;
    [FieldOffset(4)] public uint BlockSize;
    [FieldOffset(28)] public ushort Mode;
    [FieldOffset(32)] public ulong Inode;
    [FieldOffset(40)] public ulong Size;
    [FieldOffset(48)] public ulong Blocks;
    [FieldOffset(112)] public long MtimeSec;
    [FieldOffset(120)] public uint MtimeNsec;
    [FieldOffset(136)] public uint DevMajor;
    [FieldOffset(140)] public uint DevMinor;
    /// <summary>Required alignment of O_DIRECT buffers in memory (STATX_DIOALIGN, 6.1); 0 when not supported.</summary>
    [FieldOffset(152)] public uint DioMemAlign;
    /// <summary>Required alignment of O_DIRECT file offsets and lengths (STATX_DIOALIGN, 6.1); 0 when not supported.</summary>
    [FieldOffset(156)] public uint DioOffsetAlign;

    // The rest of what FileSystem.GetInfoAsync reports (STATX_BASIC_STATS | STATX_BTIME).
    public const uint MaskBasicStats = 0x7FF, MaskBtime = 0x800;
    [FieldOffset(16)] public uint LinkCount;
    [FieldOffset(20)] public uint Uid;
    [FieldOffset(24)] public uint Gid;
    [FieldOffset(64)] public long AtimeSec;
    [FieldOffset(72)] public uint AtimeNsec;
    [FieldOffset(80)] public long BtimeSec;
    [FieldOffset(88)] public uint BtimeNsec;
    [FieldOffset(96)] public long CtimeSec;
    [FieldOffset(104)] public uint CtimeNsec;
    [FieldOffset(128)] public uint RdevMajor;
    [FieldOffset(132)] public uint RdevMinor;
}

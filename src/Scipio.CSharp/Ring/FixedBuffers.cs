using Scipio.Interop;

namespace Scipio.Ring;

/// <summary>A shard's registered buffers: the blocks of its <see cref="IO.DmaBufferPool"/>, installed in a table of
/// buffers registered with its rings, so that <see cref="IO.DmaFile"/> sends their I/O as IORING_OP_READ_FIXED /
/// WRITE_FIXED. The kernel then uses the pages it pinned once, at registration, instead of pinning and unpinning
/// the buffer's pages for every O_DIRECT read and write.</summary>
/// <remarks>
/// <para><b>One table entry per pooled block.</b> At start every ring gets a sparse table of <see cref="TableSize"/>
/// empty entries (IORING_REGISTER_BUFFERS2 with IORING_RSRC_REGISTER_SPARSE). When the pool makes a new block it is
/// installed at a free index (IORING_REGISTER_BUFFERS_UPDATE) and keeps that index for its life: disposed and rented
/// again it costs no syscall; freed, its entry is emptied and the index serves the next block. The pool already
/// decides which blocks live and for how long, so this adds no allocator of its own (one big registered arena would
/// need one, carving blocks of every size class out of it) and pins only the memory the pool holds. Blocks too big
/// for the pool (over 4 MiB) are used once and freed: registering them would cost more syscalls than it saves.</para>
/// <para><b>Every ring, the same index.</b> An SQE is written once, buf_index included, before routing picks its
/// ring: the poll ring, the latency ring or the main ring, and the main ring again when the poll ring answers
/// EOPNOTSUPP. So a block is installed at the same index in all three tables, and any of them can take its I/O.
/// (IORING_REGISTER_CLONE_BUFFERS would pin the pages once rather than once per ring, but it copies a table as it is
/// at that moment: every new block would mean cloning again. Three small updates are simpler.) Where the kernel
/// charges pinned memory to RLIMIT_MEMLOCK (a process without CAP_IPC_LOCK), each ring's pin counts.</para>
/// <para><b>Failure costs nothing but the gain.</b> If the table cannot be registered (an old kernel, a seccomp
/// filter, the memlock limit), or is full, or the kernel refuses a block, that block is simply not registered and
/// its I/O goes out as plain READ / WRITE; <see cref="Failures"/> counts such blocks (<c>ShardStats</c> shows
/// them).</para>
/// <para>Shard thread only (the rings are SINGLE_ISSUER: io_uring_register from another thread fails with EEXIST),
/// except <see cref="ReturnFromElsewhere"/>: a buffer disposed on another thread comes back here to be pooled or
/// unregistered by its shard.</para>
/// </remarks>
internal sealed unsafe class FixedBuffers : IDisposable
{
    /// <summary>Entries of each ring's table, read when a shard starts; blocks beyond it go unregistered. 1024
    /// covers a pool that keeps 32 blocks of each of its 11 size classes and several hundred buffers in use (the
    /// kernel's table costs 8 bytes an entry per ring). Tests set 0, which the kernel refuses (EINVAL), to take the
    /// path of a shard whose registration failed, or a small size to fill the table.</summary>
    internal static int TableSize { get; set; } = 1024;

    /// <summary>Whether <see cref="IO.DmaFile"/> sends a registered buffer's I/O as READ_FIXED / WRITE_FIXED (the
    /// default); false sends it as plain READ / WRITE, the same buffers otherwise: the benchmark's A/B switch
    /// (<c>bench -- dma-read</c> runs both sides in one process).</summary>
    internal static bool UseForIo { get; set; } = true;

    private readonly Ring[] _rings;
    private readonly int[] _freeIndices; // a stack of unused table indices
    private int _free;
    private long _registrations, _failures, _fixedIo;
    private bool _disposed;

    // Blocks disposed on other threads, waiting for this shard (the only thread that may unregister them).
    private readonly object _gate = new();
    private List<AlignedMemory>? _returned;
    private volatile bool _anyReturned;

    /// <summary>Registers an empty table of <see cref="TableSize"/> entries with each of <paramref name="rings"/>;
    /// if any refuses, with none (<see cref="Available"/> false, <see cref="TableErrno"/> says why).</summary>
    public FixedBuffers(Ring[] rings)
    {
        _rings = rings;
        int size = TableSize;
        _freeIndices = new int[Math.Max(size, 0)];
        for (int i = 0; i < _freeIndices.Length; i++) _freeIndices[i] = _freeIndices.Length - 1 - i; // index 0 on top
        var table = new RsrcRegister { Nr = (uint)Math.Max(size, 0), Flags = FixedBufferAbi.RsrcRegisterSparse };
        for (int i = 0; i < rings.Length; i++)
        {
            if (Register(rings[i], FixedBufferAbi.RegisterBuffers2, &table, sizeof(RsrcRegister)) >= 0) continue;
            TableErrno = Libc.LastErrno;
            for (int j = 0; j < i; j++) Register(rings[j], FixedBufferAbi.UnregisterBuffers, null, 0);
            return;
        }
        _free = _freeIndices.Length;
        Available = true;
    }

    /// <summary>Whether every ring has the table; false when registration failed, and all I/O goes as plain
    /// READ / WRITE.</summary>
    public bool Available { get; }

    /// <summary>The errno with which a ring refused the table; 0 when none did.</summary>
    public int TableErrno { get; }

    /// <summary>Blocks installed now.</summary>
    public int Registered => _freeIndices.Length - _free;

    /// <summary>Blocks installed, ever: a block disposed and rented again is not installed again.</summary>
    public long Registrations => _registrations;

    /// <summary>Blocks the pool made that could not be registered (no table, a full table, or the kernel refused
    /// the block): their I/O goes as plain READ / WRITE.</summary>
    public long Failures => _failures;

    /// <summary>Reads and writes prepared as READ_FIXED / WRITE_FIXED.</summary>
    public long FixedIo => _fixedIo;

    /// <summary>Installs a new <paramref name="block"/> at a free index on every ring; false (counted) when it
    /// stays unregistered.</summary>
    public bool TryRegister(AlignedMemory block)
    {
        if (!Available || _disposed || _free == 0)
        {
            _failures++;
            return false;
        }
        int index = _freeIndices[--_free];
        var entry = new IoVec { Base = (ulong)block.Address, Length = (ulong)block.Capacity };
        for (int i = 0; i < _rings.Length; i++)
        {
            if (Update(_rings[i], index, &entry)) continue;
            var empty = default(IoVec);
            for (int j = 0; j < i; j++) Update(_rings[j], index, &empty);
            _freeIndices[_free++] = index;
            _failures++;
            return false;
        }
        block.FixedTable = this;
        block.FixedIndex = index;
        _registrations++;
        return true;
    }

    /// <summary>Empties <paramref name="block"/>'s entry on every ring and frees its index: the block is about to be
    /// freed. After the shard stopped (its rings are closed, and their tables with them) it only forgets the index.
    /// An I/O still using the entry keeps the pages pinned until it completes (the kernel holds a reference).</summary>
    public void Unregister(AlignedMemory block)
    {
        if (block.FixedTable != this) return;
        int index = block.FixedIndex;
        block.FixedTable = null;
        block.FixedIndex = -1;
        if (_disposed) return;
        var empty = default(IoVec);
        foreach (var ring in _rings) Update(ring, index, &empty);
        _freeIndices[_free++] = index;
    }

    /// <summary>The index to send <paramref name="block"/>'s I/O with on this shard's rings (counted as fixed I/O), or
    /// -1: the block is not registered here (a buffer from another shard, or one that could not be registered), or
    /// <see cref="UseForIo"/> is off.</summary>
    public int IndexFor(AlignedMemory block)
    {
        if (block.FixedTable != this || !UseForIo) return -1;
        _fixedIo++;
        return block.FixedIndex;
    }

    /// <summary>Any thread: takes back a block of this table that was disposed on another thread, for the shard to
    /// pool or unregister (<see cref="TakeReturned"/>); after the shard stopped, frees it at once.</summary>
    public void ReturnFromElsewhere(AlignedMemory block)
    {
        lock (_gate)
        {
            if (!_disposed)
            {
                (_returned ??= []).Add(block);
                _anyReturned = true;
                return;
            }
        }
        block.FixedTable = null; // the rings are closed: nothing left to unregister
        block.FixedIndex = -1;
        block.Free();
    }

    /// <summary>The blocks other threads gave back since the last call, or null (a volatile read when none).</summary>
    public List<AlignedMemory>? TakeReturned()
    {
        if (!_anyReturned) return null;
        lock (_gate)
        {
            var returned = _returned;
            _returned = null;
            _anyReturned = false;
            return returned;
        }
    }

    /// <summary>The shard has stopped and closed its rings: blocks given back from now on are freed by whoever gives
    /// them back, and those waiting are freed now.</summary>
    public void Dispose()
    {
        List<AlignedMemory>? returned;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            returned = _returned;
            _returned = null;
        }
        if (returned is null) return;
        foreach (var block in returned)
        {
            block.FixedTable = null;
            block.FixedIndex = -1;
            block.Free();
        }
    }

    private static bool Update(Ring ring, int index, IoVec* entry)
    {
        var update = new RsrcUpdate2 { Offset = (uint)index, Data = (ulong)entry, Nr = 1 };
        return Register(ring, FixedBufferAbi.RegisterBuffersUpdate, &update, sizeof(RsrcUpdate2)) == 1;
    }

    private static long Register(Ring ring, uint opcode, void* arg, int size) =>
        Libc.Syscall(Libc.SysIoUringRegister, ring.Fd, opcode, (long)arg, size, 0, 0);
}

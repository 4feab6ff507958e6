using System.Runtime.CompilerServices;
using Scipio.Interop;

namespace Scipio.Ring;

/// <summary>A provided-buffer ring (IORING_REGISTER_PBUF_RING, 5.19) on a shard's main ring: buffers the kernel picks
/// from when a receive arrives, so a connection that waits for data holds no buffer of its own — ten thousand idle
/// connections cost one multishot receive each and no memory. A receive CQE names the buffer it filled
/// (<see cref="IoUringConst.CqeFBuffer"/>); the reader copies the bytes out and gives the buffer back
/// (<see cref="Recycle"/>). When the ring runs dry a multishot receive ends with ENOBUFS and the data stays in the
/// socket: the reader falls back to a plain receive, nothing is lost. Shard thread only.</summary>
/// <remarks>Sizes: 512 buffers of 8 KiB (4 MiB per shard). A small ring keeps the buffers warm in cache (the kernel
/// takes them in FIFO order); 512 covers the connections that can have unread data at once in a busy server, and
/// past that the fallback, not a drop, takes over.</remarks>
internal sealed unsafe class ProvidedBufferRing : IDisposable
{
    public const int Entries = 512;
    public const int BufferSize = 8 << 10;
    /// <summary>The buffer group id the receives name: one group per main ring.</summary>
    public const ushort Group = 0;

    private readonly Ring _ring;
    private readonly AlignedMemory _entries = new(Entries * sizeof(ProvidedBufferEntry));
    private readonly AlignedMemory _buffers = new(Entries * BufferSize);
    private ushort _tail; // the ring's tail as this side knows it; the kernel reads the copy in entry 0
    private bool _registered;

    private ProvidedBufferRing(Ring ring) => _ring = ring;

    /// <summary>Registers a ring of <see cref="Entries"/> buffers with <paramref name="ring"/>, every buffer
    /// handed to the kernel; null when the kernel refuses (the caller then receives into its own memory).</summary>
    public static ProvidedBufferRing? TryCreate(Ring ring)
    {
        var created = new ProvidedBufferRing(ring);
        var registration = new BufferRingRegistration
        {
            RingAddress = (ulong)created._entries.Address,
            RingEntries = Entries,
            GroupId = Group,
        };
        if (Libc.Syscall(Libc.SysIoUringRegister, ring.Fd, IoUringConst.RegisterPbufRing, (long)&registration, 1, 0, 0) != 0)
        {
            created.Dispose();
            return null;
        }
        created._registered = true;
        for (int id = 0; id < Entries; id++) created.Recycle((ushort)id);
        return created;
    }

    /// <summary>The bytes of buffer <paramref name="id"/>.</summary>
    public ReadOnlySpan<byte> Bytes(ushort id, int length) => new((byte*)_buffers.Address + id * BufferSize, length);

    /// <summary>Gives buffer <paramref name="id"/> back to the kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Recycle(ushort id)
    {
        var entries = (ProvidedBufferEntry*)_entries.Address;
        ref var entry = ref entries[_tail & (Entries - 1)];
        entry.Address = (ulong)(_buffers.Address + id * BufferSize);
        entry.Length = BufferSize;
        entry.BufferId = id;
        _tail++;
        // The tail lives in entry 0's last field; the kernel reads it when it needs a buffer, after this store.
        Volatile.Write(ref entries[0].TailOrReserved, _tail);
    }

    /// <summary>The buffer id a CQE names, or -1 when it names none.</summary>
    public static int BufferOf(uint cqeFlags) =>
        (cqeFlags & IoUringConst.CqeFBuffer) != 0 ? (int)(cqeFlags >> IoUringConst.CqeBufferShift) : -1;

    /// <summary>Unregisters and frees the memory: call once the kernel is done with every receive (the shard has
    /// drained its rings) and before the ring closes.</summary>
    public void Dispose()
    {
        if (_registered)
        {
            var registration = new BufferRingRegistration { GroupId = Group };
            Libc.Syscall(Libc.SysIoUringRegister, _ring.Fd, IoUringConst.UnregisterPbufRing, (long)&registration, 1, 0, 0);
        }
        _registered = false;
        _entries.Free();
        _buffers.Free();
    }
}

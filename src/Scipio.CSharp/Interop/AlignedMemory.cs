using System.Buffers;
using System.Runtime.InteropServices;

namespace Scipio.Interop;

/// <summary>A block of native memory aligned for O_DIRECT I/O (page aligned), exposed as <see cref="Memory{T}"/>.
/// It never moves, so pinning it is free and the kernel may read or write it while an operation is in flight.</summary>
internal sealed unsafe class AlignedMemory : MemoryManager<byte>
{
    /// <summary>The alignment of every block: a page, which satisfies every device's DMA alignment.</summary>
    public const int PageSize = 4096;

    private byte* _pointer;

    public AlignedMemory(int capacity)
    {
        Capacity = capacity;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(capacity, 1), PageSize);
    }

    /// <summary>Bytes in the block.</summary>
    public int Capacity { get; }

    /// <summary>The block's address, for an SQE.</summary>
    public nint Address => (nint)_pointer;

    /// <summary>The shard table the block is registered in (its I/O can go as READ_FIXED / WRITE_FIXED there), or
    /// null. Set and cleared by that table, on its shard.</summary>
    public Ring.FixedBuffers? FixedTable;

    /// <summary>The block's index in <see cref="FixedTable"/>; -1 when it has none.</summary>
    public int FixedIndex = -1;

    public override Span<byte> GetSpan() => new(_pointer, Capacity);

    public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

    public override void Unpin() { }

    protected override void Dispose(bool disposing)
    {
        NativeMemory.AlignedFree(_pointer);
        _pointer = null;
    }

    /// <summary>Frees the block.</summary>
    public void Free() => ((IDisposable)this).Dispose();
}

using System.Buffers;
using Scipio.Interop;
using Scipio.Ring;

namespace Scipio.IO;

/// <summary>Memory for O_DIRECT I/O: page-aligned native memory that never moves, pooled per shard by size.
/// <see cref="DmaFile.AllocateBuffer"/> hands one out; <see cref="DmaFile.ReadAtAsync(long, int, CancellationToken)"/>
/// returns one holding exactly the bytes asked for. Dispose it to give it back.</summary>
/// <remarks>Using a buffer after <see cref="Dispose"/> throws <see cref="ObjectDisposedException"/>. A buffer given
/// to a read or write must not be disposed until that operation's await returns (the kernel uses it until then).
/// Disposed on its shard it goes back to that shard's pool; elsewhere its memory goes back to the shard it came
/// from, or is freed. A buffer from a shard's pool is registered with that shard's rings where the kernel allows
/// (<see cref="ShardStats.RegisteredBuffers"/>): its reads and writes on that shard go as IORING_OP_READ_FIXED /
/// WRITE_FIXED, which spares the kernel pinning its pages for every I/O.</remarks>
public sealed class DmaBuffer : IMemoryOwner<byte>
{
    private AlignedMemory? _block;
    private readonly int _start;

    internal DmaBuffer(AlignedMemory block, int start, int length)
    {
        _block = block;
        _start = start;
        Length = length;
    }

    /// <summary>The buffer's bytes.</summary>
    /// <exception cref="ObjectDisposedException">The buffer was disposed.</exception>
    public Memory<byte> Memory => Block.Memory.Slice(_start, Length);

    /// <summary>The buffer's bytes, as a span.</summary>
    /// <exception cref="ObjectDisposedException">The buffer was disposed.</exception>
    public Span<byte> Span => Block.GetSpan().Slice(_start, Length);

    /// <summary>The number of bytes.</summary>
    public int Length { get; }

    /// <summary>Where the bytes start, for an SQE: aligned when the buffer came from <see cref="DmaFile.AllocateBuffer"/>.</summary>
    internal nint Address => Block.Address + _start;

    /// <summary>The block the bytes lie in: its registration, if any, is the block's.</summary>
    internal AlignedMemory Block => _block ?? throw new ObjectDisposedException(nameof(DmaBuffer), "This DmaBuffer was disposed: its memory went back to the pool.");

    /// <summary>Gives the memory back (to the shard's pool, on its shard). Disposing twice does nothing.</summary>
    public void Dispose()
    {
        var block = _block;
        if (block is null) return;
        _block = null;
        DmaBufferPool.Return(block);
    }
}

/// <summary>A shard's pool of aligned blocks, one free list per power-of-two size from a page to 4 MiB; larger
/// blocks are not pooled. Per thread (a shard's), so it takes no lock. A block the pool makes on a shard is
/// registered with that shard's rings (<see cref="FixedBuffers"/>) and stays registered while pooled, so renting it
/// again costs no syscall; it is unregistered only when freed.</summary>
internal static class DmaBufferPool
{
    private const int MaxPooled = 4 << 20;
    private const int KeepPerClass = 32;

    [ThreadStatic] private static Stack<AlignedMemory>?[]? t_free;

    /// <summary>A block of at least <paramref name="capacity"/> bytes.</summary>
    public static AlignedMemory Rent(int capacity)
    {
        int size = SizeClass(capacity);
        if (size > MaxPooled) return new AlignedMemory(capacity); // used once: registering it would cost more than it saves
        var free = t_free?[System.Numerics.BitOperations.Log2((uint)size)];
        return free is { Count: > 0 } ? free.Pop() : RentNew(size);
    }

    /// <summary>The pool has no block of <paramref name="size"/>: one that another thread gave back, else a new one,
    /// registered with the shard's rings where it can be.</summary>
    private static AlignedMemory RentNew(int size)
    {
        var table = CurrentTable;
        if (table?.TakeReturned() is { } returned)
        {
            foreach (var block in returned) Return(block);
            if (t_free?[System.Numerics.BitOperations.Log2((uint)size)] is { Count: > 0 } free) return free.Pop();
        }
        var made = new AlignedMemory(size);
        table?.TryRegister(made);
        return made;
    }

    public static void Return(AlignedMemory block)
    {
        var shard = Runtime.ShardExecutor.Current;
        var table = shard?.Backend.FixedBuffers;
        if (block.FixedTable is { } owner && owner != table)
        {
            // Registered with another shard's rings (or this thread is no shard): only that shard may unregister it,
            // and only there is its index good for I/O.
            owner.ReturnFromElsewhere(block);
            return;
        }
        int size = block.Capacity;
        if (size > MaxPooled || !System.Numerics.BitOperations.IsPow2(size) || shard is null)
        {
            Free(block);
            return;
        }
        var free = (t_free ??= new Stack<AlignedMemory>?[32])[System.Numerics.BitOperations.Log2((uint)size)] ??= new Stack<AlignedMemory>();
        if (free.Count < KeepPerClass) free.Push(block);
        else Free(block);
    }

    /// <summary>Frees the calling shard's pooled blocks (the shard is stopping: its thread's pool would leak them).
    /// Its rings are closed by now, and their registrations with them.</summary>
    public static void ReleaseAll()
    {
        if (t_free is not { } classes) return;
        foreach (var free in classes)
            while (free is { Count: > 0 }) Free(free.Pop());
        t_free = null;
    }

    /// <summary>The calling shard's table of registered buffers, or null off a shard.</summary>
    private static FixedBuffers? CurrentTable => Runtime.ShardExecutor.Current?.Backend.FixedBuffers;

    private static void Free(AlignedMemory block)
    {
        block.FixedTable?.Unregister(block);
        block.Free();
    }

    private static int SizeClass(int capacity) =>
        capacity <= AlignedMemory.PageSize ? AlignedMemory.PageSize : (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)capacity);
}

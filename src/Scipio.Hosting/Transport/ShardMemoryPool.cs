using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Scipio.Hosting.Transport;

/// <summary>The blocks a shard's connections buffer in: 4 KiB each, on the pinned-object heap (a send pins its memory
/// for the kernel, and a block made pinned costs nothing to pin), kept for reuse. Renting and returning on the shard
/// take a plain stack, no atomics; other threads (a handler that left the shard, HTTP/2 streams on the ThreadPool)
/// go through a concurrent queue that the shard drains when its stack runs dry.</summary>
internal sealed class ShardMemoryPool : MemoryPool<byte>
{
    /// <summary>The block size: Kestrel's own, so its parsers and writers see the segments they are tuned for.</summary>
    public const int BlockSize = 4096;

    /// <summary>How many free blocks the shard keeps; more are dropped to the GC when given back.</summary>
    private const int KeepOnShard = 4096;

    private readonly int _ownerThread;
    private readonly Stack<Block> _free = new();
    private readonly ConcurrentQueue<Block> _returned = new();
    private bool _disposed;

    /// <summary>A pool owned by the calling thread (the shard's).</summary>
    public ShardMemoryPool() => _ownerThread = Environment.CurrentManagedThreadId;

    /// <inheritdoc/>
    public override int MaxBufferSize => BlockSize;

    /// <inheritdoc/>
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        if (minBufferSize > BlockSize)
            throw new ArgumentOutOfRangeException(nameof(minBufferSize), minBufferSize, $"This pool's blocks are {BlockSize} bytes.");
        if (Environment.CurrentManagedThreadId == _ownerThread)
        {
            if (_free.TryPop(out var block)) return block;
            if (_returned.TryDequeue(out block)) return block;
        }
        else if (_returned.TryDequeue(out var block)) return block;
        return new Block(this);
    }

    private void Return(Block block)
    {
        if (_disposed) return;
        if (Environment.CurrentManagedThreadId != _ownerThread) _returned.Enqueue(block);
        else if (_free.Count < KeepOnShard) _free.Push(block);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing) => _disposed = true; // blocks still out go to the GC when returned

    /// <summary>One block: owned by whoever rented it until disposed, which gives it back.</summary>
    private sealed class Block(ShardMemoryPool pool) : IMemoryOwner<byte>
    {
        // Made pinned, so Memory.Pin() (a send) takes no GC handle: CreateFromPinnedArray marks it as such.
        public Memory<byte> Memory { get; } = MemoryMarshal.CreateFromPinnedArray(GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true), 0, BlockSize);

        public void Dispose() => pool.Return(this);
    }
}

using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Scipio.Runtime;

/// <summary>A bounded single-producer single-consumer ring: one thread enqueues, one thread dequeues, with no locks
/// and no interlocked instructions — the producer publishes its tail with a release store, the consumer its head,
/// and each reads the other's with an acquire load. Used between shards (SharedChannel, cross-shard calls: one ring
/// per ordered pair of shards).</summary>
/// <remarks>
/// <para>The producer's index and the consumer's index live on separate cache lines (128 bytes apart, so the
/// adjacent-line prefetcher does not pair them either), each beside that side's cached copy of the other's index:
/// the producer reads the consumer's head only when its cached copy says the ring is full, the consumer reads the
/// producer's tail only when its copy says the ring is empty. In a stream, that is one cross-core read per
/// "lap" rather than one per item.</para>
/// <para>Who may call what: <see cref="TryEnqueue"/> from the producer thread only; <see cref="TryDequeue(out T)"/>,
/// <see cref="TryDequeue(Span{T})"/> and <see cref="TryPeek"/> from the consumer thread only (one of each at a time;
/// which thread that is may change if the hand-over is itself synchronized). <see cref="Count"/> and
/// <see cref="IsEmpty"/> from anywhere: exact on either side's own thread in the direction that side controls,
/// a snapshot elsewhere.</para>
/// <para>Dequeued slots are cleared, so the ring never keeps a dequeued reference alive.</para>
/// </remarks>
internal sealed class SpscRing<T>
{
    private readonly T[] _items;
    private readonly long _mask;
    private SpscIndices _indices;

    /// <summary>A ring of <paramref name="capacity"/> slots, rounded up to a power of two.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The capacity is less than 1 or more than 2^30.</exception>
    public SpscRing(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, 1 << 30);
        int size = (int)BitOperations.RoundUpToPowerOf2((uint)capacity);
        _items = new T[size];
        _mask = size - 1;
    }

    /// <summary>The number of slots (a power of two).</summary>
    public int Capacity => _items.Length;

    /// <summary>Items in the ring: tail minus head, read in that order (a snapshot off the two sides' threads).</summary>
    public int Count
    {
        get
        {
            long head = Volatile.Read(ref _indices.Head);
            long tail = Volatile.Read(ref _indices.Tail);
            return (int)Math.Clamp(tail - head, 0, _items.Length);
        }
    }

    /// <summary>No item is in the ring (a snapshot off the two sides' threads).</summary>
    public bool IsEmpty => Volatile.Read(ref _indices.Head) == Volatile.Read(ref _indices.Tail);

    /// <summary>Producer only: appends <paramref name="item"/>, or returns false when the ring is full.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryEnqueue(T item)
    {
        long tail = _indices.Tail; // our own index: a plain read
        if (tail - _indices.HeadCache >= _items.Length)
        {
            _indices.HeadCache = Volatile.Read(ref _indices.Head); // acquire: the consumer is done with those slots
            if (tail - _indices.HeadCache >= _items.Length) return false;
        }
        _items[tail & _mask] = item;
        Volatile.Write(ref _indices.Tail, tail + 1); // release: the item is visible before the new tail
        return true;
    }

    /// <summary>Producer only: whether <see cref="TryEnqueue"/> would succeed now (it reads the consumer's head only
    /// when the cached copy says full).</summary>
    public bool HasSpace()
    {
        long tail = _indices.Tail;
        if (tail - _indices.HeadCache < _items.Length) return true;
        _indices.HeadCache = Volatile.Read(ref _indices.Head);
        return tail - _indices.HeadCache < _items.Length;
    }

    /// <summary>Consumer only: takes the oldest item, or returns false when the ring is empty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryDequeue(out T item)
    {
        long head = _indices.Head;
        if (head >= _indices.TailCache)
        {
            _indices.TailCache = Volatile.Read(ref _indices.Tail); // acquire: the items up to it are written
            if (head >= _indices.TailCache)
            {
                item = default!;
                return false;
            }
        }
        ref T slot = ref _items[head & _mask];
        item = slot;
        slot = default!; // let the GC have it
        Volatile.Write(ref _indices.Head, head + 1); // release: the slot is free for the producer
        return true;
    }

    /// <summary>Consumer only: takes up to <paramref name="destination"/>'s length of the oldest items in order and
    /// returns how many; the head is published once for the whole batch.</summary>
    public int TryDequeue(Span<T> destination)
    {
        long head = _indices.Head;
        long available = _indices.TailCache - head;
        if (available < destination.Length)
        {
            _indices.TailCache = Volatile.Read(ref _indices.Tail);
            available = _indices.TailCache - head;
        }
        int n = (int)Math.Min(available, destination.Length);
        if (n <= 0) return 0;
        for (int i = 0; i < n; i++)
        {
            ref T slot = ref _items[(head + i) & _mask];
            destination[i] = slot;
            slot = default!;
        }
        Volatile.Write(ref _indices.Head, head + n);
        return n;
    }

    /// <summary>Consumer only: the oldest item without taking it, or false when the ring is empty.</summary>
    public bool TryPeek(out T item)
    {
        long head = _indices.Head;
        if (head >= _indices.TailCache)
        {
            _indices.TailCache = Volatile.Read(ref _indices.Tail);
            if (head >= _indices.TailCache)
            {
                item = default!;
                return false;
            }
        }
        item = _items[head & _mask];
        return true;
    }
}

/// <summary>The producer's and the consumer's indices, each beside its cached copy of the other's, on lines of
/// their own.</summary>
[StructLayout(LayoutKind.Explicit, Size = 3 * Line)]
internal struct SpscIndices
{
    private const int Line = 128;

    /// <summary>Next slot the producer writes; written by the producer only (release).</summary>
    [FieldOffset(Line)] public long Tail;

    /// <summary>The producer's last read of <see cref="Head"/>.</summary>
    [FieldOffset(Line + 8)] public long HeadCache;

    /// <summary>Next slot the consumer reads; written by the consumer only (release).</summary>
    [FieldOffset(2 * Line)] public long Head;

    /// <summary>The consumer's last read of <see cref="Tail"/>.</summary>
    [FieldOffset(2 * Line + 8)] public long TailCache;
}

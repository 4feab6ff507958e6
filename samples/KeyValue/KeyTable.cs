using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Scipio.Samples.KeyValue;

/// <summary>One shard's keys: a hash table keyed by bytes, looked up with a span (no key object per lookup), and the
/// deadlines of the keys that expire. Only its shard touches it, so it takes no lock.</summary>
/// <remarks>
/// <para>Separate chaining over a dense entry array, as System.Collections.Generic.Dictionary does: an entry keeps
/// its index while it lives, which is what the expiry heap refers to. The table doubles when every entry is in use.</para>
/// <para>An entry's key and value share one byte[] (the key, then the value), so a GET follows one reference from the
/// entry, and the value usually sits in the cache line after the key it was found by. An overwrite of about the same
/// size reuses the array, so a steady stream of SETs of same-sized values (a cache's, a benchmark's) allocates
/// nothing; a new key allocates one array.</para>
/// <para>Expiry: a deadline per entry (monotonic milliseconds; 0 = none), checked when the key is read (a key past
/// its deadline is never seen), and a min-heap of deadlines that <see cref="ExpireDue"/> drains from the shard's
/// timer, so keys nobody reads again go too. Heap items carry the entry's version: one whose entry was freed or whose
/// deadline changed since is skipped.</para>
/// </remarks>
internal sealed class KeyTable
{
    private const int InitialCapacity = 1024;

    private struct Entry
    {
        public ulong Hash;
        public int Next;        // next entry in the bucket's chain; -1 ends it. Free entries: the next free one.
        public int Version;     // bumped when the entry is freed or its deadline changes: stale heap items skip it
        public byte[]? Data;    // the key, then the value (and room to spare); null: free
        public int KeyLength;
        public int ValueLength;
        public long ExpiresAt;  // monotonic ms; 0: never
    }

    private struct Deadline
    {
        public long At;
        public int Entry;
        public int Version;
    }

    private int[] _buckets = null!;       // entry index + 1; 0: empty
    private Entry[] _entries = null!;
    private int _used;                    // entries ever handed out (the dense prefix)
    private int _free = -1, _freeCount;
    private Deadline[] _heap = new Deadline[16];
    private int _heapCount;

    public KeyTable() => Reset(InitialCapacity);

    /// <summary>Live keys (keys past their deadline that no read or sweep has removed yet count too, as in Redis).</summary>
    public int Count => _used - _freeCount;

    /// <summary>Keys with a deadline.</summary>
    public int Expiring { get; private set; }

    /// <summary>Keys removed because their deadline passed (on a read or by the sweep).</summary>
    public long Expired { get; private set; }

    /// <summary>Whether any deadline is pending in the heap (the shard's expiry timer needs to run).</summary>
    public bool HasDeadlines => _heapCount > 0;

    /// <summary>Monotonic milliseconds: the clock of every deadline.</summary>
    public static long NowMs => (long)(Stopwatch.GetTimestamp() * s_msPerTick);

    private static readonly double s_msPerTick = 1000.0 / Stopwatch.Frequency;

    private void Reset(int capacity)
    {
        _buckets = new int[capacity];
        _entries = new Entry[capacity];
        _used = 0;
        _free = -1;
        _freeCount = 0;
        _heapCount = 0;
        if (_heap.Length > 1024) _heap = new Deadline[16];
        Expiring = 0;
    }

    /// <summary>Removes every key.</summary>
    public void Clear() => Reset(InitialCapacity);

    /// <summary>The live entry of <paramref name="key"/>, or -1. A key past its deadline is removed here.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(ReadOnlySpan<byte> key, ulong hash)
    {
        var entries = _entries;
        int i = _buckets[(int)hash & (_buckets.Length - 1)] - 1;
        while ((uint)i < (uint)entries.Length)
        {
            ref Entry e = ref entries[i];
            if (e.Hash == hash && e.KeyLength == key.Length && key.SequenceEqual(e.Data.AsSpan(0, e.KeyLength)))
            {
                if (e.ExpiresAt != 0 && e.ExpiresAt <= NowMs)
                {
                    Remove(i);
                    Expired++;
                    return -1;
                }
                return i;
            }
            i = e.Next;
        }
        return -1;
    }

    /// <summary>A new entry for <paramref name="key"/>, which must not be in the table, holding
    /// <paramref name="value"/> (with <paramref name="slack"/> bytes to spare), without a deadline.</summary>
    public int Add(ReadOnlySpan<byte> key, ulong hash, ReadOnlySpan<byte> value, int slack = 0)
    {
        int index;
        if (_freeCount > 0)
        {
            index = _free;
            _free = _entries[index].Next;
            _freeCount--;
        }
        else
        {
            if (_used == _entries.Length) Grow();
            index = _used++;
        }
        ref int bucket = ref _buckets[(int)hash & (_buckets.Length - 1)];
        ref Entry e = ref _entries[index];
        e.Hash = hash;
        var data = new byte[key.Length + value.Length + slack];
        key.CopyTo(data);
        value.CopyTo(data.AsSpan(key.Length));
        e.Data = data;
        e.KeyLength = key.Length;
        e.ValueLength = value.Length;
        e.ExpiresAt = 0;
        e.Next = bucket - 1;
        bucket = index + 1;
        return index;
    }

    private void Grow()
    {
        int size = _entries.Length * 2;
        Array.Resize(ref _entries, size);
        _buckets = new int[size];
        for (int i = 0; i < _used; i++)
        {
            ref Entry e = ref _entries[i];
            if (e.Data is null) continue; // free: stays on the free list, which is threaded through Next
            ref int bucket = ref _buckets[(int)e.Hash & (size - 1)];
            e.Next = bucket - 1;
            bucket = i + 1;
        }
    }

    /// <summary>Removes the entry at <paramref name="index"/>.</summary>
    public void Remove(int index)
    {
        ref Entry e = ref _entries[index];
        ref int bucket = ref _buckets[(int)e.Hash & (_buckets.Length - 1)];
        if (bucket - 1 == index) bucket = e.Next + 1;
        else
        {
            int i = bucket - 1;
            while (_entries[i].Next != index) i = _entries[i].Next;
            _entries[i].Next = e.Next;
        }
        if (e.ExpiresAt != 0) Expiring--;
        e.Data = null;
        e.KeyLength = 0;
        e.ValueLength = 0;
        e.ExpiresAt = 0;
        e.Version++;
        e.Next = _free;
        _free = index;
        _freeCount++;
    }

    public ReadOnlySpan<byte> Value(int index)
    {
        ref Entry e = ref _entries[index];
        return e.Data.AsSpan(e.KeyLength, e.ValueLength);
    }

    /// <summary>Stores <paramref name="value"/>, in the entry's array when it has room and not much more than needed;
    /// else in a new one, with <paramref name="slack"/> bytes to spare (for values that grow, as counters do).</summary>
    public void SetValue(int index, ReadOnlySpan<byte> value, int slack = 0)
    {
        ref Entry e = ref _entries[index];
        var data = e.Data!;
        int room = data.Length - e.KeyLength;
        if (room < value.Length || room > 2 * value.Length + 64)
        {
            var bigger = new byte[e.KeyLength + value.Length + slack];
            data.AsSpan(0, e.KeyLength).CopyTo(bigger);
            e.Data = data = bigger;
        }
        value.CopyTo(data.AsSpan(e.KeyLength));
        e.ValueLength = value.Length;
    }

    public long ExpiresAt(int index) => _entries[index].ExpiresAt;

    /// <summary>Sets (or, with 0, clears) the entry's deadline.</summary>
    public void SetExpiry(int index, long deadlineMs)
    {
        ref Entry e = ref _entries[index];
        if (e.ExpiresAt == deadlineMs) return;
        if (e.ExpiresAt == 0) Expiring++;
        else if (deadlineMs == 0) Expiring--;
        e.ExpiresAt = deadlineMs;
        e.Version++;
        if (deadlineMs != 0) Push(new Deadline { At = deadlineMs, Entry = index, Version = e.Version });
    }

    /// <summary>Removes keys whose deadline is at or before <paramref name="nowMs"/>, at most
    /// <paramref name="budget"/> of them; returns how many it removed.</summary>
    public int ExpireDue(long nowMs, int budget)
    {
        int removed = 0;
        while (_heapCount > 0 && _heap[0].At <= nowMs && removed < budget)
        {
            var top = Pop();
            ref Entry e = ref _entries[top.Entry];
            if (e.Version != top.Version || e.Data is null) continue; // freed or given another deadline since
            Remove(top.Entry);
            Expired++;
            removed++;
        }
        // Deadlines that were replaced or whose keys were deleted stay in the heap until due: rebuild it when they
        // outnumber the live ones, so a client that keeps renewing TTLs cannot grow it without bound.
        if (_heapCount > 2 * Expiring + 4096) RebuildHeap();
        return removed;
    }

    private void RebuildHeap()
    {
        _heapCount = 0;
        for (int i = 0; i < _used; i++)
        {
            ref Entry e = ref _entries[i];
            if (e.Data is not null && e.ExpiresAt != 0) Push(new Deadline { At = e.ExpiresAt, Entry = i, Version = e.Version });
        }
    }

    private void Push(Deadline d)
    {
        if (_heapCount == _heap.Length) Array.Resize(ref _heap, _heap.Length * 2);
        int i = _heapCount++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (_heap[parent].At <= d.At) break;
            _heap[i] = _heap[parent];
            i = parent;
        }
        _heap[i] = d;
    }

    private Deadline Pop()
    {
        var top = _heap[0];
        var last = _heap[--_heapCount];
        int i = 0;
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= _heapCount) break;
            if (child + 1 < _heapCount && _heap[child + 1].At < _heap[child].At) child++;
            if (last.At <= _heap[child].At) break;
            _heap[i] = _heap[child];
            i = child;
        }
        if (_heapCount > 0) _heap[i] = last;
        return top;
    }
}

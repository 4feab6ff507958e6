namespace Scipio.Runtime;

/// <summary>A table of pooled objects indexed by a dense slot number (the slot part of an operation's user_data, a
/// timer's id in the heap). Free slots are reused lowest-last; <see cref="Compact"/> gives back the array's empty
/// tail after a peak. Shard thread only.</summary>
internal sealed class SlotTable<T> where T : class
{
    private T?[] _items = new T?[16];
    private readonly Stack<int> _free = new();
    private int _end; // slots ever handed out below this index

    /// <summary>Slots in use (their objects may be pooled, not rented).</summary>
    public int Count => _end - _free.Count;

    /// <summary>The array's length: what the table holds on to.</summary>
    public int Capacity => _items.Length;

    /// <summary>The object in <paramref name="slot"/>, or null for a slot out of range or free.</summary>
    public T? this[int slot] => (uint)slot < (uint)_end ? _items[slot] : null;

    /// <summary>Gives <paramref name="item"/> a slot; returns it.</summary>
    public int Add(T item)
    {
        int slot;
        if (_free.Count > 0) slot = _free.Pop();
        else
        {
            if (_end == _items.Length) Array.Resize(ref _items, _items.Length * 2);
            slot = _end++;
        }
        _items[slot] = item;
        return slot;
    }

    /// <summary>Frees <paramref name="slot"/>: its object is dropped.</summary>
    public void Remove(int slot)
    {
        _items[slot] = null;
        _free.Push(slot);
    }

    /// <summary>Shrinks the array to its highest used slot (at least 16), forgetting the free slots above it.</summary>
    public void Compact()
    {
        int end = _end;
        while (end > 0 && _items[end - 1] is null) end--;
        if (end == _end && _items.Length <= 4 * Math.Max(16, end)) return;
        var kept = new Stack<int>();
        foreach (int slot in _free)
            if (slot < end) kept.Push(slot);
        _free.Clear();
        foreach (int slot in kept) _free.Push(slot);
        _end = end;
        int length = 16;
        while (length < end) length *= 2;
        if (length < _items.Length) Array.Resize(ref _items, length);
    }
}

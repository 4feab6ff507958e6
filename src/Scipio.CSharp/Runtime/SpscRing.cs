namespace Scipio.Runtime;

/// <summary>Temporary single-producer single-consumer ring (replaced by the channels' SpscRing).</summary>
internal sealed class SpscRing<T>(int capacity)
{
    private readonly T[] _items = new T[capacity];
    private long _head, _tail;

    public bool IsEmpty => Volatile.Read(ref _tail) == Volatile.Read(ref _head);

    public bool TryEnqueue(T item)
    {
        long tail = _tail;
        if (tail - Volatile.Read(ref _head) >= _items.Length) return false;
        _items[tail % _items.Length] = item;
        Volatile.Write(ref _tail, tail + 1);
        return true;
    }

    public bool TryDequeue(out T item)
    {
        long head = _head;
        if (head == Volatile.Read(ref _tail))
        {
            item = default!;
            return false;
        }
        item = _items[head % _items.Length];
        _items[head % _items.Length] = default!;
        Volatile.Write(ref _head, head + 1);
        return true;
    }
}

using System.Diagnostics;

namespace Scipio.Sync;

/// <summary>The FIFO of a primitive's waiters: an intrusive doubly-linked list through the pooled
/// <see cref="LocalWaiter"/> nodes, so that arriving, being served and leaving on cancellation are O(1) and
/// allocate nothing. Shard-local: no locks, no atomics. A mutable struct: keep it in a field, never copy it.</summary>
internal struct WaiterQueue
{
    private LocalWaiter? _head, _tail;

    public readonly bool IsEmpty => _head is null;

    public readonly LocalWaiter? First => _head;

    public void Enqueue(LocalWaiter waiter)
    {
        Debug.Assert(waiter.Next is null && waiter.Previous is null);
        waiter.Previous = _tail;
        if (_tail is null) _head = waiter;
        else _tail.Next = waiter;
        _tail = waiter;
    }

    public LocalWaiter Dequeue()
    {
        var waiter = _head!;
        Remove(waiter);
        return waiter;
    }

    public void Remove(LocalWaiter waiter)
    {
        if (waiter.Previous is null) _head = waiter.Next;
        else waiter.Previous.Next = waiter.Next;
        if (waiter.Next is null) _tail = waiter.Previous;
        else waiter.Next.Previous = waiter.Previous;
        waiter.Next = null;
        waiter.Previous = null;
    }
}

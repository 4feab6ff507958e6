using System.Runtime.CompilerServices;

namespace Scipio.Runtime;

/// <summary>A work item that runs itself (spawned work); continuations are plain delegates instead.</summary>
internal interface IShardWorkItem
{
    void Execute();

    /// <summary>What it will run, for a stall report (read before <see cref="Execute"/>): the user's delegate, or itself.</summary>
    object Subject => this;
}

/// <summary>One unit of work on a task queue: a callback and its state. The callback is an
/// <c>Action&lt;object?&gt;</c> (IValueTaskSource continuation), a <see cref="SendOrPostCallback"/>
/// (SynchronizationContext.Post), an <see cref="Action"/> (awaiter continuation) or an
/// <see cref="IShardWorkItem"/>.</summary>
internal readonly struct WorkItem(object callback, object? state)
{
    public readonly object Callback = callback;
    public readonly object? State = state;

    /// <summary>What to name in a stall report, read before the item runs: the spawned function, or the
    /// continuation's state (an async method's box) with the callback to fall back on.</summary>
    public (object? First, object Second) Subject => Callback is IShardWorkItem work ? (work.Subject, Callback) : (State, Callback);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Run()
    {
        switch (Callback)
        {
            case Action<object?> a: a(State); break;
            case Action a: a(); break;
            case SendOrPostCallback s: s(State); break;
            default: ((IShardWorkItem)Callback).Execute(); break;
        }
    }
}

/// <summary>A FIFO of work items for one task queue. Shard-local: no locks, no atomics. Grows by doubling and never
/// shrinks, so steady state allocates nothing.</summary>
internal sealed class WorkQueue
{
    private WorkItem[] _items = new WorkItem[64];
    private int _head, _count;

    public int Count => _count;

    public void Enqueue(in WorkItem item)
    {
        if (_count == _items.Length) Grow();
        _items[(_head + _count) & (_items.Length - 1)] = item;
        _count++;
    }

    public bool TryDequeue(out WorkItem item)
    {
        if (_count == 0)
        {
            item = default;
            return false;
        }
        item = _items[_head];
        _items[_head] = default; // let the GC have the continuation once run
        _head = (_head + 1) & (_items.Length - 1);
        _count--;
        return true;
    }

    private void Grow()
    {
        var bigger = new WorkItem[_items.Length * 2];
        for (int i = 0; i < _count; i++) bigger[i] = _items[(_head + i) & (_items.Length - 1)];
        _items = bigger;
        _head = 0;
    }
}

using Scipio.Runtime;

namespace Scipio.Ring;

/// <summary>The shard's operations: one slot table that maps a CQE's user_data back to its operation (slot and
/// version, <see cref="UserData"/>), and a free list per kind. Pools grow to their peak; <see cref="Trim"/>, called
/// when the shard goes idle, drops what a peak left behind. Shard thread only.</summary>
internal sealed class OperationTable(ShardExecutor owner)
{
    private const int KeepPerKind = 64;
    private readonly SlotTable<IoOperation> _slots = new();
    private readonly Stack<ReadWriteOperation> _readWrite = new();
    private readonly Stack<PathOperation> _path = new();
    private readonly Stack<CancelOperation> _cancel = new();
    private readonly Stack<MultishotOperation> _multishot = new();
    private readonly Stack<SocketOperation> _socket = new();

    /// <summary>Operations with a slot: rented or pooled.</summary>
    public int Count => _slots.Count;

    /// <summary>Operations waiting in the free lists.</summary>
    public int Pooled => _readWrite.Count + _path.Count + _cancel.Count + _multishot.Count + _socket.Count;

    public ReadWriteOperation RentReadWrite() => _readWrite.TryPop(out var op) ? op : Add(new ReadWriteOperation(owner, this));

    public PathOperation RentPath() => _path.TryPop(out var op) ? op : Add(new PathOperation(owner, this));

    public CancelOperation RentCancel() => _cancel.TryPop(out var op) ? op : Add(new CancelOperation(owner, this));

    public MultishotOperation RentMultishot() => _multishot.TryPop(out var op) ? op : Add(new MultishotOperation(owner, this));

    public SocketOperation RentSocket() => _socket.TryPop(out var op) ? op : Add(new SocketOperation(owner, this));

    private T Add<T>(T op) where T : IoOperation
    {
        op.Slot = _slots.Add(op);
        return op;
    }

    /// <summary>An operation's use is over: back to its kind's free list (each kind calls its own).</summary>
    public void Return(ReadWriteOperation op) => _readWrite.Push(op);

    public void Return(PathOperation op) => _path.Push(op);

    public void Return(CancelOperation op) => _cancel.Push(op);

    public void Return(MultishotOperation op) => _multishot.Push(op);

    public void Return(SocketOperation op) => _socket.Push(op);

    /// <summary>The operation a CQE's user_data names, or null when that use is over (a stale CQE).</summary>
    public IoOperation? Find(ulong userData)
    {
        var op = _slots[UserData.Slot(userData)];
        return op is not null && op.Version == UserData.Version(userData) ? op : null;
    }

    /// <summary>Every operation with a slot (shutdown).</summary>
    public IEnumerable<IoOperation> All()
    {
        for (int slot = 0; slot < _slots.Capacity; slot++)
            if (_slots[slot] is { } op) yield return op;
    }

    /// <summary>Drops pooled operations beyond a few per kind (and their native scratch) and gives back the slot
    /// table's empty tail. Cheap when there is nothing to drop.</summary>
    public void Trim()
    {
        if (Pooled <= 4 * KeepPerKind) return;
        Drop(_readWrite);
        Drop(_path);
        Drop(_cancel);
        Drop(_multishot);
        Drop(_socket);
        _slots.Compact();
    }

    private void Drop<T>(Stack<T> free) where T : IoOperation
    {
        while (free.Count > KeepPerKind)
        {
            var op = free.Pop();
            _slots.Remove(op.Slot);
            op.FreeScratch();
        }
    }

    /// <summary>Frees every operation's native scratch (the shard is closing).</summary>
    public void FreeAll()
    {
        foreach (var op in All()) op.FreeScratch();
    }
}

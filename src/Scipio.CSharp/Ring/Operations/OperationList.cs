namespace Scipio.Ring;

/// <summary>A FIFO of operations linked through their own <see cref="IoOperation.BacklogPrevious"/> /
/// <see cref="IoOperation.BacklogNext"/>: append, take the first, or remove any in O(1), allocating nothing. An
/// operation is in one such list at a time (a ring's backlog, or a disk scheduler queue). A mutable struct: keep it in
/// a field and call it there.</summary>
internal struct OperationList
{
    public IoOperation? Head { get; private set; }
    private IoOperation? _tail;

    public int Count { get; private set; }

    public void Append(IoOperation op)
    {
        op.BacklogPrevious = _tail;
        op.BacklogNext = null;
        if (_tail is null) Head = op;
        else _tail.BacklogNext = op;
        _tail = op;
        Count++;
    }

    public void Remove(IoOperation op)
    {
        if (op.BacklogPrevious is null) Head = op.BacklogNext;
        else op.BacklogPrevious.BacklogNext = op.BacklogNext;
        if (op.BacklogNext is null) _tail = op.BacklogPrevious;
        else op.BacklogNext.BacklogPrevious = op.BacklogPrevious;
        op.BacklogPrevious = op.BacklogNext = null;
        Count--;
    }

    /// <summary>Removes and returns the first operation; the list must not be empty.</summary>
    public IoOperation TakeFirst()
    {
        var op = Head!;
        Remove(op);
        return op;
    }

    /// <summary>Forgets every operation (their links are left as they are: they belong to nobody now).</summary>
    public void Clear()
    {
        Head = _tail = null;
        Count = 0;
    }
}

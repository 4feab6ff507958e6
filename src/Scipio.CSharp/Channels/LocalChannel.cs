using System.Threading.Channels;
using Scipio.Runtime;

namespace Scipio.Channels;

/// <summary>Channels for work on one shard: a <see cref="Channel{T}"/> whose reader and writer are both used on
/// the shard that created it. No locks, no atomics; waits are pooled, so steady-state traffic allocates nothing.</summary>
/// <remarks>
/// <para>Shard binding: the channel belongs to the shard that created it. Every member of its reader and writer
/// (other than <see cref="ChannelReader{T}.Completion"/>) throws <see cref="InvalidOperationException"/> when called
/// from another shard or a thread that is not a shard. Any number of tasks on the shard may read and write.</para>
/// <para>Wake semantics: a write hands its item straight to the oldest pending ReadAsync, or buffers it and wakes
/// every pending WaitToReadAsync; a read makes room for the oldest pending WriteAsync. A woken await resumes on the
/// shard in the task queue it was awaited in, queued behind that queue's work (never inline in the writer's
/// call). ReadAllAsync, ReadAsync and WriteAsync never leave the shard (unlike the base classes' defaults, which
/// use ConfigureAwait(false)).</para>
/// </remarks>
public static class LocalChannel
{
    /// <summary>A channel that holds at most <paramref name="capacity"/> items: WriteAsync waits while it is full,
    /// TryWrite returns false.</summary>
    /// <remarks>Call on a shard: the channel is bound to it.</remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is less than 1.</exception>
    /// <exception cref="InvalidOperationException">Not called on a shard.</exception>
    public static Channel<T> CreateBounded<T>(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        return new LocalChannel<T>(ShardExecutor.Require("LocalChannel.CreateBounded"), capacity);
    }

    /// <summary>A channel without a bound: writes always succeed at once (until it is completed).</summary>
    /// <remarks>Call on a shard: the channel is bound to it. Its buffer grows by doubling and does not shrink.</remarks>
    /// <exception cref="InvalidOperationException">Not called on a shard.</exception>
    public static Channel<T> CreateUnbounded<T>() =>
        new LocalChannel<T>(ShardExecutor.Require("LocalChannel.CreateUnbounded"), int.MaxValue);
}

/// <summary>The shard-local channel: a growable ring of items, FIFOs of blocked readers and writers, and lists of
/// WaitToRead/WaitToWrite waiters. Everything runs on <see cref="_shard"/>.</summary>
internal sealed class LocalChannel<T> : Channel<T>, IWaiterOwner<T>
{
    private readonly ShardExecutor _shard;
    private readonly int _capacity;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Stack<ChannelWaiter<T>> _free = new();
    private T[] _items;
    private int _head, _count;
    private WaiterList<T> _blockedReaders, _readWaiters, _blockedWriters, _writeWaiters;
    private Exception? _doneWriting;

    public LocalChannel(ShardExecutor shard, int capacity)
    {
        _shard = shard;
        _capacity = capacity;
        _items = new T[Math.Min(capacity, 16) is var n && n > 0 ? (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)n) : 1];
        Reader = new LocalReader(this);
        Writer = new LocalWriter(this);
    }

    private void Check(string member)
    {
        if (ShardExecutor.Current != _shard) ChannelErrors.ThrowWrongShard("LocalChannel", member, "reader and writer are");
    }

    // ---- the buffer ----

    private void Push(T item)
    {
        if (_count == _items.Length) Grow();
        _items[(_head + _count) & (_items.Length - 1)] = item;
        _count++;
    }

    private T Pop()
    {
        ref T slot = ref _items[_head];
        T item = slot;
        slot = default!;
        _head = (_head + 1) & (_items.Length - 1);
        _count--;
        return item;
    }

    private void Grow()
    {
        var bigger = new T[_items.Length * 2];
        for (int i = 0; i < _count; i++) bigger[i] = _items[(_head + i) & (_items.Length - 1)];
        _items = bigger;
        _head = 0;
    }

    // ---- waiters ----

    private ChannelWaiter<T> Rent(WaitKind kind, T item, CancellationToken ct)
    {
        if (!_free.TryPop(out var waiter)) waiter = new ChannelWaiter<T>(this);
        waiter.Begin(kind, item, ct);
        return waiter;
    }

    void IWaiterOwner<T>.Return(ChannelWaiter<T> waiter)
    {
        if (_free.Count < 64) _free.Push(waiter);
    }

    void IWaiterOwner<T>.OnCanceled(ChannelWaiter<T> waiter)
    {
        switch (waiter.Kind)
        {
            case WaitKind.Read: _blockedReaders.Remove(waiter); break;
            case WaitKind.WaitToRead: _readWaiters.Remove(waiter); break;
            case WaitKind.Write: _blockedWriters.Remove(waiter); break;
            default: _writeWaiters.Remove(waiter); break;
        }
        waiter.SetCanceled();
    }

    private static void WakeAll(ref WaiterList<T> list, bool result)
    {
        while (list.TakeFirst() is { } w) w.SetResult(result);
    }

    private static void FailAll(ref WaiterList<T> list, Exception error)
    {
        while (list.TakeFirst() is { } w) w.SetException(error);
    }

    // ---- operations ----

    private bool TryRead(out T item)
    {
        if (_count == 0)
        {
            item = default!;
            return false;
        }
        item = Pop();
        if (_blockedWriters.TakeFirst() is { } writer)
        {
            Push(writer.Item);
            writer.SetResult(true);
        }
        else if (_doneWriting is not null && _count == 0) _completion.TrySetFromCompletion(_doneWriting);
        else WakeAll(ref _writeWaiters, true);
        return true;
    }

    private bool TryWrite(T item)
    {
        if (_doneWriting is not null) return false;
        if (_blockedReaders.TakeFirst() is { } reader)
        {
            reader.SetItem(item); // the buffer is empty: hand it over
            return true;
        }
        if (_count >= _capacity) return false;
        Push(item);
        WakeAll(ref _readWaiters, true);
        return true;
    }

    private bool TryComplete(Exception? error)
    {
        if (_doneWriting is not null) return false;
        _doneWriting = error ?? ChannelErrors.DoneWriting;
        if (_count == 0) _completion.TrySetFromCompletion(_doneWriting);
        var closed = ChannelErrors.Closed(_doneWriting);
        FailAll(ref _blockedReaders, closed);
        FailAll(ref _blockedWriters, closed);
        if (error is null)
        {
            WakeAll(ref _readWaiters, false);
            WakeAll(ref _writeWaiters, false);
        }
        else
        {
            FailAll(ref _readWaiters, error);
            FailAll(ref _writeWaiters, error);
        }
        return true;
    }

    /// <summary>The reader: every member but Completion on the channel's shard.</summary>
    private sealed class LocalReader(LocalChannel<T> channel) : ChannelReader<T>
    {
        public override Task Completion => channel._completion.Task;

        public override bool CanCount => true;

        public override bool CanPeek => true;

        public override int Count
        {
            get
            {
                channel.Check("Reader.Count");
                return channel._count;
            }
        }

        public override bool TryRead(out T item)
        {
            channel.Check("Reader.TryRead");
            return channel.TryRead(out item);
        }

        public override bool TryPeek(out T item)
        {
            channel.Check("Reader.TryPeek");
            if (channel._count == 0)
            {
                item = default!;
                return false;
            }
            item = channel._items[channel._head];
            return true;
        }

        public override ValueTask<T> ReadAsync(CancellationToken cancellationToken = default)
        {
            channel.Check("Reader.ReadAsync");
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<T>(cancellationToken);
            if (channel.TryRead(out T item)) return new ValueTask<T>(item);
            if (channel._doneWriting is { } done) return ValueTask.FromException<T>(ChannelErrors.Closed(done));
            var waiter = channel.Rent(WaitKind.Read, default!, cancellationToken);
            channel._blockedReaders.Add(waiter);
            return new ValueTask<T>(waiter, waiter.Version);
        }

        public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
        {
            channel.Check("Reader.WaitToReadAsync");
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<bool>(cancellationToken);
            if (channel._count > 0) return new ValueTask<bool>(true);
            if (channel._doneWriting is { } done)
                return ChannelErrors.ErrorOf(done) is { } error ? ValueTask.FromException<bool>(error) : new ValueTask<bool>(false);
            var waiter = channel.Rent(WaitKind.WaitToRead, default!, cancellationToken);
            channel._readWaiters.Add(waiter);
            return new ValueTask<bool>(waiter.AsBool, waiter.Version);
        }

        public override async IAsyncEnumerable<T> ReadAllAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            // No ConfigureAwait(false): each await resumes on the shard, in the consumer's task queue.
            while (await WaitToReadAsync(cancellationToken))
                while (TryRead(out T item))
                    yield return item;
        }
    }

    /// <summary>The writer: every member on the channel's shard.</summary>
    private sealed class LocalWriter(LocalChannel<T> channel) : ChannelWriter<T>
    {
        public override bool TryWrite(T item)
        {
            channel.Check("Writer.TryWrite");
            return channel.TryWrite(item);
        }

        public override ValueTask WriteAsync(T item, CancellationToken cancellationToken = default)
        {
            channel.Check("Writer.WriteAsync");
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
            if (channel._doneWriting is { } done) return ValueTask.FromException(ChannelErrors.Closed(done));
            if (channel.TryWrite(item)) return default;
            var waiter = channel.Rent(WaitKind.Write, item, cancellationToken);
            channel._blockedWriters.Add(waiter);
            return new ValueTask(waiter, waiter.Version);
        }

        public override ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken = default)
        {
            channel.Check("Writer.WaitToWriteAsync");
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<bool>(cancellationToken);
            if (channel._doneWriting is { } done)
                return ChannelErrors.ErrorOf(done) is { } error ? ValueTask.FromException<bool>(error) : new ValueTask<bool>(false);
            if (channel._count < channel._capacity) return new ValueTask<bool>(true);
            var waiter = channel.Rent(WaitKind.WaitToWrite, default!, cancellationToken);
            channel._writeWaiters.Add(waiter);
            return new ValueTask<bool>(waiter.AsBool, waiter.Version);
        }

        public override bool TryComplete(Exception? error = null)
        {
            channel.Check("Writer.TryComplete");
            return channel.TryComplete(error);
        }
    }
}

/// <summary>Completing a channel's Completion task from its completion error.</summary>
internal static class CompletionExtensions
{
    /// <summary>Succeeds, is canceled or faults as <paramref name="doneWriting"/> says.</summary>
    public static bool TrySetFromCompletion(this TaskCompletionSource completion, Exception doneWriting) =>
        ChannelErrors.ErrorOf(doneWriting) switch
        {
            null => completion.TrySetResult(),
            OperationCanceledException oce => completion.TrySetCanceled(oce.CancellationToken),
            var error => completion.TrySetException(error),
        };
}

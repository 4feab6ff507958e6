using System.Threading.Channels;
using Scipio.Runtime;

namespace Scipio.Channels;

/// <summary>Channels between two shards: a bounded single-producer single-consumer <see cref="Channel{T}"/> over a
/// lock-free ring. The writer side binds to the shard that first writes, the reader side to the shard that first
/// reads.</summary>
/// <remarks>
/// <para>Shard binding: every member of the writer binds it to the calling shard on first use (TryWrite, WriteAsync,
/// WaitToWriteAsync, TryComplete); every member of the reader but Completion binds the reader. A second shard — or
/// a thread that is not a shard — on either side gets <see cref="InvalidOperationException"/>. Both sides may be the
/// same shard. On each side one wait may be pending at a time (it is a single-reader, single-writer channel): any
/// number of tasks of the side's shard may call TryRead/TryWrite, but a second concurrent ReadAsync,
/// WaitToReadAsync (or WriteAsync, WaitToWriteAsync) throws <see cref="InvalidOperationException"/>.</para>
/// <para>Wake semantics: the side that finds the ring empty (reader) or full (writer) publishes that it waits —
/// a flag, then a full fence, then a second look at the ring, so that no wake is lost — and the other side, after
/// each enqueue or dequeue, checks the flag; only then does it wake the waiter, by posting its continuation to the
/// waiter's task queue (the shard's inbox; a parked shard is woken, by IORING_OP_MSG_RING where the poster is a
/// shard). A side that never waits is never woken: a stream costs two fences per item and no syscalls. A woken
/// await resumes on its own shard, in the task queue it was awaited in. Completion (with or without an exception)
/// reaches a waiting reader the same way. Steady-state traffic allocates nothing.</para>
/// </remarks>
public static class SharedChannel
{
    /// <summary>A channel of at most <paramref name="capacity"/> items (rounded up to a power of two) from one shard
    /// to another.</summary>
    /// <remarks>May be called anywhere (on a shard or not): the sides bind when first used.</remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is less than 1 or above 2^30.</exception>
    public static Channel<T> CreateBounded<T>(int capacity) => new SharedChannel<T>(capacity);
}

/// <summary>The cross-shard SPSC channel. The reader's fields are touched on the reader's shard only, the writer's on
/// the writer's shard only; what crosses is the ring, the two "waiting" flags, and the completion.</summary>
internal sealed class SharedChannel<T> : Channel<T>
{
    private static readonly SendOrPostCallback s_wakeReader = static s => ((SharedChannel<T>)s!)._readerSide.OnWake();
    private static readonly SendOrPostCallback s_wakeWriter = static s => ((SharedChannel<T>)s!)._writerSide.OnWake();

    private readonly SpscRing<T> _ring;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ReaderSide _readerSide;
    private readonly WriterSide _writerSide;
    private volatile Exception? _doneWriting;

    // 1 while that side waits for the other; the other side takes it with an exchange and posts one wake.
    private int _readerWaiting, _writerWaiting;

    public SharedChannel(int capacity)
    {
        _ring = new SpscRing<T>(capacity);
        _readerSide = new ReaderSide(this);
        _writerSide = new WriterSide(this);
        Reader = new SharedReader(this);
        Writer = new SharedWriter(this);
    }

    /// <summary>Binds <paramref name="bound"/> to the calling shard on first use; throws on any other.</summary>
    private static void Bind(ref ShardExecutor? bound, string member, string side)
    {
        var current = ShardExecutor.Current;
        var shard = Volatile.Read(ref bound);
        if (shard == current && current is not null) return;
        if (shard is null && current is not null && Interlocked.CompareExchange(ref bound, current, null) is null) return;
        ChannelErrors.ThrowWrongShard("SharedChannel", member, side);
    }

    /// <summary>The other side may be waiting for what was just done: a full fence (our ring index store before
    /// the flag's load), then the flag; if set, take it and post one wake to the queue that waits. The queue is read
    /// only after the flag is taken: the waiter writes it before it raises the flag, so an earlier read could see
    /// none (its first wait) or an older wait's queue.</summary>
    private void Notify(ref int waiting, Side waiter, SendOrPostCallback wake)
    {
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref waiting) != 0 && Interlocked.Exchange(ref waiting, 0) != 0) waiter.WakeQueue!.Post(wake, this);
    }

    /// <summary>The base of both sides: a pool of waiters and the one pending wait, all on the side's shard.</summary>
    private abstract class Side(SharedChannel<T> channel) : IWaiterOwner<T>
    {
        protected readonly SharedChannel<T> Channel = channel;
        private readonly Stack<ChannelWaiter<T>> _free = new();
        protected ChannelWaiter<T>? Pending;
        public ShardExecutor? Shard;

        /// <summary>The queue of the pending wait, read by the other side once it has taken the flag.</summary>
        public volatile TaskQueue? WakeQueue;

        protected abstract ref int Waiting { get; }

        protected ChannelWaiter<T> Rent(WaitKind kind, T item, CancellationToken ct, string member)
        {
            if (Pending is not null)
                throw new InvalidOperationException(
                    $"SharedChannel.{member}: another wait on this side is pending. A SharedChannel has one reader and one writer: await one read (or write) at a time.");
            if (!_free.TryPop(out var waiter)) waiter = new ChannelWaiter<T>(this);
            waiter.Begin(kind, item, ct);
            return waiter;
        }

        /// <summary>Publishes that <paramref name="waiter"/> waits: flag, full fence, then the caller looks again.</summary>
        protected void Arm(ChannelWaiter<T> waiter)
        {
            Pending = waiter;
            WakeQueue = waiter.Queue;
            Volatile.Write(ref Waiting, 1);
            Interlocked.MemoryBarrier();
        }

        /// <summary>The wait ended on this side: withdraw the flag (a wake already posted finds nothing pending).</summary>
        protected void Disarm()
        {
            Pending = null;
            Interlocked.Exchange(ref Waiting, 0);
        }

        /// <summary>Tries to finish the pending wait now; false when it must keep waiting.</summary>
        protected abstract bool TryFinish(ChannelWaiter<T> waiter);

        /// <summary>On this side's shard: the other side posted a wake (or the flag was re-armed and it came late).</summary>
        public void OnWake()
        {
            if (Pending is { } waiter) Settle(waiter);
        }

        /// <summary>Finishes the wait if it can, else re-arms and looks once more (the Dekker check).</summary>
        protected void Settle(ChannelWaiter<T> waiter)
        {
            while (true)
            {
                if (TryFinish(waiter)) return;
                Arm(waiter);
                if (!CanFinish()) return;
            }
        }

        /// <summary>Whether <see cref="TryFinish"/> could succeed now (looked at after arming).</summary>
        protected abstract bool CanFinish();

        public void OnCanceled(ChannelWaiter<T> waiter)
        {
            if (!ReferenceEquals(Pending, waiter)) return;
            Disarm();
            waiter.SetCanceled();
        }

        public void Return(ChannelWaiter<T> waiter)
        {
            if (_free.Count < 4) _free.Push(waiter);
        }
    }

    /// <summary>The reader side: every member but Completion binds the reader to the calling shard.</summary>
    private sealed class SharedReader(SharedChannel<T> channel) : ChannelReader<T>
    {
        private readonly ReaderSide _side = channel._readerSide;

        public override Task Completion => channel._completion.Task;

        public override bool CanCount => true;

        public override bool CanPeek => true;

        public override int Count
        {
            get
            {
                Bind(ref _side.Shard, "Reader.Count", "reader");
                return channel._ring.Count;
            }
        }

        public override bool TryRead(out T item)
        {
            Bind(ref _side.Shard, "Reader.TryRead", "reader");
            return _side.TryRead(out item);
        }

        public override bool TryPeek(out T item)
        {
            Bind(ref _side.Shard, "Reader.TryPeek", "reader");
            return channel._ring.TryPeek(out item);
        }

        public override ValueTask<T> ReadAsync(CancellationToken cancellationToken = default)
        {
            Bind(ref _side.Shard, "Reader.ReadAsync", "reader");
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<T>(cancellationToken);
            if (_side.TryRead(out T item)) return new ValueTask<T>(item);
            return _side.WaitRead(cancellationToken);
        }

        public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
        {
            Bind(ref _side.Shard, "Reader.WaitToReadAsync", "reader");
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<bool>(cancellationToken);
            if (!channel._ring.IsEmpty) return new ValueTask<bool>(true);
            return _side.WaitToRead(cancellationToken);
        }

        public override async IAsyncEnumerable<T> ReadAllAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            // No ConfigureAwait(false): each await resumes on the reader's shard, in the consumer's task queue.
            while (await WaitToReadAsync(cancellationToken))
                while (TryRead(out T item))
                    yield return item;
        }
    }

    private sealed class ReaderSide(SharedChannel<T> channel) : Side(channel)
    {
        protected override ref int Waiting => ref Channel._readerWaiting;

        /// <summary>Takes an item; makes room for a waiting writer; completes Completion once drained.</summary>
        public bool TryRead(out T item)
        {
            if (Channel._ring.TryDequeue(out item))
            {
                Channel.Notify(ref Channel._writerWaiting, Channel._writerSide, s_wakeWriter);
                if (Channel._doneWriting is { } last && Channel._ring.IsEmpty) Channel._completion.TrySetFromCompletion(last);
                return true;
            }
            if (Channel._doneWriting is { } done && Channel._ring.IsEmpty) Channel._completion.TrySetFromCompletion(done);
            return false;
        }

        public ValueTask<T> WaitRead(CancellationToken ct)
        {
            var waiter = Rent(WaitKind.Read, default!, ct, "ReadAsync");
            Settle(waiter);
            return new ValueTask<T>(waiter, waiter.Version);
        }

        public ValueTask<bool> WaitToRead(CancellationToken ct)
        {
            var waiter = Rent(WaitKind.WaitToRead, default!, ct, "WaitToReadAsync");
            Settle(waiter);
            return new ValueTask<bool>(waiter.AsBool, waiter.Version);
        }

        protected override bool CanFinish() => !Channel._ring.IsEmpty || Channel._doneWriting is not null;

        protected override bool TryFinish(ChannelWaiter<T> waiter)
        {
            // The completion is read before the ring: a writer completes after its last enqueue.
            var done = Channel._doneWriting;
            if (waiter.Kind == WaitKind.Read)
            {
                if (TryRead(out T item))
                {
                    Disarm();
                    waiter.SetItem(item);
                    return true;
                }
            }
            else if (!Channel._ring.IsEmpty)
            {
                Disarm();
                waiter.SetResult(true);
                return true;
            }
            if (done is null) return false;
            Disarm();
            Channel._completion.TrySetFromCompletion(done);
            if (waiter.Kind == WaitKind.Read) waiter.SetException(ChannelErrors.Closed(done));
            else if (ChannelErrors.ErrorOf(done) is { } error) waiter.SetException(error);
            else waiter.SetResult(false);
            return true;
        }
    }

    /// <summary>The writer side: every member binds the writer to the calling shard.</summary>
    private sealed class SharedWriter(SharedChannel<T> channel) : ChannelWriter<T>
    {
        private readonly WriterSide _side = channel._writerSide;

        public override bool TryWrite(T item)
        {
            Bind(ref _side.Shard, "Writer.TryWrite", "writer");
            return channel._doneWriting is null && _side.TryEnqueue(item);
        }

        public override ValueTask WriteAsync(T item, CancellationToken cancellationToken = default)
        {
            Bind(ref _side.Shard, "Writer.WriteAsync", "writer");
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
            if (channel._doneWriting is { } done) return ValueTask.FromException(ChannelErrors.Closed(done));
            if (_side.TryEnqueue(item)) return default;
            return _side.WaitWrite(item, cancellationToken);
        }

        public override ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken = default)
        {
            Bind(ref _side.Shard, "Writer.WaitToWriteAsync", "writer");
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<bool>(cancellationToken);
            if (channel._doneWriting is { } done)
                return ChannelErrors.ErrorOf(done) is { } error ? ValueTask.FromException<bool>(error) : new ValueTask<bool>(false);
            if (channel._ring.HasSpace()) return new ValueTask<bool>(true);
            return _side.WaitToWrite(cancellationToken);
        }

        public override bool TryComplete(Exception? error = null)
        {
            Bind(ref _side.Shard, "Writer.TryComplete", "writer");
            return _side.TryComplete(error);
        }
    }

    private sealed class WriterSide(SharedChannel<T> channel) : Side(channel)
    {
        protected override ref int Waiting => ref Channel._writerWaiting;

        public bool TryEnqueue(T item)
        {
            if (!Channel._ring.TryEnqueue(item)) return false;
            Channel.Notify(ref Channel._readerWaiting, Channel._readerSide, s_wakeReader);
            return true;
        }

        public ValueTask WaitWrite(T item, CancellationToken ct)
        {
            var waiter = Rent(WaitKind.Write, item, ct, "WriteAsync");
            Settle(waiter);
            return new ValueTask(waiter, waiter.Version);
        }

        public ValueTask<bool> WaitToWrite(CancellationToken ct)
        {
            var waiter = Rent(WaitKind.WaitToWrite, default!, ct, "WaitToWriteAsync");
            Settle(waiter);
            return new ValueTask<bool>(waiter.AsBool, waiter.Version);
        }

        protected override bool CanFinish() => Channel._ring.HasSpace() || Channel._doneWriting is not null;

        protected override bool TryFinish(ChannelWaiter<T> waiter)
        {
            if (Channel._doneWriting is { } done)
            {
                Disarm();
                if (waiter.Kind == WaitKind.Write) waiter.SetException(ChannelErrors.Closed(done));
                else if (ChannelErrors.ErrorOf(done) is { } error) waiter.SetException(error);
                else waiter.SetResult(false);
                return true;
            }
            if (waiter.Kind == WaitKind.Write ? TryEnqueue(waiter.Item) : Channel._ring.HasSpace())
            {
                Disarm();
                waiter.SetResult(true);
                return true;
            }
            return false;
        }

        public bool TryComplete(Exception? error)
        {
            if (Channel._doneWriting is not null) return false;
            Channel._doneWriting = error ?? ChannelErrors.DoneWriting; // volatile: after every enqueue
            if (Pending is { } waiter) TryFinish(waiter); // a write still waiting for room fails
            if (Channel._ring.IsEmpty) Channel._completion.TrySetFromCompletion(Channel._doneWriting);
            Channel.Notify(ref Channel._readerWaiting, Channel._readerSide, s_wakeReader);
            return true;
        }
    }
}

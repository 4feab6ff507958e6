namespace Scipio.Runtime;

/// <summary>Something one shard of a pool hands to another: it arrives on the target's thread.</summary>
internal interface ICrossShardItem
{
    /// <summary>Runs on shard <paramref name="at"/> when it drains its inbound rings.</summary>
    void Arrive(ShardExecutor at);

    /// <summary>The pool stopped with the item still on its way: end what waits on it.</summary>
    void Abandon(Exception? fault);
}

/// <summary>The pool's shard-to-shard transport: one single-producer single-consumer ring per ordered pair of
/// shards (the sender is the only producer, the target the only consumer: no locks, no atomics beyond the ring's
/// acquire/release). A sender marks the targets it wrote to and, after its run, signals and wakes each once (by
/// MSG_RING when parked): a batch costs one wake, not one per item. A target drains its inbound rings on each loop
/// turn that finds its inbox signal set. When a ring is full the sender keeps the rest, in order, in an overflow of
/// its own and retries after its next run.</summary>
internal sealed class CrossShardTransport
{
    private const int RingCapacity = 4096;
    private const int DrainBatch = 1024;
    private readonly int _shards;
    private readonly SpscRing<ICrossShardItem>[] _rings; // [from * _shards + to]
    private readonly Outbox[] _outboxes;
    private readonly long[] _received; // per target, written by the target's thread only

    public CrossShardTransport(int shards)
    {
        _shards = shards;
        _rings = new SpscRing<ICrossShardItem>[shards * shards];
        for (int i = 0; i < _rings.Length; i++) _rings[i] = new SpscRing<ICrossShardItem>(RingCapacity);
        _outboxes = new Outbox[shards];
        for (int i = 0; i < shards; i++) _outboxes[i] = new Outbox(shards);
        _received = new long[shards];
    }

    /// <summary>Items shard <paramref name="shard"/> has sent to its peers (read from any thread: a torn read is
    /// impossible for an aligned long, a stale one harmless).</summary>
    public long SentBy(int shard) => Volatile.Read(ref _outboxes[shard].Sent);

    /// <summary>Items shard <paramref name="shard"/> has received from its peers.</summary>
    public long ReceivedBy(int shard) => Volatile.Read(ref _received[shard]);

    /// <summary>Sends <paramref name="item"/> from shard <paramref name="from"/> (the calling shard's thread) to
    /// shard <paramref name="to"/>; the target learns of it when the sender flushes.</summary>
    public void Send(int from, int to, ICrossShardItem item)
    {
        var outbox = _outboxes[from];
        outbox.Sent++;
        var waiting = outbox.Overflow[to];
        // Behind items already waiting for room, never before them: order per sender is kept.
        if ((waiting is null || waiting.Count == 0) && _rings[from * _shards + to].TryEnqueue(item)) { }
        else (outbox.Overflow[to] ??= new Queue<ICrossShardItem>()).Enqueue(item);
        outbox.Touch(to);
    }

    /// <summary>After a run of shard <paramref name="from"/>: moves what overflowed into the rings as room allows,
    /// then signals and wakes each target written to, once.</summary>
    public void Flush(int from, ShardExecutor[] shards)
    {
        var outbox = _outboxes[from];
        for (int i = 0; i < outbox.TouchedCount; i++)
        {
            int to = outbox.Touched[i];
            if (outbox.Overflow[to] is { Count: > 0 } waiting)
            {
                var ring = _rings[from * _shards + to];
                while (waiting.Count > 0 && ring.TryEnqueue(waiting.Peek())) waiting.Dequeue();
            }
            shards[to].Signal();
        }
        outbox.ClearTouched();
    }

    /// <summary>Whether shard <paramref name="from"/> still holds items its targets had no room for.</summary>
    public bool HasOverflow(int from) => _outboxes[from].HasOverflow;

    /// <summary>Runs, on shard <paramref name="at"/>, up to a batch of what each peer sent it; true if a ring still
    /// holds more (the caller keeps its signal set).</summary>
    public bool Drain(ShardExecutor at)
    {
        int to = at.Id;
        bool more = false;
        for (int from = 0; from < _shards; from++)
        {
            var ring = _rings[from * _shards + to];
            int n = 0;
            for (; n < DrainBatch && ring.TryDequeue(out var item); n++) item.Arrive(at);
            _received[to] += n;
            more |= !ring.IsEmpty;
        }
        return more;
    }

    /// <summary>The pool has stopped: ends everything still on its way.</summary>
    public void AbandonAll(Exception? fault)
    {
        foreach (var ring in _rings)
            while (ring.TryDequeue(out var item)) item.Abandon(fault);
        foreach (var outbox in _outboxes)
            foreach (var waiting in outbox.Overflow)
                while (waiting is { Count: > 0 }) waiting.Dequeue().Abandon(fault);
    }

    /// <summary>A sender's own state: which targets it wrote to since its last flush, and its overflow.</summary>
    private sealed class Outbox(int shards)
    {
        public readonly Queue<ICrossShardItem>?[] Overflow = new Queue<ICrossShardItem>?[shards];
        public readonly int[] Touched = new int[shards];
        private readonly bool[] _isTouched = new bool[shards];
        public int TouchedCount;
        public long Sent;

        public bool HasOverflow
        {
            get
            {
                foreach (var waiting in Overflow)
                    if (waiting is { Count: > 0 }) return true;
                return false;
            }
        }

        public void Touch(int to)
        {
            if (_isTouched[to]) return;
            _isTouched[to] = true;
            Touched[TouchedCount++] = to;
        }

        public void ClearTouched()
        {
            int kept = 0;
            for (int i = 0; i < TouchedCount; i++)
            {
                int to = Touched[i];
                // A target whose overflow is not yet empty stays touched: the next flush tries again.
                _isTouched[to] = Overflow[to] is { Count: > 0 };
                if (_isTouched[to]) Touched[kept++] = to;
            }
            TouchedCount = kept;
        }
    }
}

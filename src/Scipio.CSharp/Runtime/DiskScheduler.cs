using Scipio.Core;
using Scipio.Ring;

namespace Scipio.Runtime;

/// <summary>The shell side of the I/O scheduler (<see cref="IoScheduler"/> in the core decides): O_DIRECT reads and
/// writes wait here, in a FIFO per task queue, until the core says which goes to the kernel next — in proportion to
/// the queues' I/O shares, no faster than the device model's capacity, and with the device's own queue kept short
/// while a latency-sensitive queue has I/O about. Exists only when <see cref="ShardOptions.DiskModel"/> is set; shard
/// thread only.</summary>
internal sealed class DiskScheduler
{
    private readonly ShardExecutor _owner;
    private readonly DeviceModel _model;
    private IoQueueState[] _queues = [];
    private Fifo[] _fifos = [];
    private IoSchedulerState _state;

    public DiskScheduler(ShardExecutor owner, DeviceModel model)
    {
        _owner = owner;
        _model = model;
        _state = IoScheduler.create(IoScheduler.defaultConfig(model), Clock.NowNs);
    }

    /// <summary>When the request next in line will have its tokens (Time.Never: not waiting for tokens); the loop
    /// comes back by then, parked or not.</summary>
    public long NextDispatchNs { get; private set; } = Time.Never;

    /// <summary>Operations were dispatched since the loop last asked: it submits them now, before running queues
    /// (a latency-sensitive read dispatched on a completion must not wait out another queue's slice).</summary>
    public bool TakeDispatched()
    {
        bool any = _dispatched;
        _dispatched = false;
        return any;
    }

    private bool _dispatched;

    /// <summary>Per task queue: I/O dispatched, its bytes, time waited here, time in the device.</summary>
    public (long Dispatched, long Bytes, long WaitNs, long DeviceNs) QueueStats(int queue) =>
        queue < _fifos.Length ? (_fifos[queue].Dispatched, _fifos[queue].Bytes, _fifos[queue].WaitNs, _fifos[queue].DeviceNs) : default;

    /// <summary>An O_DIRECT read or write of <paramref name="bytes"/>: queued, then dispatched as the core decides.</summary>
    public void Submit(IoOperation op, bool write, int bytes)
    {
        var queue = op.Queue;
        int q = queue.Index;
        Ensure(q);
        int shares = queue.IoShares.Current;
        if (_queues[q].Shares != shares) IoScheduler.setShares(_queues, q, shares);
        long cost = IoCost.ofRequest(_model, write, bytes);
        long now = Clock.NowNs;
        op.Scheduled = new ScheduledIo(cost, q, bytes, now);
        _fifos[q].Waiting.Append(op);
        IoScheduler.enqueue(_queues, q, cost, _state);
        Pump(now);
    }

    /// <summary>Hands the kernel what the core lets go now; records when to come back if it waits for tokens.</summary>
    public void Pump(long nowNs)
    {
        while (true)
        {
            var decision = IoScheduler.next(_queues, nowNs, _state);
            if (decision.IsDispatch)
            {
                int q = decision.queue;
                ref var fifo = ref _fifos[q];
                var op = fifo.Waiting.TakeFirst();
                _state = IoScheduler.dispatch(_queues, q, fifo.Waiting.Head?.Scheduled.Cost ?? 0, nowNs, _state);
                fifo.Dispatched++;
                fifo.Bytes += op.Scheduled.Bytes;
                fifo.WaitNs += nowNs - op.Scheduled.AtNs;
                op.Scheduled = op.Scheduled with { AtNs = nowNs };
                _owner.Backend.Submit(op); // a token canceled meanwhile ends it at once, through Completed
                _dispatched = true;
                continue;
            }
            NextDispatchNs = decision.IsWaitTokens ? decision.atNs : Time.Never;
            return;
        }
    }

    /// <summary>A dispatched operation's final CQE arrived (or it ended without reaching the kernel): its room on
    /// the device is free; what waits may go.</summary>
    public void Completed(IoOperation op)
    {
        var io = op.Scheduled;
        op.Scheduled = default;
        long now = Clock.NowNs;
        _fifos[io.Queue].DeviceNs += now - io.AtNs;
        _state = IoScheduler.complete(_queues, io.Queue, io.Cost, _state);
        Pump(now);
    }

    private void Ensure(int q)
    {
        if (q < _queues.Length) return;
        int size = Math.Max(8, q + 1);
        var queues = new IoQueueState[size];
        var fifos = new Fifo[size];
        _queues.CopyTo(queues, 0);
        _fifos.CopyTo(fifos, 0);
        for (int i = _queues.Length; i < size; i++)
        {
            var taskQueue = _owner.QueueAt(i);
            queues[i] = IoScheduler.createQueue(
                taskQueue?.IoShares.Current ?? 100, taskQueue?.Latency.ToCore() ?? LatencyClass.NotImportant);
        }
        _queues = queues;
        _fifos = fifos;
    }

    /// <summary>One task queue's waiting operations (linked through their backlog links: an operation waits here or
    /// in a ring's backlog, never both) and its counters.</summary>
    private struct Fifo
    {
        public OperationList Waiting;
        public long Dispatched, Bytes, WaitNs, DeviceNs;
    }
}

/// <summary>What the disk scheduler keeps on an operation it handles: its cost, its task queue, its size, and when
/// it entered the current stage (queued here, then on the device).</summary>
internal readonly record struct ScheduledIo(long Cost, int Queue, int Bytes, long AtNs)
{
    /// <summary>Whether the operation went through the scheduler (and must be reported to it when it ends).</summary>
    public bool IsSet => Cost != 0;
}

using System.IO.Pipelines;
using Scipio.Runtime;

namespace Scipio;

/// <summary>A group of work on one shard with its own CPU shares and latency class
/// (<see cref="Shard.CreateTaskQueue"/>). It is also the <see cref="SynchronizationContext"/> its work runs under,
/// so any <c>await</c> inside it — on a Scipio operation or on a foreign Task — resumes in the same queue.</summary>
/// <remarks><c>ConfigureAwait(false)</c> and F#'s <c>backgroundTask</c> leave the shard: the code after them runs
/// on the ThreadPool and may not use shard APIs.</remarks>
public sealed class TaskQueue : SynchronizationContext
{
    private Shares _shares;
    private Shares? _ioShares; // null: follow the CPU shares

    internal TaskQueue(ShardExecutor executor, int index, string name, Shares shares, Latency latency)
    {
        Executor = executor;
        Index = index;
        Name = name;
        _shares = shares;
        Latency = latency;
    }

    internal ShardExecutor Executor { get; }

    internal int Index { get; }

    internal WorkQueue Work { get; } = new();

    /// <summary>The queue's name, unique on its shard.</summary>
    public string Name { get; }

    /// <summary>The queue's CPU shares. Settable on the queue's shard; takes effect the next time it is picked.</summary>
    /// <exception cref="InvalidOperationException">Set from another thread.</exception>
    public Shares Shares
    {
        get => _shares;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (ShardExecutor.Current != Executor) Interop.ThrowHelper.ThrowNotOnShard("TaskQueue.Shares (set)");
            _shares = value;
            Executor.OnSharesChanged(this);
        }
    }

    /// <summary>The queue's share of the disk, when the shard has an I/O scheduler (<c>ShardOptions.DiskModel</c>):
    /// its O_DIRECT reads and writes are dispatched in proportion to it, as its work gets the CPU in proportion to
    /// <see cref="Shares"/>. Default: the CPU shares (set it to decouple them; set null to follow them again).
    /// Settable on the queue's shard.</summary>
    /// <exception cref="InvalidOperationException">Set from another thread.</exception>
    [System.Diagnostics.CodeAnalysis.AllowNull]
    public Shares IoShares
    {
        get => _ioShares ?? _shares;
        set
        {
            if (ShardExecutor.Current != Executor) Interop.ThrowHelper.ThrowNotOnShard("TaskQueue.IoShares (set)");
            _ioShares = value;
        }
    }

    /// <summary>The exception the queue's <see cref="ISharesController"/> last threw, or null. A controller that throws
    /// does not stop the shard: the queue keeps the shares it had and the exception is kept here.</summary>
    public Exception? LastSharesError { get; private set; }

    /// <summary>The shares now; if a dynamic controller throws, <paramref name="fallback"/> (the shares the queue
    /// had) and the exception goes to <see cref="LastSharesError"/>.</summary>
    internal int ReadShares(int fallback)
    {
        if (!_shares.IsDynamic) return _shares.Current;
        try { return _shares.Current; }
        catch (Exception e)
        {
            LastSharesError = e;
            return fallback;
        }
    }

    /// <summary>The queue's latency class.</summary>
    public Latency Latency { get; }

    /// <summary>A snapshot of the queue's counters: runtime, work items run, times picked, longest wait.</summary>
    public TaskQueueStats Stats => Executor.QueueStats(this);

    /// <summary>Queues work to run in this task queue. Thread-safe: from another thread it goes through the
    /// shard's inbox and wakes the shard if it is parked.</summary>
    public override void Post(SendOrPostCallback d, object? state)
    {
        ArgumentNullException.ThrowIfNull(d);
        if (ShardExecutor.Current == Executor) EnqueueLocal(new WorkItem(d, state));
        else Executor.PostFromAnotherThread(this, new WorkItem(d, state));
    }

    /// <summary>Runs <paramref name="d"/> in this queue and waits for it: inline when called on the queue's shard,
    /// otherwise posted and waited for (the calling thread blocks until the shard has run it).</summary>
    /// <exception cref="InvalidOperationException">Called on another shard: blocking a shard stops everything on it,
    /// and two shards sending to each other would wait for each other forever. Post instead (or await work
    /// submitted to the other shard).</exception>
    public override void Send(SendOrPostCallback d, object? state)
    {
        ArgumentNullException.ThrowIfNull(d);
        var current = ShardExecutor.Current;
        if (current == Executor)
        {
            d(state);
            return;
        }
        if (current is not null)
            throw new InvalidOperationException(
                $"TaskQueue.Send would block shard {current.Id} until shard {Executor.Id} runs the callback, and two shards sending to each other deadlock. Use Post (or await work submitted to that shard) instead.");
        using var done = new ManualResetEventSlim();
        Exception? error = null;
        Post(_ =>
        {
            try { d(state); }
            catch (Exception e) { error = e; }
            finally { done.Set(); }
        }, null);
        done.Wait();
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
    }

    /// <summary>A System.IO.Pipelines <see cref="System.IO.Pipelines.PipeScheduler"/> that runs what a
    /// <see cref="Pipe"/> schedules (the reader's or the writer's continuation) as work of this queue: queued on the
    /// shard when scheduled there, through the shard's inbox (with a wake) from any other thread. Give it to a
    /// <see cref="PipeOptions"/> as the reader and writer scheduler, with <c>useSynchronizationContext: false</c>, and
    /// the code awaiting the pipe resumes on this queue's shard.</summary>
    /// <remarks>Scheduling allocates nothing; the callback is never run inline (the stack stays bounded, and the
    /// queue is charged for the work like any other).</remarks>
    public PipeScheduler PipeScheduler => _pipeScheduler ??= new TaskQueuePipeScheduler(this);

    private PipeScheduler? _pipeScheduler;

    /// <summary>Queues <paramref name="callback"/> in this queue, from any thread.</summary>
    internal void Schedule(Action<object?> callback, object? state)
    {
        if (ShardExecutor.Current == Executor) EnqueueLocal(new WorkItem(callback, state));
        else Executor.PostFromAnotherThread(this, new WorkItem(callback, state));
    }

    private sealed class TaskQueuePipeScheduler(TaskQueue queue) : PipeScheduler
    {
        public override void Schedule(Action<object?> action, object? state)
        {
            ArgumentNullException.ThrowIfNull(action);
            queue.Schedule(action, state);
        }

        public override string ToString() => $"PipeScheduler of {queue}";
    }

    /// <summary>The queue itself: it is not copied.</summary>
    public override SynchronizationContext CreateCopy() => this;

    /// <summary>Enqueues on the shard thread and makes the queue runnable.</summary>
    internal void EnqueueLocal(in WorkItem item)
    {
        Work.Enqueue(item);
        Executor.MarkRunnable(Index);
    }

    /// <inheritdoc/>
    public override string ToString() => $"TaskQueue '{Name}' ({Shares}, {Latency})";
}

namespace Scipio;

/// <summary>A snapshot of a shard's counters (<see cref="Shard.Stats"/>).</summary>
/// <param name="Runtime">CPU time spent running task queues.</param>
/// <param name="TasksRun">Work items run (continuations, spawned work, posts).</param>
/// <param name="LoopTurns">Turns of the run loop.</param>
/// <param name="Parks">Times the shard blocked in the kernel for lack of work.</param>
/// <param name="Wakeups">Times another thread or shard woke the parked shard (eventfd or MSG_RING).</param>
/// <param name="Preemptions">Times a queue was cut off because NeedPreempt became true: its time slice ran out,
/// a latency event arrived, or another thread posted work.</param>
/// <param name="PollFallbacks">Devices found not to poll (sysfs io_poll = 0) plus O_DIRECT operations sent again
/// to another ring after the poll ring answered EOPNOTSUPP: that device's I/O goes to the main ring for good.</param>
/// <param name="Main">The main ring's counters (internal operations included: the eventfd read, the latency-ring
/// poll, cancels).</param>
/// <param name="Latency">The latency ring's counters: latency-sensitive queues' I/O and the preemption timer.</param>
/// <param name="Poll">The poll ring's counters (IOPOLL, O_DIRECT I/O on devices that poll).</param>
/// <param name="TaskQueues">Each task queue's counters.</param>
public sealed record ShardStats(
    TimeSpan Runtime,
    long TasksRun,
    long LoopTurns,
    long Parks,
    long Wakeups,
    long Preemptions,
    long PollFallbacks,
    RingStats Main,
    RingStats Latency,
    RingStats Poll,
    IReadOnlyList<TaskQueueStats> TaskQueues)
{
    /// <summary>Of <see cref="Wakeups"/>, those another shard sent as a CQE on this shard's main ring
    /// (IORING_OP_MSG_RING) rather than through the eventfd.</summary>
    public long MsgRingWakeups { get; init; }

    /// <summary>Buffered-file writes done by a <c>pwrite</c> on the shard's thread rather than through the ring
    /// (<see cref="IO.BufferedFile.InlineWriteLimit"/>).</summary>
    public long InlineWrites { get; init; }

    /// <summary>Socket reads that went into the reader's own memory because the shard's provided-buffer ring had
    /// run dry (ENOBUFS): a sign of many connections holding unread data at once.</summary>
    public long ReceiveFallbacks { get; init; }

    /// <summary>DmaBuffer blocks of this shard's pool registered with its rings now (each is a slot of a table of
    /// registered buffers, on every ring): their reads and writes go as IORING_OP_READ_FIXED / WRITE_FIXED, and the
    /// kernel does not pin their pages for each I/O.</summary>
    public int RegisteredBuffers { get; init; }

    /// <summary>O_DIRECT reads and writes prepared as READ_FIXED / WRITE_FIXED (with a registered buffer).</summary>
    public long FixedBufferIo { get; init; }

    /// <summary>DmaBuffer blocks the pool made that could not be registered: the shard's table was refused at start
    /// (an old kernel, a seccomp filter, the locked-memory limit), it was full, or the kernel refused the block. Their
    /// I/O goes as plain READ / WRITE, which works the same, only without the saving.</summary>
    public long BufferRegistrationFailures { get; init; }

    /// <summary>Timers armed on the shard now: sleeps, pending <see cref="ShardPeriodicTimer"/> waits,
    /// <see cref="Shard.WithTimeout{T}"/> deadlines and <see cref="ShardTimerAction"/>s waiting for their time.
    /// A canceled or disposed timer leaves at once, so this counts live timers only.</summary>
    public int PendingTimers { get; init; }

    /// <summary>Work items that ran past <see cref="ShardOptions.StallThreshold"/> without yielding (0 while it is off).</summary>
    public long Stalls { get; init; }

    /// <summary>The shard's id (<see cref="Shard.Id"/>).</summary>
    public int Shard { get; init; }

    /// <summary>The backend the shard runs on: <see cref="ShardBackend.IoUring"/> or <see cref="ShardBackend.Epoll"/>
    /// (never Auto: what Auto chose). On epoll, all I/O is counted under <see cref="ShardStats.Main"/>.</summary>
    public ShardBackend Backend { get; init; }

    /// <summary>Items (calls, channel messages' wake-ups) this shard sent to other shards of its pool.</summary>
    public long CrossShardSent { get; init; }

    /// <summary>Items this shard received from other shards of its pool.</summary>
    public long CrossShardReceived { get; init; }
}

/// <summary>Counters of one io_uring instance.</summary>
/// <param name="Submitted">Operations handed to the kernel.</param>
/// <param name="Completed">Operations completed: counted once, at the final completion (a multishot operation's
/// intermediate CQEs are not counted; a resubmitted short write counts each submission).</param>
/// <param name="InFlight">Operations the kernel has not completed yet.</param>
/// <param name="Backlogged">Operations that waited for room in the ring, ever.</param>
/// <param name="SetupFlags">The IORING_SETUP_* flags the kernel accepted, as text.</param>
public sealed record RingStats(long Submitted, long Completed, int InFlight, long Backlogged, string SetupFlags);

/// <summary>A snapshot of a task queue's counters.</summary>
/// <param name="Name">The queue's name.</param>
/// <param name="Shares">Its shares now.</param>
/// <param name="Runtime">CPU time it ran.</param>
/// <param name="TasksRun">Work items it ran.</param>
/// <param name="QueueSelected">Times the scheduler picked it.</param>
/// <param name="MaxQueueDelay">Longest wait between becoming runnable and running.</param>
public sealed record TaskQueueStats(
    string Name,
    int Shares,
    TimeSpan Runtime,
    long TasksRun,
    long QueueSelected,
    TimeSpan MaxQueueDelay)
{
    /// <summary>O_DIRECT reads and writes the I/O scheduler dispatched for the queue (0 without a
    /// <see cref="ShardOptions.DiskModel"/>).</summary>
    public long IoDispatched { get; init; }

    /// <summary>Their bytes.</summary>
    public long IoBytes { get; init; }

    /// <summary>Time they waited in the scheduler before going to the kernel, in total.</summary>
    public TimeSpan IoSchedulerWait { get; init; }

    /// <summary>Time they spent in the kernel and the device, in total.</summary>
    public TimeSpan IoDeviceTime { get; init; }
}

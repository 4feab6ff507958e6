namespace Scipio;

/// <summary>A snapshot of a shard's counters (<see cref="Shard.Stats"/>).</summary>
/// <param name="Runtime">CPU time spent running task queues.</param>
/// <param name="TasksRun">Work items run (continuations, spawned work, posts).</param>
/// <param name="LoopTurns">Turns of the run loop.</param>
/// <param name="Parks">Times the shard blocked in the kernel for lack of work.</param>
/// <param name="Preemptions">Times a queue was cut off because its time slice ran out.</param>
/// <param name="Main">The main ring's counters.</param>
/// <param name="Latency">The latency ring's counters (the preemption timer lives there).</param>
/// <param name="TaskQueues">Each task queue's counters.</param>
public sealed record ShardStats(
    TimeSpan Runtime,
    long TasksRun,
    long LoopTurns,
    long Parks,
    long Preemptions,
    RingStats Main,
    RingStats Latency,
    IReadOnlyList<TaskQueueStats> TaskQueues);

/// <summary>Counters of one io_uring instance.</summary>
/// <param name="Submitted">Operations handed to the kernel.</param>
/// <param name="Completed">Completions reaped.</param>
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
    TimeSpan MaxQueueDelay);

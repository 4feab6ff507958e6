using Scipio.Core;
using Scipio.Ring;

namespace Scipio.Runtime;

/// <summary>The seam between a shard's executor and the kernel interface that does its I/O, after Seastar's
/// reactor backends: submit, cancel, flush, reap, "may I sleep", park, wake. io_uring (<see cref="IoUringBackend"/>)
/// is the one backend today; an epoll backend is the next. An operation reaches a backend as a prepared io_uring
/// SQE — the one description of an operation in Scipio — which an epoll backend would carry out with readiness and
/// plain syscalls instead. Shard thread only, except <see cref="Wake"/>.</summary>
internal interface IShardBackend : IDisposable
{
    /// <summary>What <see cref="ShardExecutor.NeedPreempt"/> reads: raised by the preemption timer and by
    /// latency-sensitive completions (a memory compare).</summary>
    PreemptSignal PreemptSignal { get; }

    /// <summary>User operations are waiting for the kernel whose completion could make a queue runnable: the running
    /// queue needs the preemption timer so that the loop reaps them.</summary>
    bool IoInFlight { get; }

    /// <summary>Polled I/O is in flight: its completions appear only when polled, so the shard may not park.</summary>
    bool MustPoll { get; }

    /// <summary>Completions may be waiting to be reaped (memory reads, no syscall).</summary>
    bool CompletionsWaiting { get; }

    /// <summary>Puts a prepared operation on its way: on the ring routing chooses, or in that ring's backlog.</summary>
    void Submit(IoOperation op);

    /// <summary>Cancels an operation: at once if it has not reached the kernel; otherwise by a cancel request, and it
    /// completes through its own final completion (so its buffers are released only then).</summary>
    void Cancel(IoOperation op);

    /// <summary>Cancels every operation on a descriptor that is being closed.</summary>
    void CancelDescriptor(int fd);

    /// <summary>Hands prepared submissions to the kernel.</summary>
    void Flush();

    /// <summary>Reaps completions and hands each to its operation. Returns true when the preemption timer fired.</summary>
    bool Reap();

    /// <summary>Arms or moves the preemption timer as the core decided; false when it could not (the timer's ring
    /// would take no submission — its completions are then raising NeedPreempt already).</summary>
    bool SetPreemptTimer(PreemptTimerDecision decision);

    /// <summary>Submits what is prepared, then blocks until a completion, a wake or <paramref name="timeoutNs"/>
    /// (Time.Never: none) — in one io_uring_enter where it can.
    /// <paramref name="hasWork"/> is checked after the park is announced, so a racing wake is never lost.</summary>
    void Park(long timeoutNs, Func<bool> hasWork);

    /// <summary>Wakes the shard if it is parked. Any thread; harmless after the backend is disposed.</summary>
    void Wake();

    /// <summary>Drops pooled operations a peak left behind (the shard is idle).</summary>
    void Trim();

    BackendStats Stats();

    /// <summary>The shard's registered-buffer table for O_DIRECT I/O, or null for a backend without one.</summary>
    FixedBuffers? FixedBuffers { get; }

    /// <summary>Cancels everything and waits (bounded) until the kernel has returned every operation.</summary>
    void Drain();
}

/// <summary>A backend's counters.</summary>
internal readonly record struct BackendStats(RingStats Main, RingStats Latency, RingStats Poll, long Wakeups, long MsgRingWakeups, long PollFallbacks)
{
    /// <summary>Blocks registered now, blocks that could not be, and I/O sent as READ_FIXED / WRITE_FIXED.</summary>
    public (int Registered, long Failures, long FixedIo) Fixed { get; init; }
}

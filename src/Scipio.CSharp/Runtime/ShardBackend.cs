namespace Scipio;

/// <summary>The kernel interface a shard does its I/O through (<see cref="ShardOptions.Backend"/>).</summary>
public enum ShardBackend
{
    /// <summary>io_uring when this process can use it, otherwise epoll — with one line on standard error, once per
    /// process, saying so and why. The default.</summary>
    Auto,

    /// <summary>io_uring only: where it is blocked, starting a shard throws <see cref="IoUringUnavailableException"/>
    /// saying why and how to allow it.</summary>
    IoUring,

    /// <summary>epoll: sockets by readiness, files on a few helper threads per shard, the preemption timer on a
    /// timerfd. Slower, but runs where io_uring is blocked (Docker's default seccomp profile, gVisor,
    /// kernel.io_uring_disabled). No latency or poll ring and no registered or provided buffers.</summary>
    Epoll,
}

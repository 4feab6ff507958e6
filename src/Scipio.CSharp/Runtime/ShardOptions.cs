namespace Scipio;

/// <summary>How a shard is started. Setters validate.</summary>
/// <remarks>Defaults: <see cref="Name"/> "shard-N"; <see cref="Placement"/> Unbound; <see cref="RingEntries"/> 256;
/// <see cref="PreemptInterval"/> 1 ms; <see cref="SpinBeforePark"/> zero (park at once).</remarks>
public sealed class ShardOptions
{
    private string? _name;
    private Placement _placement = Placement.Unbound;
    private int _ringEntries = 256;
    private TimeSpan _preemptInterval = TimeSpan.FromMilliseconds(1);
    private TimeSpan _spinBeforePark = TimeSpan.Zero;
    private TimeSpan? _stallThreshold;

    private ShardBackend? _backend;

    /// <summary>The kernel interface for the shard's I/O; default <see cref="ShardBackend.Auto"/> (io_uring, else
    /// epoll), or what the SCIPIO_BACKEND environment variable says (<c>auto</c>, <c>io_uring</c>, <c>epoll</c>).</summary>
    public ShardBackend Backend
    {
        get => _backend ?? Runtime.BackendChoice.Default();
        set => _backend = Enum.IsDefined(value) ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "Backend must be Auto, IoUring or Epoll.");
    }

    /// <summary>The shard thread's name (shown by debuggers and <c>top -H</c>); default "shard-N".</summary>
    public string? Name
    {
        get => _name;
        set => _name = value is { Length: 0 } ? throw new ArgumentException("A shard name cannot be empty.", nameof(value)) : value;
    }

    /// <summary>Where the shard's thread runs; default <see cref="Placement.Unbound"/>.</summary>
    public Placement Placement
    {
        get => _placement;
        set => _placement = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>Submission-queue entries of the main and poll rings, a power of two from 2 to 32768; default 256.
    /// The completion queue gets 16 times as many, at least 1024.</summary>
    /// <remarks>Operations that complete by themselves (file I/O, open, stat) may be in flight up to the completion
    /// queue's size less the submission queue's; more wait in a backlog. Operations that may wait indefinitely (a
    /// read on a FIFO, an idle connection's receive) take no room at all: any number may be pending. The kernel
    /// keeps completions that overflow (IORING_FEAT_NODROP), so none is ever lost.</remarks>
    public int RingEntries
    {
        get => _ringEntries;
        set => _ringEntries = value is >= 2 and <= 32768 && (value & (value - 1)) == 0
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "RingEntries must be a power of two from 2 to 32768.");
    }

    /// <summary>The longest a task queue runs before <see cref="Shard.NeedPreempt"/> asks it to yield so others,
    /// timers and completions get their turn; default 1 ms, from 50 µs to 1 s.</summary>
    public TimeSpan PreemptInterval
    {
        get => _preemptInterval;
        set => _preemptInterval = value >= TimeSpan.FromMicroseconds(50) && value <= TimeSpan.FromSeconds(1)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "PreemptInterval must be between 50 µs and 1 s.");
    }

    /// <summary>How long an idle shard busy-polls its rings before it blocks in the kernel; default zero. Spinning
    /// trades a CPU for lower wake-up latency.</summary>
    public TimeSpan SpinBeforePark
    {
        get => _spinBeforePark;
        set => _spinBeforePark = value >= TimeSpan.Zero && value <= TimeSpan.FromSeconds(1)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "SpinBeforePark must be between zero and 1 s.");
    }

    /// <summary>Report a work item that runs this long without yielding (a "stall": everything else on the shard
    /// waited that long). Off (null) by default; from 100 µs to 1 hour.</summary>
    /// <remarks>Each work item is timed (two clock reads) while this is set; the report goes to <see cref="OnStall"/>
    /// on the shard, once the item has returned, and is counted in <see cref="ShardStats.Stalls"/>.</remarks>
    public TimeSpan? StallThreshold
    {
        get => _stallThreshold;
        set => _stallThreshold = value is null || (value >= TimeSpan.FromMicroseconds(100) && value <= TimeSpan.FromHours(1))
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "StallThreshold must be null (off) or between 100 µs and 1 hour.");
    }

    /// <summary>The disk the shard's O_DIRECT I/O goes to, measured (<see cref="IO.DiskModel.MeasureAsync"/>) or given
    /// by hand: with one, the shard's I/O scheduler shares the disk between task queues by their
    /// <see cref="TaskQueue.IoShares"/> and keeps latency-sensitive queues' reads fast while others saturate it.
    /// Null (the default): no scheduler, I/O goes straight to the rings.</summary>
    public IO.DiskModel? DiskModel { get; set; }

    /// <summary>Receives each stall report, on the shard thread (keep it short; an exception it throws is written to
    /// standard error and otherwise ignored). Default: a line on standard error.</summary>
    public Action<Diagnostics.StallReport>? OnStall { get; set; }
}

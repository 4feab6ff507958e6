using System.Runtime.InteropServices;
using Scipio.Core;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio.Ring;

/// <summary>What a CQE means to the operation that receives it.</summary>
internal enum CqeAction
{
    /// <summary>The operation is done: this was its final CQE.</summary>
    Complete,
    /// <summary>Put the operation back on its ring: its SQE was re-prepared (the rest of a short write, a multishot
    /// request the kernel ended that should go on).</summary>
    Resubmit,
    /// <summary>More CQEs will come for this submission (IORING_CQE_F_MORE).</summary>
    More,
}

/// <summary>Where an operation is in its life.</summary>
internal enum OperationState : byte
{
    /// <summary>In its pool, or rented and being prepared.</summary>
    Idle,
    /// <summary>Waiting in its lane's backlog for room in the ring (io_uring), or for its socket's readiness (epoll);
    /// the kernel has never seen it.</summary>
    Backlogged,
    /// <summary>Its SQE is on the ring: prepared or in the kernel's hands.</summary>
    Submitted,
    /// <summary>Its final CQE arrived: the kernel is done with its buffers; the awaiter may not have run yet.</summary>
    Done,
}

/// <summary>One io_uring operation, pooled per shard under a slot of the shard's <see cref="OperationTable"/>. It
/// carries its prepared SQE (written once, when the call is made, by one of the <see cref="SqeWriter"/>s), so the
/// backlog holds it as is and copies the SQE in when the ring has room; and it decides what each of its CQEs means
/// (<see cref="OnCqe"/>). Kinds are the sealed types below it: read/write, path operations, cancel, multishot.</summary>
/// <remarks>The buffer an operation points the kernel at stays pinned until its final CQE, also after a cancel:
/// only then does <see cref="ReleaseResources"/> run.</remarks>
internal abstract class IoOperation : ShardOperation
{
    /// <summary>The SQE as prepared; its user_data is stamped when it goes on a ring.</summary>
    internal IoUringSqe Sqe;
    private string _what = "";
    private string? _path;
    private SafeHandle? _file; // keeps the descriptor's owner alive (and the fd number unreused) until the final CQE
    private bool _cancelSent;
    private bool _socketErrors; // failures are SocketExceptions, as System.Net.Sockets reports them

    protected IoOperation(ShardExecutor owner, OperationTable table) : base(owner) => Table = table;

    /// <summary>What the current use is, for messages ("accept", "read").</summary>
    public string What => _what;

    /// <summary>The table that owns the operation's slot.</summary>
    public OperationTable Table { get; }

    /// <summary>Index in the shard's operation table: the slot part of the user_data.</summary>
    public int Slot { get; set; }

    /// <summary>The user_data of the current use.</summary>
    public ulong UserData => Scipio.Ring.UserData.Of(Slot, Version);

    /// <summary>How the ring's book counts it: prompt, lingering (may wait indefinitely) or the shard's own.</summary>
    public OpClass Class { get; protected set; } = OpClass.Prompt;

    public OperationState State { get; set; }

    /// <summary>The lane (ring) it was submitted to.</summary>
    public RingLane? Lane { get; set; }

    /// <summary>Links of the lane's backlog (an intrusive list: removal is O(1)).</summary>
    public IoOperation? BacklogPrevious, BacklogNext;

    /// <summary>O_DIRECT I/O, which may go to the poll ring, and the device that decides: (major &lt;&lt; 32) | minor.</summary>
    public bool DirectIo { get; private set; }

    public ulong DeviceKey { get; private set; }

    /// <summary>Set while the disk scheduler handles it (queued, then on the device): it is told when the use ends.</summary>
    public ScheduledIo Scheduled;

    /// <summary>When it was submitted (Clock ns), for the scipio.io.duration histogram; 0 when nobody listens.</summary>
    public long SubmittedNs;

    /// <summary>The kernel picks its buffer from the main ring's provided buffers: it must go to the main ring.</summary>
    public bool SelectsBuffer => (Sqe.Flags & IoUringConst.SqeBufferSelect) != 0;

    /// <summary>Starts a use on behalf of the running queue: what it is (for error messages), the path it concerns,
    /// the file whose descriptor it uses, and its token.</summary>
    protected void Begin(string what, string? path, SafeHandle? file, CancellationToken ct)
    {
        _what = what;
        _path = path;
        _file = file;
        Begin(ct);
    }

    /// <summary>Marks the use as O_DIRECT I/O on the given device, so that routing may send it to the poll ring.</summary>
    public void SetDirect(ulong deviceKey)
    {
        DirectIo = true;
        DeviceKey = deviceKey;
    }

    /// <summary>A socket operation: a failure becomes a <see cref="System.Net.Sockets.SocketException"/>.</summary>
    public void SetSocketErrors() => _socketErrors = true;

    /// <summary>Lingering: the operation may wait indefinitely (a read on a FIFO or socket); it then holds no
    /// completion-queue room.</summary>
    public void SetLingering(bool lingering) => Class = lingering ? OpClass.Lingering : OpClass.Prompt;

    /// <summary>What the CQE means: records a result and answers complete, resubmit or more to come.</summary>
    public abstract CqeAction OnCqe(in IoUringCqe cqe);

    /// <summary>The final CQE was handled: the kernel is done with the operation.</summary>
    public virtual void OnRetired() => ReleaseResources();

    /// <summary>The final CQE came (from <paramref name="ring"/>): records its duration when the meter listens, tells
    /// the disk scheduler, marks the use done and releases it. The backend has already accounted it.</summary>
    public void Finish(RingKind ring)
    {
        if (SubmittedNs != 0) Diagnostics.ScipioMetrics.RecordIo(this, ring);
        if (Scheduled.IsSet) Owner.Disk!.Completed(this);
        State = OperationState.Done;
        OnRetired();
    }

    /// <summary>Ends a use the kernel never saw (canceled before it got there) as if it had answered ECANCELED.</summary>
    public void FinishUnsubmitted()
    {
        if (Scheduled.IsSet) Owner.Disk!.Completed(this);
        OnCqe(new IoUringCqe { UserData = UserData, Res = -Errno.ECANCELED });
        State = OperationState.Done;
        OnRetired();
    }

    /// <summary>Whether a cancel may be sent for the current use: it is on a ring and none was sent yet.</summary>
    public bool TryMarkCancelSent()
    {
        if (State != OperationState.Submitted || _cancelSent) return false;
        _cancelSent = true;
        return true;
    }

    /// <summary>Frees the native scratch a kind keeps between uses: the pool dropped the operation, or the shard is
    /// closing.</summary>
    public virtual void FreeScratch() { }

    /// <summary>Releases what the kernel no longer needs: pins, the file reference. Also at shutdown, for a use
    /// whose awaiter will never run.</summary>
    public virtual void ReleaseResources() => _file = null;

    protected override void OnCancelRequested() => Owner.RequestCancel(this, Version);

    protected override Exception CreateException(int errno, CancellationToken ct) =>
        errno == Errno.ECANCELED && ct.IsCancellationRequested
            ? new OperationCanceledException($"{_what} was canceled.", ct)
            : _socketErrors ? SocketErrors.ToException(errno, _what) : Errno.ToException(errno, _what, _path);

    protected override void Reset()
    {
        ReleaseResources();
        Sqe = default;
        Lane = null;
        State = OperationState.Idle;
        DirectIo = false;
        DeviceKey = 0;
        Class = OpClass.Prompt;
        _cancelSent = false;
        _socketErrors = false;
        SubmittedNs = 0;
        Scheduled = default;
        _what = "";
        _path = null;
    }
}

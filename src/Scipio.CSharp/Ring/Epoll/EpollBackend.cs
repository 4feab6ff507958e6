using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Scipio.Core;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio.Ring.Epoll;

/// <summary>The backend for where io_uring is blocked (Docker's default seccomp profile, gVisor,
/// <c>kernel.io_uring_disabled</c>), after monoio's legacy driver and Seastar's epoll reactor. It takes the same
/// prepared SQEs as <see cref="IoUringBackend"/> and carries each out as the plain system call it describes:
/// <list type="bullet">
/// <item>socket operations are tried at once, without blocking (Glommio's "rushed" path); one that would block waits
/// for its socket's readiness from one edge-triggered epoll instance per shard, and is tried again on each edge;</item>
/// <item>what epoll cannot wait for — regular files, O_DIRECT included, opens, syncs, metadata — runs on a small pool
/// of helper threads per shard (<see cref="HelperThreads"/>), whose results come back through an eventfd;</item>
/// <item>the preemption timer is a timerfd a helper thread waits on (<see cref="PreemptTimerThread"/>): it bumps the
/// word NeedPreempt reads; latency-sensitive completions from the helpers bump it too;</item>
/// <item>timers are the park's epoll_pwait2 timeout; wakes from other threads and shards write the eventfd.</item>
/// </list>
/// There is no latency ring and no poll ring: all I/O is counted as the main ring's, a latency-sensitive queue is
/// preempted by the timer (and by its file completions), and socket readiness is seen at the next loop turn.
/// Shard thread only, except <see cref="Wake"/> and the helpers' <see cref="OnCallDone"/>.</summary>
internal sealed unsafe class EpollBackend : IShardBackend
{
    private const int MaxEvents = 256;

    private readonly OperationTable _operations;
    private readonly int _epollFd;
    private readonly FileDescriptor _eventFd;
    // [0] produced (the low half of the 64-bit signal word: PreemptSignal compares it), [1] timer firings (its high
    // half: see PreemptTimerThread), [2] consumed.
    private readonly uint* _words;
    private uint _timerSeen;
    private readonly PreemptTimerThread _timer;
    private readonly HelperThreads _helpers;

    private readonly (uint Events, int Fd)[] _events = new (uint, int)[MaxEvents];
    private int _eventCount;

    /// <summary>Completions found on the shard thread, handed to their operations at the next reap (never from
    /// inside Submit: io_uring never completes an operation there either).</summary>
    private readonly Queue<(IoOperation Op, ulong UserData, int Res, uint Flags)> _ready = new();
    private readonly ConcurrentQueue<BlockingCall> _callsDone = new();
    private readonly Dictionary<ulong, BlockingCall> _onHelpers = [];
    private readonly Stack<BlockingCall> _callPool = new();
    private readonly Dictionary<int, SocketWaiters> _sockets = [];
    private readonly List<IoOperation> _closesWaiting = []; // closes of descriptors that helpers still use
    private int _socketWaiting;

    private long _submitted, _completed;
    private int _inFlight;
    private int _parked, _wakePending;
    private readonly Lock _wordsGate = new();
    private bool _wordsFreed;
    private long _wakeups;

    /// <summary>The operations waiting for one socket's (or FIFO's) readiness, by direction, in arrival order:
    /// intrusive lists, so that canceling one of many is O(1). A waiting operation is Backlogged: it is in one.</summary>
    private sealed class SocketWaiters
    {
        public OperationList Input, Output;
        public readonly HashSet<IoOperation> Connecting = [];
        public bool Registered, NonBlocking, Pollable;
    }

    public EpollBackend(int shardId, OperationTable operations)
    {
        _operations = operations;
        _words = (uint*)Pinning.AllocZeroed(16);
        _epollFd = EpollCalls.Create();
        try
        {
            int fd = Libc.EventFd(0, Libc.EfdCloexec | Libc.EfdNonblock);
            if (fd < 0) throw Errno.ToException(Libc.LastErrno, "eventfd for waking the shard");
            _eventFd = new FileDescriptor(fd);
            int error = EpollCalls.Control(_epollFd, EpollCalls.CtlAdd, fd, EpollCalls.In);
            if (error != 0) throw Errno.ToException(error, "epoll_ctl for the shard's eventfd");
            PreemptSignal = new PreemptSignal(&_words[0], &_words[2]);
            _timer = new PreemptTimerThread(shardId, (long*)_words);
            _helpers = new HelperThreads(shardId, OnCallDone);
        }
        catch
        {
            Libc.Close(_epollFd);
            _eventFd?.Dispose();
            Pinning.Free((nint)_words);
            throw;
        }
    }

    public PreemptSignal PreemptSignal { get; }

    public bool IoInFlight => _onHelpers.Count + _socketWaiting > 0;

    public bool MustPoll => false;

    public bool CompletionsWaiting => _ready.Count > 0 || !_callsDone.IsEmpty;

    public FixedBuffers? FixedBuffers => null;

    public BackendStats Stats() =>
        new(new RingStats(_submitted, _completed, _inFlight, 0, "epoll"), new RingStats(0, 0, 0, 0, "none"),
            new RingStats(0, 0, 0, 0, "none"), _wakeups, 0, 0);

    // ---- operations ----

    public void Submit(IoOperation op)
    {
        if (op.CancellationRequested)
        {
            op.FinishUnsubmitted(); // canceled before it got here (the token's callback found nothing to cancel)
            return;
        }
        if (Diagnostics.ScipioMetrics.IoDuration.Enabled) op.SubmittedNs = Clock.NowNs;
        op.State = OperationState.Submitted;
        _submitted++;
        _inFlight++;
        Start(op);
    }

    /// <summary>Carries out the operation's SQE: a socket operation is tried now, the rest go to a helper.</summary>
    private void Start(IoOperation op)
    {
        ref var sqe = ref op.Sqe;
        if (PlainSyscalls.IsSocketOperation(sqe.Opcode))
        {
            if ((sqe.Flags & IoUringConst.SqeBufferSelect) != 0) Ready(op, -Errno.EOPNOTSUPP); // no provided buffers here
            else TrySocket(op, Waiters(sqe.Fd));
        }
        else if (sqe.Opcode is Opcode.Read or Opcode.Write && Waiters(sqe.Fd).Pollable) TrySocket(op, Waiters(sqe.Fd));
        else if (sqe.Opcode == Opcode.Nop) Ready(op, 0);
        else if (sqe.Opcode == Opcode.Close && HelpersUse(sqe.Fd)) _closesWaiting.Add(op); // after them: see OnCallsDone
        else ToHelper(op);
    }

    private void Ready(IoOperation op, int res, uint flags = 0) => _ready.Enqueue((op, op.UserData, res, flags));

    private SocketWaiters Waiters(int fd)
    {
        if (!_sockets.TryGetValue(fd, out var waiters))
        {
            // Looked up once per descriptor (forgotten when it is closed): a FIFO's or pipe's reads and writes wait
            // for readiness like a socket's; a regular file's go to the helpers.
            _sockets[fd] = waiters = new SocketWaiters { Pollable = PlainSyscalls.IsPollable(fd) };
        }
        return waiters;
    }

    /// <summary>Tries a socket operation until it would block: a multishot accept takes every connection waiting;
    /// a connect in progress waits for writability and then reads how it ended.</summary>
    private void TrySocket(IoOperation op, SocketWaiters waiters)
    {
        ref var sqe = ref op.Sqe;
        var opcode = sqe.Opcode;
        if (!waiters.NonBlocking && opcode is Opcode.Accept or Opcode.Connect or Opcode.Read or Opcode.Write)
        {
            PlainSyscalls.SetNonBlocking(sqe.Fd);
            waiters.NonBlocking = true;
        }
        while (true)
        {
            int res = waiters.Connecting.Remove(op) ? PlainSyscalls.ConnectResult(sqe.Fd) : PlainSyscalls.TryNonBlocking(sqe);
            if (res == -Errno.EAGAIN || (opcode == Opcode.Connect && res == -PlainSyscalls.EInProgress))
            {
                if (opcode == Opcode.Connect) waiters.Connecting.Add(op);
                Wait(op, waiters, PlainSyscalls.WaitsForInput(opcode));
                return;
            }
            if (opcode == Opcode.Accept && res >= 0)
            {
                Ready(op, res, IoUringConst.CqeFMore); // multishot: one CQE per connection, more to come
                continue;
            }
            Ready(op, res);
            return;
        }
    }

    private void Wait(IoOperation op, SocketWaiters waiters, bool input)
    {
        if (input) waiters.Input.Append(op);
        else waiters.Output.Append(op);
        op.State = OperationState.Backlogged;
        _socketWaiting++;
        if (waiters.Registered) return;
        // Edge-triggered, both directions, once per descriptor: an edge that came before this wait started is
        // reported by the add itself (the kernel checks readiness when it inserts).
        int error = EpollCalls.Control(_epollFd, EpollCalls.CtlAdd, op.Sqe.Fd, EpollCalls.In | EpollCalls.Out | EpollCalls.RdHup | EpollCalls.EdgeTriggered);
        if (error is 0 or Errno.EEXIST) waiters.Registered = true;
        else StopWaiting(op, waiters, -error);
    }

    /// <summary>Takes a waiting operation out of its list and readies it with <paramref name="res"/>.</summary>
    private void StopWaiting(IoOperation op, SocketWaiters waiters, int res)
    {
        if (PlainSyscalls.WaitsForInput(op.Sqe.Opcode)) waiters.Input.Remove(op);
        else waiters.Output.Remove(op);
        _socketWaiting--;
        waiters.Connecting.Remove(op);
        op.State = OperationState.Submitted;
        Ready(op, res);
    }

    /// <summary>A readiness edge: every waiter of that direction tries again, in arrival order.</summary>
    private void OnReadiness(int fd, uint events)
    {
        if (!_sockets.TryGetValue(fd, out var waiters)) return;
        const uint inputEvents = EpollCalls.In | EpollCalls.Err | EpollCalls.Hup | EpollCalls.RdHup;
        const uint outputEvents = EpollCalls.Out | EpollCalls.Err | EpollCalls.Hup;
        if ((events & inputEvents) != 0) Retry(ref waiters.Input, waiters);
        if ((events & outputEvents) != 0) Retry(ref waiters.Output, waiters);
    }

    /// <summary>Tries again the operations waiting now; one that must wait again goes to the back, after them.</summary>
    private void Retry(ref OperationList list, SocketWaiters waiters)
    {
        for (int n = list.Count; n > 0; n--)
        {
            var op = list.TakeFirst();
            _socketWaiting--;
            op.State = OperationState.Submitted;
            TrySocket(op, waiters);
        }
    }

    private void ToHelper(IoOperation op)
    {
        var call = _callPool.Count > 0 ? _callPool.Pop() : new BlockingCall();
        call.Op = op;
        call.UserData = op.UserData;
        call.Sqe = op.Sqe;
        call.LatencySensitive = op.Queue.Latency.IsLatencySensitive;
        _onHelpers[call.UserData] = call;
        _helpers.Queue(call);
    }

    private bool HelpersUse(int fd)
    {
        foreach (var call in _onHelpers.Values)
            if (call.Sqe.Fd == fd) return true;
        return false;
    }

    /// <summary>On a helper thread: a blocking call finished. A latency-sensitive one raises NeedPreempt, as a CQE on
    /// the latency ring would; then the shard is woken if it sleeps.</summary>
    private void OnCallDone(BlockingCall call)
    {
        // The signal before the call is published: once the shard can see the call it may drain, dispose and free
        // the words. A call still running when Drain stops waiting ends after that: the gate keeps its increment
        // out of freed memory (another shard's words, perhaps, where it would raise a preemption for nothing).
        if (call.LatencySensitive)
            lock (_wordsGate)
                if (!_wordsFreed) Interlocked.Increment(ref *(long*)_words);
        _callsDone.Enqueue(call); // a full fence before Wake reads _parked
        Wake();
    }

    public void Cancel(IoOperation op)
    {
        if (op.State == OperationState.Backlogged)
        {
            StopWaiting(op, _sockets[op.Sqe.Fd], -Errno.ECANCELED);
            return;
        }
        if (op.State != OperationState.Submitted) return;
        if (_onHelpers.TryGetValue(op.UserData, out var call))
        {
            call.Cancel(); // ends at once if no helper has started it; a running syscall finishes
            return;
        }
        if (_closesWaiting.Remove(op)) Ready(op, -Errno.ECANCELED);
    }

    public void CancelDescriptor(int fd)
    {
        if (_sockets.TryGetValue(fd, out var waiters))
        {
            while (waiters.Input.Head is { } op) StopWaiting(op, waiters, -Errno.ECANCELED);
            while (waiters.Output.Head is { } op) StopWaiting(op, waiters, -Errno.ECANCELED);
            if (waiters.Registered) EpollCalls.Control(_epollFd, EpollCalls.CtlDel, fd, 0);
            _sockets.Remove(fd);
        }
        foreach (var call in _onHelpers.Values)
            if (call.Sqe.Fd == fd) call.Cancel();
    }

    // ---- completion ----

    public void Flush() { } // operations start when submitted

    public bool Reap()
    {
        if (_eventCount == 0 && _socketWaiting > 0) _eventCount = EpollCalls.Wait(_epollFd, _events, 0);
        for (int i = 0; i < _eventCount; i++)
        {
            var (events, fd) = _events[i];
            if (fd == _eventFd.Fd)
            {
                EpollCalls.ReadCounter(fd); // non-blocking: clears the count
                _wakeups++;
                Volatile.Write(ref _wakePending, 0);
            }
            else OnReadiness(fd, events);
        }
        _eventCount = 0;
        OnCallsDone();
        // What is ready now; what it makes ready (a resubmitted rest of a short write) waits for the next reap.
        for (int n = _ready.Count; n > 0; n--)
        {
            var (op, userData, res, flags) = _ready.Dequeue();
            // A multishot accept may be waiting again (Backlogged) with connections queued here.
            if (op.UserData == userData && op.State is OperationState.Submitted or OperationState.Backlogged) Deliver(op, res, flags);
        }
        // Acknowledge NeedPreempt: whatever raised it is reaped, or will be at the next turn. One read of the word
        // gives the signal and the firings together (see PreemptTimerThread).
        long word = Volatile.Read(ref *(long*)_words);
        _words[2] = (uint)word;
        uint fired = (uint)(word >> 32);
        bool timerFired = fired != _timerSeen;
        _timerSeen = fired;
        return timerFired;
    }

    private void OnCallsDone()
    {
        bool any = false;
        while (_callsDone.TryDequeue(out var call))
        {
            any = true;
            _onHelpers.Remove(call.UserData);
            Ready(call.Op, call.Result);
            call.Reset();
            _callPool.Push(call);
        }
        if (!any || _closesWaiting.Count == 0) return;
        for (int i = _closesWaiting.Count - 1; i >= 0; i--)
        {
            var close = _closesWaiting[i];
            if (HelpersUse(close.Sqe.Fd)) continue;
            _closesWaiting.RemoveAt(i);
            ToHelper(close);
        }
    }

    /// <summary>Hands a result to its operation as its CQE, and does what the operation answers.</summary>
    private void Deliver(IoOperation op, int res, uint flags)
    {
        switch (op.OnCqe(new IoUringCqe { UserData = op.UserData, Res = res, Flags = flags }))
        {
            case CqeAction.Resubmit:
                Start(op); // the SQE was re-prepared: the rest of a short write, a multishot request re-armed
                break;
            case CqeAction.Complete:
                _inFlight--;
                _completed++;
                op.Finish(RingKind.Main);
                break;
        }
    }

    public bool SetPreemptTimer(PreemptTimerDecision decision)
    {
        if (!decision.IsKeep) _timer.Arm(decision.afterNs);
        return true;
    }

    // ---- park and wake ----

    public void Park(long timeoutNs, Func<bool> hasWork)
    {
        Volatile.Write(ref _parked, 1);
        Interlocked.MemoryBarrier();
        bool work = hasWork() || _ready.Count > 0 || !_callsDone.IsEmpty;
        _eventCount = EpollCalls.Wait(_epollFd, _events, work ? 0 : timeoutNs == Time.Never ? -1 : Math.Max(1, timeoutNs));
        Volatile.Write(ref _parked, 0);
    }

    public void Wake()
    {
        if (Volatile.Read(ref _parked) == 0 || Interlocked.Exchange(ref _wakePending, 1) != 0) return;
        bool added = false;
        try
        {
            _eventFd.DangerousAddRef(ref added);
            Libc.WriteEventFd(_eventFd.Fd, 1);
        }
        catch (ObjectDisposedException)
        {
            // The shard is gone: nothing to wake.
        }
        finally
        {
            if (added) _eventFd.DangerousRelease();
        }
    }

    public void Trim() => _operations.Trim();

    // ---- shutdown ----

    /// <summary>Forgets the operations waiting for sockets (the kernel holds nothing of theirs) and waits, bounded,
    /// for the helpers to finish what they run, so no buffer is written after the shard is gone.</summary>
    public void Drain()
    {
        foreach (var (fd, waiters) in _sockets)
            if (waiters.Registered) EpollCalls.Control(_epollFd, EpollCalls.CtlDel, fd, 0);
        _sockets.Clear();
        _socketWaiting = 0;
        _closesWaiting.Clear();
        foreach (var call in _onHelpers.Values) call.Cancel();
        long giveUp = Clock.NowNs + 1_000_000_000;
        while (_onHelpers.Count > 0 && Clock.NowNs < giveUp)
        {
            while (_callsDone.TryDequeue(out var call)) _onHelpers.Remove(call.UserData);
            if (_onHelpers.Count > 0) Thread.Sleep(1);
        }
        _ready.Clear();
        foreach (var op in _operations.All()) op.ReleaseResources();
    }

    public void Dispose()
    {
        _helpers.Stop();
        _timer.Dispose();
        _eventFd.Dispose();
        Libc.Close(_epollFd);
        _operations.FreeAll();
        lock (_wordsGate) _wordsFreed = true;
        Pinning.Free((nint)_words);
    }
}

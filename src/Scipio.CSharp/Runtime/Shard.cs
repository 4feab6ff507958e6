using Scipio.Core;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio;

/// <summary>Shards: start one (<see cref="Run{T}"/>, <see cref="Start{T}"/>) and, from code running on it, spawn
/// work, create task queues, yield, sleep and read its state. A shard is one dedicated thread, optionally pinned to
/// a CPU, with its own io_uring rings; everything on it runs cooperatively, one thing at a time, without locks.</summary>
/// <remarks>Members other than Run and Start must be called on a shard; elsewhere they throw
/// <see cref="InvalidOperationException"/>.</remarks>
public static class Shard
{
    private static int s_nextId = -1;

    /// <summary>Starts a shard on a new thread, runs <paramref name="main"/> on it and blocks until it completes;
    /// returns its result or rethrows its exception (with its own type).</summary>
    /// <remarks>The shard stops when <paramref name="main"/> completes: work it spawned and did not await is
    /// abandoned, as in Glommio and Seastar: its I/O is canceled and reaped, and its Tasks end canceled (awaiting
    /// one throws <see cref="TaskCanceledException"/>), so nobody waits on them forever — await what
    /// must finish. An exception thrown out of a callback posted to a task queue (not out of an async method, whose
    /// exceptions go to its Task) stops the shard, and Run rethrows it.</remarks>
    /// <exception cref="IoUringUnavailableException">io_uring cannot be used by this process.</exception>
    /// <exception cref="ArgumentException">The placement names a CPU the process may not use.</exception>
    /// <exception cref="InvalidOperationException">Called on a shard: it would block that shard (start one with
    /// <see cref="Start{T}"/> and await its Completion instead).</exception>
    public static T Run<T>(Func<Task<T>> main, ShardOptions? options = null)
    {
        ShardExecutor.ThrowIfOnShard("Shard.Run");
        return Start(main, options).Join();
    }

    /// <summary>Starts a shard on a new thread, runs <paramref name="main"/> on it and blocks until it completes;
    /// rethrows its exception (with its own type).</summary>
    /// <exception cref="IoUringUnavailableException">io_uring cannot be used by this process.</exception>
    /// <exception cref="ArgumentException">The placement names a CPU the process may not use.</exception>
    /// <exception cref="InvalidOperationException">Called on a shard.</exception>
    public static void Run(Func<Task> main, ShardOptions? options = null)
    {
        ShardExecutor.ThrowIfOnShard("Shard.Run");
        Start(main, options).Join();
    }

    /// <summary>Starts a shard on a new thread and runs <paramref name="main"/> on it; the shard stops when it
    /// completes. Failures to start (io_uring unavailable, a bad placement) fault the handle's Completion.</summary>
    public static ShardHandle<T> Start<T>(Func<Task<T>> main, ShardOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(main);
        return new ShardHandle<T>(StartThread<T>(main, options ?? new ShardOptions()));
    }

    /// <summary>Starts a shard on a new thread and runs <paramref name="main"/> on it; the shard stops when it
    /// completes.</summary>
    public static ShardHandle Start(Func<Task> main, ShardOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(main);
        return new ShardHandle(StartThread<bool>(main, options ?? new ShardOptions()));
    }

    private static Task<T> StartThread<T>(Func<Task> main, ShardOptions options)
    {
        int n = Interlocked.Increment(ref s_nextId); // for the thread's name only: a lone shard's Id is 0
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() => ShardThread(main, options, done))
        {
            IsBackground = true,
            Name = options.Name ?? $"shard-{n}",
        };
        thread.UnsafeStart();
        return done.Task;
    }

    private static void ShardThread<T>(Func<Task> main, ShardOptions options, TaskCompletionSource<T> done)
    {
        ShardExecutor executor;
        try
        {
            int pinned = Pin(options.Placement);
            executor = new ShardExecutor(0, options, pinned);
        }
        catch (Exception e)
        {
            done.SetException(e);
            return;
        }
        Task<T> mainTask;
        try
        {
            mainTask = executor.Spawn<T>(executor.DefaultQueue, main);
            mainTask.ContinueWith(static (_, s) => ((ShardExecutor)s!).RequestStop(), executor,
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            executor.RunLoop();
        }
        catch (Exception e)
        {
            executor.Dispose();
            done.SetException(e);
            return;
        }
        executor.Dispose();
        done.TrySetFromTask(mainTask); // keeps a canceled main's own OperationCanceledException
    }

    /// <summary>Applies the placement to the calling (new shard) thread; returns the CPU when pinned to one.</summary>
    private static int Pin(Placement placement)
    {
        var allowed = Cpus.AllowedAtStart;
        var decision = Affinity.resolve(placement.Spec, allowed);
        switch (decision)
        {
            case PinDecision.Invalid invalid:
                throw new ArgumentException($"Placement {placement} cannot be honoured: {invalid.reason}", "options");
            case PinDecision.PinTo pin:
                Cpus.PinCurrentThread(pin.cpus);
                return pin.cpus.Length == 1 ? pin.cpus[0] : -1;
            default:
                // A thread inherits its creator's mask, which may be a pinned shard's: reset it to the process's.
                Cpus.PinCurrentThread(allowed);
                return -1;
        }
    }

    // ---- on a shard ----

    /// <summary>Runs <paramref name="work"/> on this shard, in the current task queue, once the queue gets to it
    /// (not inline). Its exceptions fault the returned Task.</summary>
    public static Task<T> Spawn<T>(Func<Task<T>> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var e = ShardExecutor.Require("Shard.Spawn");
        return e.Spawn<T>(e.CurrentQueue, work);
    }

    /// <summary>Runs <paramref name="work"/> on this shard, in the current task queue, once the queue gets to it.</summary>
    public static Task Spawn(Func<Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var e = ShardExecutor.Require("Shard.Spawn");
        return e.Spawn<bool>(e.CurrentQueue, work);
    }

    /// <summary>Runs <paramref name="work"/> in <paramref name="queue"/>, which must belong to this shard.</summary>
    public static Task<T> SpawnInto<T>(TaskQueue queue, Func<Task<T>> work)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(work);
        return ShardExecutor.Require("Shard.SpawnInto").Spawn<T>(queue, work);
    }

    /// <summary>Runs <paramref name="work"/> in <paramref name="queue"/>, which must belong to this shard.</summary>
    public static Task SpawnInto(TaskQueue queue, Func<Task> work)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(work);
        return ShardExecutor.Require("Shard.SpawnInto").Spawn<bool>(queue, work);
    }

    /// <summary>Runs a blocking function (a synchronous file API, a native call, CPU-heavy work) on a helper thread
    /// so the shard keeps running; awaiting the Task on the shard resumes in the calling task queue.</summary>
    /// <remarks>Helper threads are shared by all shards, start on demand (at most twice the CPU count, at least
    /// 4) and are not pinned. Exceptions thrown by <paramref name="work"/> fault the Task.</remarks>
    public static Task<T> SpawnBlocking<T>(Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        ShardExecutor.Require("Shard.SpawnBlocking");
        var blocking = new BlockingWork<T>(work);
        BlockingPool.Shared.Queue(blocking);
        return blocking.Task;
    }

    /// <summary>Creates a task queue on this shard: work spawned into it gets CPU in proportion to
    /// <paramref name="shares"/> while other queues are runnable, and is preempted for as
    /// <paramref name="latency"/> says.</summary>
    /// <exception cref="ArgumentException">The name is empty or already used on this shard.</exception>
    public static TaskQueue CreateTaskQueue(string name, Shares shares, Latency latency) =>
        ShardExecutor.Require("Shard.CreateTaskQueue").CreateQueue(name, shares, latency);

    /// <summary>The task queue running now (the shard's "default" queue outside any).</summary>
    public static TaskQueue CurrentTaskQueue => ShardExecutor.Require("Shard.CurrentTaskQueue").CurrentQueue;

    /// <summary>True when the calling code runs on a shard. Never throws.</summary>
    public static bool IsOnShard => ShardExecutor.Current is not null;

    /// <summary>This shard's index in its pool, 0 to <see cref="ShardPool.Count"/> − 1; 0 for a lone shard.</summary>
    public static int Id => ShardExecutor.Require("Shard.Id").Id;

    /// <summary>The pool this shard belongs to; null for a lone shard (<see cref="Run{T}"/>, <see cref="Start{T}"/>).</summary>
    public static ShardPool? Pool => ShardExecutor.Require("Shard.Pool").Pool;

    /// <summary>Runs <paramref name="work"/> on shard <paramref name="shard"/> of this shard's pool, in its default
    /// task queue; the result or exception (with its own type) comes back here, to this shard and task queue.
    /// Calls travel through the pool's lock-free rings, batched: one wake of a parked target per batch.</summary>
    /// <exception cref="InvalidOperationException">Not on a shard, or on a lone shard (it has no pool).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="shard"/> is not 0 to Pool.Count − 1.</exception>
    /// <exception cref="ObjectDisposedException">The pool is being disposed.</exception>
    public static Task<T> SubmitTo<T>(int shard, Func<Task<T>> work) => RequirePool("Shard.SubmitTo").SubmitTo(shard, work);

    /// <summary>Runs <paramref name="work"/> on shard <paramref name="shard"/> of this shard's pool; its exception
    /// (with its own type) comes back here.</summary>
    /// <exception cref="InvalidOperationException">Not on a shard, or on a lone shard (it has no pool).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="shard"/> is not 0 to Pool.Count − 1.</exception>
    public static Task SubmitTo(int shard, Func<Task> work) => RequirePool("Shard.SubmitTo").SubmitTo(shard, work);

    private static ShardPool RequirePool(string member) =>
        ShardExecutor.Require(member).Pool
        ?? throw new InvalidOperationException($"{member} needs a shard of a ShardPool; this is a lone shard (Shard.Run or Shard.Start). Start a pool with ShardPool.Start, or Spawn on this shard.");

    /// <summary>The CPU this shard is pinned to; for a shard not pinned to exactly one CPU, the CPU it is running
    /// on at this instant.</summary>
    public static int Cpu
    {
        get
        {
            var e = ShardExecutor.Require("Shard.Cpu");
            return e.PinnedCpu >= 0 ? e.PinnedCpu : Cpus.Current();
        }
    }

    /// <summary>True when the running task queue should give the CPU back: its time slice is over, a
    /// latency-sensitive queue is waiting, or work arrived from another thread. A memory read, no syscall.</summary>
    public static bool NeedPreempt => ShardExecutor.Require("Shard.NeedPreempt").NeedPreempt;

    /// <summary>The cheap preemption point for long loops: completes synchronously (costing a few nanoseconds)
    /// unless <see cref="NeedPreempt"/>, in which case the rest of the method waits at the back of its queue while
    /// the scheduler runs others.</summary>
    public static ValueTask YieldIfNeeded()
    {
        var e = ShardExecutor.Require("Shard.YieldIfNeeded");
        return e.NeedPreempt ? new ValueTask(e.YieldSource, 0) : default;
    }

    /// <summary>Always yields: the rest of the method goes to the back of its queue and the scheduler picks again.</summary>
    public static YieldAwaitable Yield() => new(ShardExecutor.Require("Shard.Yield"));

    /// <summary>Completes after <paramref name="delay"/>, never earlier. The shard keeps running other work; when
    /// idle it blocks in io_uring with a timeout at the next deadline (no .NET timer). Zero completes on the next
    /// turn of the run loop; <see cref="Timeout.InfiniteTimeSpan"/> waits for cancellation.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The delay is negative (other than infinite).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled.</exception>
    public static ValueTask Sleep(TimeSpan delay, CancellationToken cancellationToken = default) =>
        ShardExecutor.Require("Shard.Sleep").Sleep(delay, cancellationToken);

    // ---- timers: entries in the shard's timer heap, never the ThreadPool's timer ----

    /// <summary>A timer that ticks every <paramref name="period"/> on this shard, the first tick one period from now:
    /// <c>while (await timer.WaitForNextTickAsync(ct)) { … }</c>, like .NET's <see cref="PeriodicTimer"/>.
    /// Ticks keep to their grid (the k-th due k periods from now), so a loop that keeps up does not drift.</summary>
    /// <remarks>Dispose it when done: a pending wait then ends with false. See <see cref="ShardPeriodicTimer"/>.</remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="period"/> is zero, negative or
    /// <see cref="Timeout.InfiniteTimeSpan"/>.</exception>
    /// <exception cref="InvalidOperationException">Not on a shard.</exception>
    public static ShardPeriodicTimer CreatePeriodicTimer(TimeSpan period) =>
        new(ShardExecutor.Require("Shard.CreatePeriodicTimer"), period);

    /// <summary>Runs <paramref name="work"/> with a token that is canceled at the deadline, <paramref name="timeout"/>
    /// from now. The Task has the work's outcome if it ends first; otherwise, at the deadline (never before), the token
    /// is canceled and the Task faults with <see cref="TimeoutException"/>.</summary>
    /// <remarks>
    /// <para>The work starts at once, inline, in the calling task queue. The deadline is one entry in the shard's
    /// timer heap, removed as soon as the work ends: finishing in time leaves no timer behind.</para>
    /// <para>At the deadline the caller does not wait for the work to notice: the TimeoutException comes at once,
    /// and the work, its token canceled, ends in its own time; its outcome is observed and dropped. Operations of the
    /// shard given the token (Sleep, file and socket I/O) end promptly with <see cref="OperationCanceledException"/>.
    /// A work item that completes before the deadline wins even if the deadline passes before its continuation runs.</para>
    /// <para><see cref="Timeout.InfiniteTimeSpan"/> sets no deadline (the token is never canceled); zero times out
    /// unless the work completes synchronously.</para>
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative (other than
    /// infinite).</exception>
    /// <exception cref="InvalidOperationException">Not on a shard.</exception>
    public static Task<T> WithTimeout<T>(TimeSpan timeout, Func<CancellationToken, Task<T>> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var e = ShardExecutor.Require("Shard.WithTimeout");
        long timeoutNs = TimeoutNs(timeout);
        if (timeoutNs == Time.Never) return Unbounded(work);
        return new TimeoutRun<T>(e, timeout).Start(timeoutNs, work);
    }

    /// <summary>Runs <paramref name="work"/> with a token that is canceled at the deadline, <paramref name="timeout"/>
    /// from now; faults with <see cref="TimeoutException"/> at the deadline (never before) unless the work ended
    /// first. See <see cref="WithTimeout{T}"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative (other than
    /// infinite).</exception>
    /// <exception cref="InvalidOperationException">Not on a shard.</exception>
    public static Task WithTimeout(TimeSpan timeout, Func<CancellationToken, Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var e = ShardExecutor.Require("Shard.WithTimeout");
        long timeoutNs = TimeoutNs(timeout);
        if (timeoutNs == Time.Never) return Unbounded(work);
        return new TimeoutRun<bool>(e, timeout).Start(timeoutNs, work);
    }

    private static long TimeoutNs(TimeSpan timeout)
    {
        if (timeout == Timeout.InfiniteTimeSpan) return Time.Never;
        if (timeout < TimeSpan.Zero)
            ThrowHelper.ThrowArgumentOutOfRange(nameof(timeout), timeout, "The timeout must be zero or positive, or Timeout.InfiniteTimeSpan for none.");
        return Clock.ToNs(timeout);
    }

    // No deadline: the work as it is, a synchronous throw faulting the Task as it would with one.
    private static Task<T> Unbounded<T>(Func<CancellationToken, Task<T>> work)
    {
        try
        {
            return work(CancellationToken.None) ?? throw NullWork();
        }
        catch (Exception ex)
        {
            return Task.FromException<T>(ex);
        }
    }

    private static Task Unbounded(Func<CancellationToken, Task> work)
    {
        try
        {
            return work(CancellationToken.None) ?? throw NullWork();
        }
        catch (Exception ex)
        {
            return Task.FromException(ex);
        }
    }

    private static InvalidOperationException NullWork() =>
        new("The function given to Shard.WithTimeout returned null instead of a Task.");

    /// <summary>Runs <paramref name="action"/> once, <paramref name="delay"/> from now (never earlier), in
    /// <paramref name="queue"/> (default: the calling task queue) — Glommio's <c>TimerActionOnce</c>. Cancel it with
    /// <see cref="ShardTimerAction.Cancel"/>; its <see cref="ShardTimerAction.Completion"/> says how it ended.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative or infinite.</exception>
    /// <exception cref="ArgumentException"><paramref name="queue"/> belongs to another shard.</exception>
    /// <exception cref="InvalidOperationException">Not on a shard.</exception>
    public static ShardTimerAction RunAfter(TimeSpan delay, Action action, TaskQueue? queue = null) =>
        Once("Shard.RunAfter", delay, action, null, queue);

    /// <summary>Runs the asynchronous <paramref name="action"/> once, <paramref name="delay"/> from now, in
    /// <paramref name="queue"/> (default: the calling task queue); <see cref="ShardTimerAction.Completion"/> ends with
    /// its Task.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative or infinite.</exception>
    /// <exception cref="ArgumentException"><paramref name="queue"/> belongs to another shard.</exception>
    /// <exception cref="InvalidOperationException">Not on a shard.</exception>
    public static ShardTimerAction RunAfter(TimeSpan delay, Func<Task> action, TaskQueue? queue = null) =>
        Once("Shard.RunAfter", delay, null, action, queue);

    /// <summary>Runs <paramref name="action"/> once at <paramref name="when"/> (at once if it has passed), in
    /// <paramref name="queue"/> (default: the calling task queue). The wall-clock time is turned into a delay now: a
    /// later change of the system clock does not move the timer.</summary>
    /// <exception cref="ArgumentException"><paramref name="queue"/> belongs to another shard.</exception>
    /// <exception cref="InvalidOperationException">Not on a shard.</exception>
    public static ShardTimerAction RunAt(DateTimeOffset when, Action action, TaskQueue? queue = null) =>
        Once("Shard.RunAt", Until(when), action, null, queue);

    /// <summary>Runs the asynchronous <paramref name="action"/> once at <paramref name="when"/> (at once if it has
    /// passed), in <paramref name="queue"/> (default: the calling task queue).</summary>
    /// <exception cref="ArgumentException"><paramref name="queue"/> belongs to another shard.</exception>
    /// <exception cref="InvalidOperationException">Not on a shard.</exception>
    public static ShardTimerAction RunAt(DateTimeOffset when, Func<Task> action, TaskQueue? queue = null) =>
        Once("Shard.RunAt", Until(when), null, action, queue);

    /// <summary>Runs <paramref name="action"/> every <paramref name="period"/>, the first time one period from now, in
    /// <paramref name="queue"/> (default: the calling task queue), until <see cref="ShardTimerAction.Cancel"/> or until
    /// it throws — Glommio's <c>TimerActionRepeat</c>. Runs keep to the grid of a <see cref="ShardPeriodicTimer"/>
    /// and never overlap.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="period"/> is zero, negative or infinite.</exception>
    /// <exception cref="ArgumentException"><paramref name="queue"/> belongs to another shard.</exception>
    /// <exception cref="InvalidOperationException">Not on a shard.</exception>
    public static ShardTimerAction RunEvery(TimeSpan period, Action action, TaskQueue? queue = null) =>
        Repeat(period, action, null, queue);

    /// <summary>Runs the asynchronous <paramref name="action"/> every <paramref name="period"/> in
    /// <paramref name="queue"/> (default: the calling task queue), until canceled or until it fails; a run that takes
    /// longer than a period delays the next (runs never overlap) and the ticks missed meanwhile are dropped.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="period"/> is zero, negative or infinite.</exception>
    /// <exception cref="ArgumentException"><paramref name="queue"/> belongs to another shard.</exception>
    /// <exception cref="InvalidOperationException">Not on a shard.</exception>
    public static ShardTimerAction RunEvery(TimeSpan period, Func<Task> action, TaskQueue? queue = null) =>
        Repeat(period, null, action, queue);

    private static TimeSpan Until(DateTimeOffset when)
    {
        var delay = when - DateTimeOffset.UtcNow;
        return delay < TimeSpan.Zero ? TimeSpan.Zero : delay;
    }

    private static ShardTimerAction Once(string member, TimeSpan delay, Action? action, Func<Task>? asyncAction, TaskQueue? queue)
    {
        if (action is null && asyncAction is null) throw new ArgumentNullException(nameof(action));
        var e = ShardExecutor.Require(member);
        long delayNs = TimerArguments.DelayNs(delay, nameof(delay));
        long now = Clock.NowNs;
        return new ShardTimerAction(e, queue, action, asyncAction, Time.addSaturating(now, delayNs), 0, now);
    }

    private static ShardTimerAction Repeat(TimeSpan period, Action? action, Func<Task>? asyncAction, TaskQueue? queue)
    {
        if (action is null && asyncAction is null) throw new ArgumentNullException(nameof(action));
        var e = ShardExecutor.Require("Shard.RunEvery");
        long periodNs = TimerArguments.PeriodNs(period, nameof(period));
        return new ShardTimerAction(e, queue, action, asyncAction, 0, periodNs, Clock.NowNs);
    }

    /// <summary>A snapshot of this shard's counters: runtime, work items run, parks, preemptions, each ring's
    /// submissions and completions, and each task queue's counters.</summary>
    public static ShardStats Stats => ShardExecutor.Require("Shard.Stats").Stats();
}

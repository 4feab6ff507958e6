using Scipio.Core;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio;

/// <summary>A timer that ticks every <see cref="Period"/> on the shard's own timer heap — the shape of .NET's
/// <see cref="PeriodicTimer"/>, without the ThreadPool's timer thread: <c>while (await timer.WaitForNextTickAsync())
/// { … }</c>. Create one with <see cref="Shard.CreatePeriodicTimer"/>; it belongs to that shard.</summary>
/// <remarks>
/// <para>Ticks fall on a fixed grid: the k-th is due k periods after the timer was created (or its period last
/// set), never earlier, however late the previous wake was — so a loop that keeps up does not drift. A tick that
/// came while nobody waited is kept: the next <see cref="WaitForNextTickAsync"/> completes at once. Several missed
/// ticks count as one, and the timer then waits for the first grid point after now (as <see cref="PeriodicTimer"/>
/// coalesces them).</para>
/// <para>One wait at a time. A pending wait is one timer-heap entry, armed when the wait starts and removed at once
/// when it is canceled or the timer is disposed; a waiting timer allocates nothing per tick. When the shard is idle
/// it blocks in io_uring with a timeout at the next tick.</para>
/// </remarks>
public sealed class ShardPeriodicTimer : IDisposable
{
    private readonly ShardExecutor _owner;
    private readonly ShardWaiter<bool> _waiter;
    private readonly TickTarget _target;
    private readonly int _id; // the timer-table slot: the heap entry of a pending wait
    private PeriodicSchedule _schedule;
    private volatile bool _disposed;

    internal ShardPeriodicTimer(ShardExecutor owner, TimeSpan period)
    {
        long periodNs = TimerArguments.PeriodNs(period, nameof(period));
        _owner = owner;
        _schedule = Periodic.start(Clock.NowNs, periodNs);
        _target = new TickTarget(this);
        _id = owner.AddTimer(_target);
        // A canceled wait ends at once: nothing of the caller's is in the kernel's hands, only the heap entry.
        _waiter = new ShardWaiter<bool>(owner, "ShardPeriodicTimer.WaitForNextTickAsync", w =>
        {
            _owner.DisarmTimer(_id);
            w.TrySetCanceled();
        });
    }

    /// <summary>The time between ticks. Setting it (on the timer's shard) restarts the grid: the next tick is one new
    /// period from now, and a wait in progress waits for it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to zero, a negative or an infinite period.</exception>
    /// <exception cref="InvalidOperationException">Set off the timer's shard.</exception>
    /// <exception cref="ObjectDisposedException">Set after <see cref="Dispose"/>.</exception>
    public TimeSpan Period
    {
        get => Clock.FromNs(_schedule.PeriodNs);
        set
        {
            long periodNs = TimerArguments.PeriodNs(value, nameof(value));
            RequireOwner("ShardPeriodicTimer.Period (set)");
            ObjectDisposedException.ThrowIf(_disposed, this);
            long now = Clock.NowNs;
            _schedule = Periodic.start(now, periodNs);
            if (_waiter.IsWaiting) _owner.ArmTimer(_id, _schedule.DueNs, now);
        }
    }

    /// <summary>Waits for the next tick: true when it came, false once the timer is disposed (a wait pending at
    /// <see cref="Dispose"/> ends with false too). Completes at once when a tick came since the last wait.</summary>
    /// <remarks>The continuation runs in the task queue that called, as every await on a shard does. Allocates
    /// nothing once the timer exists.</remarks>
    /// <exception cref="InvalidOperationException">Called off the timer's shard, or while another wait on this timer
    /// is pending.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled; the timer
    /// keeps ticking and may be waited on again.</exception>
    public ValueTask<bool> WaitForNextTickAsync(CancellationToken cancellationToken = default)
    {
        RequireOwner("ShardPeriodicTimer.WaitForNextTickAsync");
        if (_waiter.IsWaiting)
            throw new InvalidOperationException("A WaitForNextTickAsync on this ShardPeriodicTimer is already pending; await it before calling again (one wait at a time, as with PeriodicTimer).");
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<bool>(cancellationToken);
        if (_disposed) return new ValueTask<bool>(false);
        long now = Clock.NowNs;
        if (Periodic.isDue(now, _schedule))
        {
            _schedule = Periodic.advance(now, _schedule);
            return new ValueTask<bool>(true);
        }
        _owner.ArmTimer(_id, _schedule.DueNs, now);
        return _waiter.Wait(cancellationToken);
    }

    /// <summary>Stops the timer: a pending <see cref="WaitForNextTickAsync"/> ends with false, as do all later ones,
    /// and its timer-heap entry and slot are freed at once. Safe to call twice, and from any thread (off the shard it
    /// takes effect when the shard next runs its loop).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (ShardExecutor.Current == _owner) Stop();
        else _owner.PostFromAnotherThread(null, new WorkItem((Action)Stop, null));
    }

    private void Stop()
    {
        _owner.RemoveTimer(_id);
        _waiter.TrySetResult(false);
    }

    /// <summary>The pending wait's tick is due (the run loop): the schedule moves past now and the wait ends.</summary>
    private void OnTick(long nowNs)
    {
        _schedule = Periodic.advance(nowNs, _schedule);
        _waiter.TrySetResult(true);
    }

    private void RequireOwner(string member)
    {
        var current = ShardExecutor.Current;
        if (current == _owner) return;
        if (current is null) ThrowHelper.ThrowNotOnShard(member);
        throw new InvalidOperationException($"{member}: this ShardPeriodicTimer belongs to the shard that created it, not to this one. Create a timer on each shard that needs one.");
    }

    // The heap's handle on the timer, kept out of the public type's members.
    private sealed class TickTarget(ShardPeriodicTimer timer) : ITimerTarget
    {
        public void OnTimerDue(long nowNs) => timer.OnTick(nowNs);
    }
}

/// <summary>Argument checks shared by the shard's timers.</summary>
internal static class TimerArguments
{
    /// <summary>A period in nanoseconds: positive and finite.</summary>
    public static long PeriodNs(TimeSpan period, string paramName)
    {
        if (period == Timeout.InfiniteTimeSpan)
            ThrowHelper.ThrowArgumentOutOfRange(paramName, period, "A period must be finite: Timeout.InfiniteTimeSpan would never tick.");
        if (period <= TimeSpan.Zero)
            ThrowHelper.ThrowArgumentOutOfRange(paramName, period, "A period must be positive.");
        return Clock.ToNs(period);
    }

    /// <summary>A delay in nanoseconds: zero or positive, and finite.</summary>
    public static long DelayNs(TimeSpan delay, string paramName)
    {
        if (delay == Timeout.InfiniteTimeSpan)
            ThrowHelper.ThrowArgumentOutOfRange(paramName, delay, "A delay must be finite: Timeout.InfiniteTimeSpan would never come.");
        if (delay < TimeSpan.Zero)
            ThrowHelper.ThrowArgumentOutOfRange(paramName, delay, "A delay must be zero or positive.");
        return Clock.ToNs(delay);
    }
}

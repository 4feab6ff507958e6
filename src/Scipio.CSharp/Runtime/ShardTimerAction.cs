using Scipio.Core;
using Scipio.Runtime;

namespace Scipio;

/// <summary>An action that runs in a task queue at a given time (<see cref="Shard.RunAfter(TimeSpan, Action, TaskQueue?)"/>,
/// <see cref="Shard.RunAt(DateTimeOffset, Action, TaskQueue?)"/>) or every period
/// (<see cref="Shard.RunEvery(TimeSpan, Action, TaskQueue?)"/>), until <see cref="Cancel"/> — Glommio's
/// <c>TimerActionOnce</c> and <c>TimerActionRepeat</c>. Its time is an entry in the shard's timer heap, removed at
/// once by <see cref="Cancel"/>.</summary>
/// <remarks>
/// <para>The action runs as a work item of its task queue — <see cref="Shard.CurrentTaskQueue"/> inside it is that
/// queue, and it is charged to it — when the queue is next scheduled after the time comes (never before).</para>
/// <para>A repeating action ticks on the grid of a <see cref="ShardPeriodicTimer"/> (the k-th run is due k periods
/// after <see cref="Shard.RunEvery(TimeSpan, Action, TaskQueue?)"/>). Runs never overlap: an asynchronous action's
/// next run waits for its Task; if that took longer than a period, the next run follows at once and the ticks missed
/// meanwhile are dropped.</para>
/// <para>A synchronous action costs nothing per run beyond the call; an asynchronous one, its own Task.</para>
/// </remarks>
public sealed class ShardTimerAction : IDisposable
{
    private enum State : byte { Armed, Queued, Running, Done }

    private readonly ShardExecutor _owner;
    private readonly TaskQueue _queue;
    private readonly Action? _action;
    private readonly Func<Task>? _asyncAction;
    private readonly bool _repeats;
    private readonly Target _target;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action _onRunCompleted;
    private PeriodicSchedule _schedule;
    private int _id;
    private State _state;
    private bool _cancelRequested;
    private Task? _run;
    private long _runs;

    internal ShardTimerAction(ShardExecutor owner, TaskQueue? queue, Action? action, Func<Task>? asyncAction, long firstDueNs, long periodNs, long nowNs)
    {
        queue ??= owner.CurrentQueue;
        if (queue.Executor != owner)
            throw new ArgumentException($"Task queue '{queue.Name}' belongs to another shard; a timer action runs in a queue of the shard that creates it.", nameof(queue));
        _owner = owner;
        _queue = queue;
        _action = action;
        _asyncAction = asyncAction;
        _repeats = periodNs > 0;
        if (_repeats) _schedule = Periodic.start(nowNs, periodNs);
        _onRunCompleted = OnRunCompleted;
        _target = new Target(this);
        _id = owner.AddTimer(_target);
        _state = State.Armed;
        owner.ArmTimer(_id, _repeats ? _schedule.DueNs : firstDueNs, nowNs);
    }

    /// <summary>Completes when the timer is done: successfully once a one-shot action has run, canceled after
    /// <see cref="Cancel"/> (once a run in progress has finished), faulted with the action's exception (a repeating
    /// action stops at its first).</summary>
    /// <remarks>Continuations run asynchronously: awaiting it on the shard resumes in the awaiting task queue.</remarks>
    public Task Completion => _completion.Task;

    /// <summary>How many times the action has started.</summary>
    public long RunCount => Volatile.Read(ref _runs);

    /// <summary>True while the action may still run: false once a one-shot action has started, and once the timer is
    /// canceled or its action has thrown.</summary>
    public bool IsActive => _state != State.Done && !_cancelRequested && (_repeats || _state != State.Running);

    /// <summary>Stops the timer: the action does not run again (a run in progress finishes on its own), the
    /// timer-heap entry is removed at once, and <see cref="Completion"/> ends canceled. Does nothing once the timer is
    /// done (a one-shot action that already ran stays completed). Safe to call twice, from the action itself, and from
    /// any thread (off the shard it takes effect when the shard next runs its loop).</summary>
    public void Cancel()
    {
        if (ShardExecutor.Current == _owner) CancelOnShard();
        else _owner.PostFromAnotherThread(null, new WorkItem((Action)CancelOnShard, null));
    }

    /// <summary>The same as <see cref="Cancel"/>.</summary>
    public void Dispose() => Cancel();

    private void CancelOnShard()
    {
        switch (_state)
        {
            case State.Done:
                return;
            case State.Running:
                _cancelRequested = true; // the run's end finishes the timer
                return;
            default: // armed, or queued to run: it will not
                Finish(null, canceled: true);
                return;
        }
    }

    /// <summary>The time came (run loop): queue the run in the action's task queue.</summary>
    private void OnDue(long nowNs)
    {
        if (_state != State.Armed) return;
        if (_repeats) _schedule = Periodic.advance(nowNs, _schedule);
        _state = State.Queued;
        _queue.EnqueueLocal(new WorkItem(_target, null));
    }

    /// <summary>The queue got to it.</summary>
    private void Run()
    {
        if (_state != State.Queued) return; // canceled while queued
        _state = State.Running;
        Volatile.Write(ref _runs, _runs + 1);
        Task? run = null;
        try
        {
            if (_action is not null) _action();
            else run = _asyncAction!() ?? throw new InvalidOperationException("The timer action returned null instead of a Task.");
        }
        catch (Exception e)
        {
            Finish(e, canceled: false);
            return;
        }
        if (run is null || run.IsCompleted) RunEnded(run);
        else
        {
            _run = run;
            run.GetAwaiter().UnsafeOnCompleted(_onRunCompleted); // in the queue's context: resumes here
        }
    }

    private void OnRunCompleted()
    {
        var run = _run;
        _run = null;
        RunEnded(run);
    }

    private void RunEnded(Task? run)
    {
        if (run is { IsFaulted: true }) Finish(run.Exception!.InnerExceptions.Count == 1 ? run.Exception.InnerException! : run.Exception, canceled: false);
        else if (run is { IsCanceled: true } || _cancelRequested) Finish(null, canceled: true);
        else if (!_repeats) Finish(null, canceled: false);
        else
        {
            long now = Clock.NowNs;
            _state = State.Armed;
            // The tick came during the run: it runs again at once (next loop turn), the grid moving past now.
            _owner.ArmTimer(_id, Periodic.isDue(now, _schedule) ? now : _schedule.DueNs, now);
        }
    }

    private void Finish(Exception? error, bool canceled)
    {
        if (_state == State.Done) return; // the slot is freed once
        _state = State.Done;
        _owner.RemoveTimer(_id);
        if (error is not null) _completion.TrySetException(error);
        else if (canceled) _completion.TrySetCanceled();
        else _completion.TrySetResult();
    }

    // The heap's and the queue's handle on the action, kept out of the public type's members.
    private sealed class Target(ShardTimerAction action) : ITimerTarget, IShardWorkItem
    {
        public void OnTimerDue(long nowNs) => action.OnDue(nowNs);

        public void Execute() => action.Run();
    }
}

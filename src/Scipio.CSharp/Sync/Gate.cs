using System.Diagnostics.CodeAnalysis;
using Scipio.Runtime;

namespace Scipio.Sync;

/// <summary>Orderly shutdown for work on one shard: each piece of work enters the gate (<see cref="Enter"/>) and
/// disposes its pass when done; <see cref="CloseAsync"/> stops new entries and completes once every pass has been
/// returned.</summary>
/// <remarks>
/// <para><b>Shard-local.</b> The gate belongs to the shard that created it: entering, closing and disposing a pass
/// must happen there (elsewhere: <see cref="InvalidOperationException"/>). The Task from <see cref="CloseAsync"/>
/// may be awaited anywhere.</para>
/// <para><b>Closed means refusing.</b> Once closing has begun, <see cref="Enter"/> throws
/// <see cref="InvalidOperationException"/> — the gate's state forbids the call, as a completed channel's writer
/// does; it is not disposed, so not <see cref="ObjectDisposedException"/>. <see cref="TryEnter"/> returns false
/// instead. Passes given out before closing stay valid until disposed.</para>
/// <para>Disposing a pass twice does nothing (passes are pooled: once disposed, drop it). Entering allocates
/// nothing in steady state.</para>
/// </remarks>
public sealed class Gate : IReleaseTarget
{
    private readonly ShardExecutor _owner;
    private readonly ReleaserPool _passes;
    private int _count;
    private Task? _closed;
    private TaskCompletionSource? _closing;

    /// <summary>Creates an open gate owned by the calling shard.</summary>
    /// <exception cref="InvalidOperationException">Not called on a shard.</exception>
    public Gate()
    {
        _owner = ShardAffinity.Creator(nameof(Gate));
        _passes = new ReleaserPool(_owner, this, "Disposing a Gate pass");
    }

    /// <summary>The passes given out and not yet disposed.</summary>
    /// <exception cref="InvalidOperationException">Read off the gate's shard.</exception>
    public int Count
    {
        get
        {
            ShardAffinity.Check(_owner, "Gate.Count");
            return _count;
        }
    }

    /// <summary>Whether <see cref="CloseAsync"/> has been called: the gate lets nobody in any more.</summary>
    /// <exception cref="InvalidOperationException">Read off the gate's shard.</exception>
    public bool IsClosing
    {
        get
        {
            ShardAffinity.Check(_owner, "Gate.IsClosing");
            return _closed is not null;
        }
    }

    /// <summary>Enters the gate: the pass returned keeps <see cref="CloseAsync"/> from completing until it is
    /// disposed.</summary>
    /// <returns>The pass; dispose it when the work is done (a second Dispose does nothing).</returns>
    /// <exception cref="InvalidOperationException">The gate is closing or closed; or called off its shard.</exception>
    public IDisposable Enter()
    {
        if (!TryEnter(out var pass))
            throw new InvalidOperationException("The gate is closed: Gate.CloseAsync has been called, so it lets no new work in.");
        return pass;
    }

    /// <summary>Enters the gate unless it is closing.</summary>
    /// <param name="pass">The pass when entered (dispose it when the work is done); null otherwise.</param>
    /// <returns>False once <see cref="CloseAsync"/> has been called.</returns>
    /// <exception cref="InvalidOperationException">Called off the gate's shard.</exception>
    public bool TryEnter([NotNullWhen(true)] out IDisposable? pass)
    {
        ShardAffinity.Check(_owner, "Gate.Enter");
        if (_closed is not null)
        {
            pass = null;
            return false;
        }
        _count++;
        pass = _passes.Rent(0);
        return true;
    }

    /// <summary>Closes the gate: from now on it lets nobody in; the Task completes when every pass given out has
    /// been disposed (at once if none is out). Calling it again returns the same Task.</summary>
    /// <remarks>Awaiters on the shard resume in their task queue, after the last pass's Dispose returns, not inside
    /// it.</remarks>
    /// <exception cref="InvalidOperationException">Called off the gate's shard.</exception>
    public Task CloseAsync()
    {
        ShardAffinity.Check(_owner, "Gate.CloseAsync");
        if (_closed is null)
        {
            if (_count == 0) _closed = Task.CompletedTask;
            else
            {
                _closing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _closed = _closing.Task;
            }
        }
        return _closed;
    }

    void IReleaseTarget.Release(int kind)
    {
        _count--;
        if (_count == 0 && _closing is not null)
        {
            _closing.SetResult();
            _closing = null;
        }
    }
}

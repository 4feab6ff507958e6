using Scipio.Core;

namespace Scipio;

/// <summary>CPU shares of a task queue: while several queues are runnable, each gets CPU time in proportion to
/// its shares (a queue with 300 gets three times the CPU of one with 100).</summary>
public sealed class Shares
{
    private readonly int _static;
    private readonly ISharesController? _controller;

    private Shares(int value, ISharesController? controller)
    {
        _static = value;
        _controller = controller;
    }

    /// <summary>The fewest shares a queue may have (1).</summary>
    public const int MinValue = Scipio.Core.ShareMath.Min;

    /// <summary>The most shares a queue may have (1000).</summary>
    public const int MaxValue = Scipio.Core.ShareMath.Max;

    /// <summary>A fixed number of shares, 1..1000.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="shares"/> is outside 1..1000.</exception>
    public static Shares Static(int shares)
    {
        if (!Scipio.Core.ShareMath.isValid(shares))
            throw new ArgumentOutOfRangeException(nameof(shares), shares, $"Shares must be between {MinValue} and {MaxValue}.");
        return new Shares(shares, null);
    }

    /// <summary>Shares decided by a controller, read each time the queue is picked to run (values outside
    /// 1..1000 are clamped).</summary>
    public static Shares Dynamic(ISharesController controller)
    {
        ArgumentNullException.ThrowIfNull(controller);
        return new Shares(0, controller);
    }

    /// <summary>True for shares decided by an <see cref="ISharesController"/>.</summary>
    public bool IsDynamic => _controller is not null;

    /// <summary>The shares now: the fixed value, or what the controller says (clamped to 1..1000).</summary>
    public int Current => _controller is null ? _static : Math.Clamp(_controller.Shares, MinValue, MaxValue);

    /// <inheritdoc/>
    public override string ToString() => _controller is null ? $"Static({_static})" : $"Dynamic({Current})";
}

/// <summary>Decides a task queue's shares as it runs, for example from a backlog's length
/// (<see cref="Shares.Dynamic"/>).</summary>
public interface ISharesController
{
    /// <summary>The shares the queue should have now, 1..1000. Called on the shard; keep it cheap.</summary>
    int Shares { get; }
}

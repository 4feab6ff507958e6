using Scipio.Core;

namespace Scipio;

/// <summary>Latency class of a task queue.</summary>
public readonly struct Latency : IEquatable<Latency>
{
    private readonly long _budgetNs; // 0: not important

    private Latency(long budgetNs) => _budgetNs = budgetNs;

    /// <summary>Throughput work: it runs when its shares say so, and may wait a full preempt interval.</summary>
    public static Latency NotImportant => default;

    /// <summary>Latency-sensitive work: once runnable it should run within <paramref name="budget"/>; the shard
    /// preempts other queues earlier to make that so.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="budget"/> is not positive.</exception>
    public static Latency Matters(TimeSpan budget)
    {
        if (budget <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(budget), budget, "A latency budget must be positive.");
        return new Latency(Time.ofTicksSaturating(budget.Ticks)); // TimeSpan.MaxValue stays a (very long) budget
    }

    /// <summary>True for <see cref="Matters"/>.</summary>
    public bool IsLatencySensitive => _budgetNs > 0;

    /// <summary>The budget of a latency-sensitive class; <see cref="TimeSpan.Zero"/> for NotImportant.</summary>
    public TimeSpan Budget => _budgetNs == Time.Never ? TimeSpan.MaxValue : TimeSpan.FromTicks(_budgetNs / Time.NanosPerTick);

    internal LatencyClass ToCore() => _budgetNs > 0 ? LatencyClass.NewMatters(_budgetNs) : LatencyClass.NotImportant;

    /// <inheritdoc/>
    public bool Equals(Latency other) => _budgetNs == other._budgetNs;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Latency other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => _budgetNs.GetHashCode();

    /// <inheritdoc/>
    public override string ToString() => IsLatencySensitive ? $"Matters({Budget.TotalMilliseconds} ms)" : "NotImportant";

    /// <summary>Equality.</summary>
    public static bool operator ==(Latency left, Latency right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(Latency left, Latency right) => !left.Equals(right);
}

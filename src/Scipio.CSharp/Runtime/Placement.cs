using Scipio.Core;

namespace Scipio;

/// <summary>Where a shard's thread runs. Pinning happens only within the CPUs the process was allowed when it
/// started (its affinity mask, cgroup cpuset).</summary>
public sealed class Placement
{
    private Placement(PlacementSpec spec) => Spec = spec;

    internal PlacementSpec Spec { get; }

    /// <summary>Not pinned: the thread may run on any CPU the process may use.</summary>
    public static Placement Unbound { get; } = new(PlacementSpec.Unbound);

    /// <summary>Pinned to one CPU.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cpu"/> is negative.</exception>
    public static Placement Fixed(int cpu)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cpu);
        return new(PlacementSpec.NewFixed(cpu));
    }

    /// <summary>Pinned to a set of CPUs; the kernel picks among them.</summary>
    /// <exception cref="ArgumentException"><paramref name="cpus"/> is empty or has a negative CPU.</exception>
    public static Placement Fenced(params int[] cpus)
    {
        ArgumentNullException.ThrowIfNull(cpus);
        if (cpus.Length == 0) throw new ArgumentException("A fenced placement needs at least one CPU.", nameof(cpus));
        if (cpus.Any(c => c < 0)) throw new ArgumentException("CPU numbers cannot be negative.", nameof(cpus));
        return new(PlacementSpec.NewFenced((int[])cpus.Clone()));
    }

    /// <inheritdoc/>
    public override string ToString() => Spec switch
    {
        PlacementSpec.Fixed f => $"Fixed({f.cpu})",
        PlacementSpec.Fenced f => $"Fenced({string.Join(",", f.cpus)})",
        _ => "Unbound",
    };
}

using Scipio.Core;
using Scipio.Interop;
using CorePlacement = Scipio.Core.PoolPlacement;

namespace Scipio;

/// <summary>Where the shards of a pool run. Placements use only the CPUs that are online and that the process was
/// allowed when it started (its affinity mask, cgroup cpuset); they read the machine's topology (cores, packages,
/// NUMA nodes) from sysfs when the pool starts.</summary>
/// <remarks>A pool's shard count defaults to one per CPU the placement may use: the CPUs given to
/// <see cref="Fenced"/>, <see cref="MaxSpread"/> or <see cref="MaxPack"/>, one per set given to
/// <see cref="Custom"/>, otherwise every CPU the process may use. A placement that cannot be honoured — a CPU that is
/// offline or not allowed, more one-CPU shards than CPUs — fails when the pool starts, with an
/// <see cref="ArgumentException"/> that says why.</remarks>
public sealed class PoolPlacement
{
    private PoolPlacement(PoolPlacementSpec spec) => Spec = spec;

    internal PoolPlacementSpec Spec { get; }

    /// <summary>No shard pinned: every shard's thread may run on any CPU the process may use.</summary>
    public static PoolPlacement Unbound { get; } = new(PoolPlacementSpec.Unbound);

    /// <summary>Every shard pinned to the same set of CPUs; the kernel picks among them for each.</summary>
    /// <remarks>The number of shards defaults to the number of distinct CPUs given; more may be asked for.</remarks>
    /// <exception cref="ArgumentException"><paramref name="cpus"/> is empty or has a negative CPU.</exception>
    public static PoolPlacement Fenced(params int[] cpus)
    {
        ArgumentNullException.ThrowIfNull(cpus);
        if (cpus.Length == 0) throw new ArgumentException("A fenced placement needs at least one CPU.", nameof(cpus));
        return new(PoolPlacementSpec.NewFenced(Checked(cpus, nameof(cpus))));
    }

    /// <summary>One CPU per shard, as far apart as possible: alternating across NUMA nodes, within a node across
    /// packages, then across cores; a core's second hardware thread only once every core has a shard.</summary>
    /// <param name="cpus">The CPUs to choose from; null (the default) for every CPU the process may use.</param>
    /// <remarks>The default placement of a pool. Shard i gets the i-th CPU of that
    /// order, so adding shards never moves the first ones. The number of shards defaults to the number of CPUs to
    /// choose from and cannot exceed it.</remarks>
    /// <exception cref="ArgumentException"><paramref name="cpus"/> is empty (pass null for every CPU) or has a
    /// negative CPU.</exception>
    public static PoolPlacement MaxSpread(IEnumerable<int>? cpus = null) =>
        new(PoolPlacementSpec.NewMaxSpread(Choices(cpus, "MaxSpread")));

    /// <summary>One CPU per shard, as close together as possible: on the fewest cores (a core's hardware threads
    /// filled first), then the rest of the package, then of the NUMA node.</summary>
    /// <param name="cpus">The CPUs to choose from; null (the default) for every CPU the process may use.</param>
    /// <remarks>For shards that share data through caches. The number of shards defaults to the number of CPUs to
    /// choose from and cannot exceed it.</remarks>
    /// <exception cref="ArgumentException"><paramref name="cpus"/> is empty (pass null for every CPU) or has a
    /// negative CPU.</exception>
    public static PoolPlacement MaxPack(IEnumerable<int>? cpus = null) =>
        new(PoolPlacementSpec.NewMaxPack(Choices(cpus, "MaxPack")));

    /// <summary>Shard i pinned to the i-th set of CPUs (the kernel picks among a set's CPUs). Sets may overlap.</summary>
    /// <param name="cpuSets">One non-empty set per shard.</param>
    /// <remarks>The pool has exactly as many shards as there are sets.</remarks>
    /// <exception cref="ArgumentException"><paramref name="cpuSets"/> is empty, or a set is null, empty or has a
    /// negative CPU.</exception>
    public static PoolPlacement Custom(IEnumerable<IEnumerable<int>> cpuSets)
    {
        ArgumentNullException.ThrowIfNull(cpuSets);
        var sets = new List<int[]>();
        foreach (var set in cpuSets)
        {
            if (set is null)
                throw new ArgumentException($"The CPU set of shard {sets.Count} is null.", nameof(cpuSets));
            int[] cpus = Checked([.. set], nameof(cpuSets));
            if (cpus.Length == 0)
                throw new ArgumentException(
                    $"The CPU set of shard {sets.Count} is empty: every shard of a custom placement needs at least one CPU (use PoolPlacement.Unbound for unpinned shards).",
                    nameof(cpuSets));
            sets.Add(cpus);
        }
        if (sets.Count == 0) throw new ArgumentException("A custom placement needs one CPU set per shard; none was given.", nameof(cpuSets));
        return new(PoolPlacementSpec.NewCustom([.. sets]));
    }

    /// <summary>The CPU set of each shard, one entry per shard, for a pool of <paramref name="shards"/> shards (null:
    /// the placement's default count) on this machine. An empty set means "not pinned".</summary>
    /// <exception cref="ArgumentException">(parameter "options") the placement cannot be honoured here.</exception>
    internal int[][] Resolve(int? shards) => Resolve(shards, Topology.Read(), Cpus.AllowedAtStart);

    /// <summary><see cref="Resolve(int?)"/> on a given machine: <paramref name="topology"/> its online CPUs,
    /// <paramref name="allowed"/> the CPUs the process may use.</summary>
    internal int[][] Resolve(int? shards, CpuInfo[] topology, int[] allowed)
    {
        int count = shards ?? CorePlacement.defaultShardsFor(Spec, topology, allowed);
        return CorePlacement.place(Spec, count, topology, allowed) switch
        {
            PoolDecision.Placed placed => placed.cpuSets,
            PoolDecision.Invalid invalid =>
                throw new ArgumentException($"Pool placement {this} cannot be honoured: {invalid.reason}", "options"),
            _ => throw new InvalidOperationException("Unknown pool decision."),
        };
    }

    /// <summary>The number of shards a pool has by default: one per CPU the process may use (online and allowed), at
    /// least 1.</summary>
    internal static int DefaultShards() => CorePlacement.defaultShards(Topology.Read(), Cpus.AllowedAtStart);

    /// <inheritdoc/>
    public override string ToString() => Spec switch
    {
        PoolPlacementSpec.Fenced f => $"Fenced({string.Join(",", f.cpus)})",
        PoolPlacementSpec.MaxSpread s => $"MaxSpread({string.Join(",", s.cpus)})",
        PoolPlacementSpec.MaxPack p => $"MaxPack({string.Join(",", p.cpus)})",
        PoolPlacementSpec.Custom c => $"Custom({string.Join(" ", c.cpuSets.Select(set => $"[{string.Join(",", set)}]"))})",
        _ => "Unbound",
    };

    /// <summary>The CPUs to choose from: null means all (an empty array for the core); an explicit empty list is a
    /// mistake, not a request for every CPU.</summary>
    private static int[] Choices(IEnumerable<int>? cpus, string name)
    {
        if (cpus is null) return [];
        int[] chosen = Checked([.. cpus], "cpus");
        if (chosen.Length == 0)
            throw new ArgumentException($"{name} was given no CPUs to choose from; pass null for every CPU the process may use.", "cpus");
        return chosen;
    }

    /// <summary>A copy of <paramref name="cpus"/>, refused when a CPU number is negative.</summary>
    private static int[] Checked(int[] cpus, string paramName)
    {
        if (cpus.Any(c => c < 0)) throw new ArgumentException("CPU numbers cannot be negative.", paramName);
        return (int[])cpus.Clone();
    }
}

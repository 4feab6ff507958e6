using Scipio.Interop;

namespace Scipio;

/// <summary>Where the shards of a pool run (temporary: replaced by the topology-aware placement).</summary>
public sealed class PoolPlacement
{
    private readonly string _name;
    private readonly int[]? _cpus;

    private PoolPlacement(string name, int[]? cpus)
    {
        _name = name;
        _cpus = cpus;
    }

    /// <summary>No shard pinned.</summary>
    public static PoolPlacement Unbound { get; } = new("Unbound", null);

    /// <summary>One CPU per shard, spread.</summary>
    public static PoolPlacement MaxSpread(IEnumerable<int>? cpus = null) => new("MaxSpread", cpus?.ToArray());

    /// <summary>The CPU sets of <paramref name="shards"/> shards (null: one per allowed CPU); an empty set: unpinned.</summary>
    internal int[][] Resolve(int? shards)
    {
        var allowed = _cpus ?? Cpus.AllowedAtStart;
        int n = shards ?? allowed.Length;
        if (_name == "Unbound") return Enumerable.Range(0, n).Select(_ => Array.Empty<int>()).ToArray();
        if (n > allowed.Length)
            throw new ArgumentException($"{n} shards asked for, but only {allowed.Length} CPUs are allowed.", "options");
        return Enumerable.Range(0, n).Select(i => new[] { allowed[i] }).ToArray();
    }

    /// <inheritdoc/>
    public override string ToString() => _name;
}

namespace Scipio;

/// <summary>How a <see cref="ShardPool"/> is started. Setters validate.</summary>
/// <remarks>Defaults: <see cref="Shards"/> null (one shard per CPU the process may use); <see cref="Placement"/>
/// <see cref="PoolPlacement.MaxSpread"/> over those CPUs; <see cref="PerShard"/> a default <see cref="ShardOptions"/>.</remarks>
public sealed class ShardPoolOptions
{
    private int? _shards;
    private PoolPlacement _placement = PoolPlacement.MaxSpread();
    private ShardOptions _perShard = new();

    /// <summary>How many shards; null (the default) starts one per CPU the process may use. 1 to 4096.</summary>
    public int? Shards
    {
        get => _shards;
        set => _shards = value is null or (>= 1 and <= 4096)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "A pool has 1 to 4096 shards (null: one per allowed CPU).");
    }

    /// <summary>Where the shards run; default <see cref="PoolPlacement.MaxSpread"/> (one CPU each, spread over NUMA
    /// nodes, packages and cores). A placement that pins each shard to one CPU accepts at most as many shards as
    /// the process may use CPUs.</summary>
    public PoolPlacement Placement
    {
        get => _placement;
        set => _placement = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>The options every shard starts with (ring size, preempt interval, spinning…). Its
    /// <see cref="ShardOptions.Placement"/> is ignored: the pool's <see cref="Placement"/> decides; its
    /// <see cref="ShardOptions.Name"/>, when set, is suffixed with each shard's index.</summary>
    public ShardOptions PerShard
    {
        get => _perShard;
        set => _perShard = value ?? throw new ArgumentNullException(nameof(value));
    }
}

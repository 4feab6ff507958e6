namespace Scipio.Hosting.Transport;

/// <summary>A connection feature of the Scipio transport: the shard that owns the connection, and the task queue its
/// work runs in. Visible through <c>HttpContext.Features</c> (Kestrel looks connection features up there).</summary>
internal interface IShardConnectionFeature
{
    /// <summary>The owning shard's index in the pool.</summary>
    int Shard { get; }

    /// <summary>The task queue the connection's pipes resume in.</summary>
    TaskQueue Queue { get; }
}

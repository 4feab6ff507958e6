namespace Scipio.Sync;

/// <summary>What a <see cref="Releaser"/> gives back when disposed: a read or write hold of a lock, a gate's
/// pass. Called on the owner's shard, once per hold.</summary>
internal interface IReleaseTarget
{
    /// <summary>Ends one hold of the given kind.</summary>
    void Release(int kind);
}

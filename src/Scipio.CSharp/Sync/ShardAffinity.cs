using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Scipio.Runtime;

namespace Scipio.Sync;

/// <summary>The shard-ownership check every shard-local primitive makes on entry: one thread-static read and a
/// compare on the hot path, the message built out of line.</summary>
internal static class ShardAffinity
{
    /// <summary>The shard running on this thread, which becomes the owner of a primitive created here.</summary>
    public static ShardExecutor Creator(string type) => ShardExecutor.Require($"new {type}()");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Check(ShardExecutor owner, string member)
    {
        if (ShardExecutor.Current != owner) ThrowWrongShard(owner, member);
    }

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowWrongShard(ShardExecutor owner, string member)
    {
        var current = ShardExecutor.Current;
        string where = current is null ? "a thread that is not a shard" : $"shard {current.Id}";
        throw new InvalidOperationException(
            $"{member} was called from {where}, but the object belongs to shard {owner.Id}, the shard that created it. " +
            "Scipio.Sync primitives are shard-local (no locks, no atomics): use them only on their own shard; to " +
            "coordinate shards, send messages (Scipio.Channels) instead.");
    }
}

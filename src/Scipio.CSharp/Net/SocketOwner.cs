using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio.Net;

/// <summary>The check every socket call makes on entry: on the shard that owns the socket, and not disposed.</summary>
internal static class SocketOwner
{
    /// <summary>Throws unless on <paramref name="owner"/> with <paramref name="fd"/> open; returns the descriptor.</summary>
    public static int Check(ShardExecutor owner, FileDescriptor fd, string kind, string what)
    {
        CheckShard(owner, kind, what);
        if (fd.IsClosed) ThrowHelper.ThrowObjectDisposed(kind);
        return fd.Fd;
    }

    public static void CheckShard(ShardExecutor owner, string kind, string what)
    {
        var current = ShardExecutor.Current;
        if (current == owner) return;
        if (current is null) ThrowHelper.ThrowNotOnShard($"{kind}.{what}");
        throw new InvalidOperationException($"This {kind} belongs to shard {owner.Id}; {what} was called on shard {current.Id}. " +
            "A socket is served by the ring of the shard that made it: use it there (each shard of a pool binds its own listener; ReusePort lets them share a port).");
    }
}

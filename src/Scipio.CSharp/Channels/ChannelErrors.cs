using System.Diagnostics.CodeAnalysis;
using System.Threading.Channels;

namespace Scipio.Channels;

/// <summary>The exceptions channels throw, built the way System.Threading.Channels builds them, so code written
/// against .NET's channels sees the same types.</summary>
internal static class ChannelErrors
{
    /// <summary>Stands for "completed without an error" where a completion error is kept.</summary>
    public static readonly Exception DoneWriting = new ChannelClosedException();

    /// <summary>What ReadAsync and WriteAsync throw on a completed channel: <see cref="ChannelClosedException"/>,
    /// with the completion error inside (a cancellation is rethrown as is).</summary>
    public static Exception Closed(Exception? completion) => completion switch
    {
        null => new ChannelClosedException(),
        OperationCanceledException oce => oce,
        _ when ReferenceEquals(completion, DoneWriting) => new ChannelClosedException(),
        _ => new ChannelClosedException(completion),
    };

    /// <summary>The completion error a wait reports, or null for a completion without one.</summary>
    public static Exception? ErrorOf(Exception completion) => ReferenceEquals(completion, DoneWriting) ? null : completion;

    [DoesNotReturn]
    public static void ThrowWrongShard(string channel, string member, string side) =>
        throw new InvalidOperationException(
            $"{channel}.{member} was called {(Runtime.ShardExecutor.Current is { } e ? $"on shard {e.Id}" : "off any shard")}, but " +
            $"the channel's {side} is bound to another shard (the one that first used it). Each side of a Scipio channel " +
            "is used from one shard: use SharedChannel (or ChannelMesh) to cross shards.");
}

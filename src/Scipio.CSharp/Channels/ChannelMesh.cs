using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace Scipio.Channels;

/// <summary>Meshes of <see cref="SharedChannel"/>s: every participant gets a writer to every other participant and
/// a reader from each.</summary>
public static class ChannelMesh
{
    /// <summary>A full mesh of <paramref name="shards"/> participants: one bounded SharedChannel of
    /// <paramref name="capacity"/> items per ordered pair (i → j, i ≠ j). Each participant takes its end with
    /// <see cref="ChannelMesh{T}.Join(int)"/>, on its own shard.</summary>
    /// <remarks>May be called anywhere; nothing binds until a participant's shard uses its end.</remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="shards"/> is less than 1 or
    /// <paramref name="capacity"/> less than 1.</exception>
    public static ChannelMesh<T> Full<T>(int shards, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shards, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        return new ChannelMesh<T>(shards, capacity);
    }
}

/// <summary>A full mesh of SPSC channels between <see cref="Peers"/> participants, made by
/// <see cref="ChannelMesh.Full{T}"/>.</summary>
/// <remarks>Thread-safe to share: each participant calls <see cref="Join(int)"/> once, with its own id, and uses
/// the returned <see cref="MeshPeer{T}"/> from its own shard only (each channel's writer binds to the sender's
/// shard, its reader to the receiver's, on first use).</remarks>
public sealed class ChannelMesh<T>
{
    private readonly Channel<T>?[] _channels;
    private readonly int[] _joined;

    internal ChannelMesh(int shards, int capacity)
    {
        Peers = shards;
        _channels = new Channel<T>?[shards * shards];
        _joined = new int[shards];
        for (int from = 0; from < shards; from++)
            for (int to = 0; to < shards; to++)
                if (from != to) _channels[from * shards + to] = new SharedChannel<T>(capacity);
    }

    /// <summary>The number of participants; ids are 0 .. Peers − 1.</summary>
    public int Peers { get; }

    internal Channel<T> Between(int from, int to) => _channels[from * Peers + to]!;

    /// <summary>Takes participant <paramref name="id"/>'s end of the mesh.</summary>
    /// <remarks>Once per id. Use the returned peer on one shard: its writers and readers bind to the shard that
    /// first uses them.</remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is not 0 .. Peers − 1.</exception>
    /// <exception cref="InvalidOperationException">That id has already joined.</exception>
    public MeshPeer<T> Join(int id)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(id);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(id, Peers);
        if (Interlocked.Exchange(ref _joined[id], 1) != 0)
            throw new InvalidOperationException($"Participant {id} has already joined this mesh; each id joins once.");
        return new MeshPeer<T>(this, id);
    }

    /// <summary>Joins as the calling shard: <c>Join(Shard.Id)</c>.</summary>
    /// <remarks>In a shard pool a shard's id is its index; lone shards started with Shard.Start may share an id,
    /// so pass ids explicitly there.</remarks>
    /// <exception cref="InvalidOperationException">Not called on a shard, or that id has already joined.</exception>
    public MeshPeer<T> Join() => Join(Shard.Id);
}

/// <summary>One participant's end of a <see cref="ChannelMesh{T}"/>: a writer to each other participant and a reader
/// from each.</summary>
/// <remarks>Use on one shard. Per sender, order is kept (each pair is its own FIFO); across senders there is no
/// order. Wakes are those of <see cref="SharedChannel"/>: a participant is woken only when it waits.</remarks>
public sealed class MeshPeer<T>
{
    private const int FairBatch = 64;
    private readonly ChannelMesh<T> _mesh;

    internal MeshPeer(ChannelMesh<T> mesh, int id)
    {
        _mesh = mesh;
        Id = id;
    }

    /// <summary>This participant's id.</summary>
    public int Id { get; }

    /// <summary>The number of participants in the mesh (this one included).</summary>
    public int Peers => _mesh.Peers;

    /// <summary>The writer of the channel from this participant to <paramref name="peer"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="peer"/> is this participant or out of range.</exception>
    public ChannelWriter<T> WriterTo(int peer) => _mesh.Between(Id, CheckPeer(peer)).Writer;

    /// <summary>The reader of the channel from <paramref name="peer"/> to this participant.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="peer"/> is this participant or out of range.</exception>
    public ChannelReader<T> ReaderFrom(int peer) => _mesh.Between(CheckPeer(peer), Id).Reader;

    /// <summary>Completes every channel from this participant (no more writes), with <paramref name="error"/> if
    /// given; receivers see it once they have read what was sent.</summary>
    public void CompleteAll(Exception? error = null)
    {
        for (int p = 0; p < Peers; p++)
            if (p != Id) WriterTo(p).TryComplete(error);
    }

    /// <summary>Reads from every other participant until all of them have completed their channel to this one: up
    /// to 64 items from one peer, then the next, round-robin, so no sender starves the others.</summary>
    /// <remarks>Awaits resume on this shard, in the consumer's task queue. While every channel is empty it waits
    /// on all of them at once (a Task per waiting channel, allocated only when it goes idle). A completion with an
    /// exception is thrown from the enumeration. Abandoning the enumeration while it waits leaves those waits
    /// pending: enumerate once, to the end (or cancel through <paramref name="cancellationToken"/>).</remarks>
    public async IAsyncEnumerable<(int From, T Item)> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        int n = Peers;
        var readers = new ChannelReader<T>?[n];
        var waits = new Task<bool>?[n];
        var pending = new List<Task>(n);
        int open = 0;
        for (int p = 0; p < n; p++)
            if (p != Id)
            {
                readers[p] = ReaderFrom(p);
                open++;
            }
        int start = 0;
        while (open > 0)
        {
            bool any = false;
            for (int k = 0; k < n; k++)
            {
                int p = (start + k) % n;
                var reader = readers[p];
                if (reader is null) continue;
                for (int i = 0; i < FairBatch && reader.TryRead(out T? item); i++)
                {
                    any = true;
                    yield return (p, item!);
                }
            }
            start = (start + 1) % n;
            if (any) continue;

            // Nothing anywhere: wait on each channel that has no wait pending yet.
            pending.Clear();
            for (int p = 0; p < n; p++)
            {
                if (readers[p] is not { } reader) continue;
                waits[p] ??= reader.WaitToReadAsync(cancellationToken).AsTask();
                var wait = waits[p]!;
                if (wait.IsCompleted)
                {
                    waits[p] = null;
                    if (!await wait)
                    {
                        readers[p] = null;
                        open--;
                    }
                    any = true;
                }
                else pending.Add(wait);
            }
            if (any || pending.Count == 0) continue;
            await Task.WhenAny(pending);
        }
    }

    private int CheckPeer(int peer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(peer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(peer, Peers);
        if (peer == Id) throw new ArgumentOutOfRangeException(nameof(peer), peer, "A participant has no channel to itself.");
        return peer;
    }
}

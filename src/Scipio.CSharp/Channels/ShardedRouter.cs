namespace Scipio.Channels;

/// <summary>Routes items to the shard that owns their key, in the spirit of Glommio's <c>Sharded</c>: each of N
/// participants sends with <see cref="SendAsync"/>, the item goes to participant <c>hash(key) mod N</c> over a
/// <see cref="ChannelMesh{T}"/>, and the owner's <see cref="RunAsync"/> hands it to the handler there.</summary>
/// <remarks>
/// <para>Make one router per participant, on its shard, over that participant's <see cref="MeshPeer{T}"/>; use it
/// only there. Every participant must run <see cref="RunAsync"/> (it drains what the others send) and call
/// <see cref="Complete"/> when it will send no more; RunAsync ends when every other participant has completed.</para>
/// <para>An item whose owner is this participant is handled at once, in the sender's task (no channel). Items from
/// one sender to one owner are handled in the order sent. The key's hash comes from <c>comparer</c> (the default
/// comparer if none): it must agree across shards, which the process-wide string hash does.</para>
/// </remarks>
/// <typeparam name="TKey">What decides the owner.</typeparam>
/// <typeparam name="TItem">What is sent.</typeparam>
public sealed class ShardedRouter<TKey, TItem>
{
    private readonly MeshPeer<TItem> _peer;
    private readonly Func<TItem, ValueTask> _handler;
    private readonly IEqualityComparer<TKey> _comparer;

    /// <summary>A router for participant <paramref name="peer"/>; <paramref name="handler"/> runs, on this shard,
    /// for each item this participant owns.</summary>
    public ShardedRouter(MeshPeer<TItem> peer, Func<TItem, ValueTask> handler, IEqualityComparer<TKey>? comparer = null)
    {
        ArgumentNullException.ThrowIfNull(peer);
        ArgumentNullException.ThrowIfNull(handler);
        _peer = peer;
        _handler = handler;
        _comparer = comparer ?? EqualityComparer<TKey>.Default;
    }

    /// <summary>This participant's id.</summary>
    public int Id => _peer.Id;

    /// <summary>The number of participants.</summary>
    public int Shards => _peer.Peers;

    /// <summary>The participant that owns <paramref name="key"/>: its hash modulo <see cref="Shards"/>.</summary>
    public int OwnerOf(TKey key) => (int)((uint)(key is null ? 0 : _comparer.GetHashCode(key)) % (uint)Shards);

    /// <summary>Sends <paramref name="item"/> to the owner of <paramref name="key"/>: handled here at once if this
    /// participant owns it, else written to the owner's channel (waiting while it is full).</summary>
    /// <exception cref="System.Threading.Channels.ChannelClosedException">This participant has called
    /// <see cref="Complete"/>.</exception>
    public ValueTask SendAsync(TKey key, TItem item, CancellationToken cancellationToken = default)
    {
        int owner = OwnerOf(key);
        return owner == Id ? _handler(item) : _peer.WriterTo(owner).WriteAsync(item, cancellationToken);
    }

    /// <summary>Handles the items the other participants send here, one at a time, until all of them have called
    /// <see cref="Complete"/>. A handler's exception ends it (faulting the Task).</summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        await foreach (var (_, item) in _peer.ReadAllAsync(cancellationToken))
            await _handler(item);
    }

    /// <summary>This participant sends no more: completes its channels to every other participant.</summary>
    public void Complete() => _peer.CompleteAll();
}

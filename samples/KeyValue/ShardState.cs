using Scipio.Net;

namespace Scipio.Samples.KeyValue;

/// <summary>What one shard of the server owns: its part of the key space, its listener, its connections and its
/// counters. Touched only on that shard (other shards reach it through <see cref="Shard.SubmitTo{T}"/>), so nothing
/// here is synchronized.</summary>
internal sealed class ShardState(KeyValueServer server, int id)
{
    private ShardTimerAction? _expiry;

    public KeyValueServer Server { get; } = server;
    public int Id { get; } = id;
    public KeyTable Table { get; } = new();
    public TcpListener? Listener { get; set; }
    public HashSet<Connection> Connections { get; } = [];
    public bool Stopping { get; set; }

    // Counters, read by KeyValueServer.GetStatsAsync and INFO.
    public long Commands;          // commands parsed from this shard's connections
    public long Forwarded;         // of those, commands sent to the shard that owns their keys
    public long RemoteOperations;  // commands and parts of fanned-out commands run here for other shards' connections
    public long TotalConnections;
    public long ProtocolErrors;
    public long PeakQueryBuffer;

    /// <summary>A key got a deadline: the sweep on the shard's own timer must run. It is armed only while deadlines
    /// are pending, so a shard without expiring keys keeps no timer.</summary>
    public void DeadlineAdded()
    {
        if (_expiry is null && !Stopping) _expiry = Shard.RunEvery(Server.Options.ExpiryInterval, Sweep);
    }

    private void Sweep()
    {
        Table.ExpireDue(KeyTable.NowMs, budget: 20_000);
        if (!Table.HasDeadlines) StopExpiry();
    }

    public void StopExpiry()
    {
        _expiry?.Cancel();
        _expiry = null;
    }

    public KeyValueShardStats Snapshot(long allocatedBytes)
    {
        var stats = Shard.Stats;
        return new KeyValueShardStats
        {
            Shard = Id,
            Cpu = Shard.Cpu,
            Keys = Table.Count,
            Expiring = Table.Expiring,
            ExpiredKeys = Table.Expired,
            Commands = Commands,
            Forwarded = Forwarded,
            RemoteOperations = RemoteOperations,
            Connections = Connections.Count,
            TotalConnections = TotalConnections,
            ProtocolErrors = ProtocolErrors,
            PeakQueryBuffer = PeakQueryBuffer,
            AllocatedBytes = allocatedBytes,
            TasksRun = stats.TasksRun,
            Parks = stats.Parks,
            CrossShardSent = stats.CrossShardSent,
        };
    }
}

/// <summary>One shard's counters (<see cref="KeyValueServer.GetStatsAsync"/>, and INFO's "Shards" section).</summary>
public sealed class KeyValueShardStats
{
    /// <summary>The shard's index.</summary>
    public int Shard { get; init; }

    /// <summary>The CPU it is pinned to (-1: not pinned to one).</summary>
    public int Cpu { get; init; }

    /// <summary>Keys it owns (including keys past their deadline that nothing has removed yet).</summary>
    public long Keys { get; init; }

    /// <summary>Of those, keys with a deadline.</summary>
    public long Expiring { get; init; }

    /// <summary>Keys removed because their deadline passed, when read or by the sweep on the shard's timer.</summary>
    public long ExpiredKeys { get; init; }

    /// <summary>Commands received on this shard's connections.</summary>
    public long Commands { get; init; }

    /// <summary>Of those, commands run on another shard (the owner of their keys).</summary>
    public long Forwarded { get; init; }

    /// <summary>Commands, and parts of multi-key commands, this shard ran for other shards' connections.</summary>
    public long RemoteOperations { get; init; }

    /// <summary>Open connections.</summary>
    public int Connections { get; init; }

    /// <summary>Connections accepted since the start.</summary>
    public long TotalConnections { get; init; }

    /// <summary>Connections closed for a protocol error (malformed input, a limit passed).</summary>
    public long ProtocolErrors { get; init; }

    /// <summary>The largest receive buffer any connection of this shard needed, in bytes: what a client could make
    /// the server buffer.</summary>
    public long PeakQueryBuffer { get; init; }

    /// <summary>GC.GetAllocatedBytesForCurrentThread() on the shard's thread when the snapshot was taken: two
    /// snapshots around some traffic tell what the shard allocated for it.</summary>
    public long AllocatedBytes { get; init; }

    /// <summary>Work items the shard has run (<see cref="ShardStats.TasksRun"/>).</summary>
    public long TasksRun { get; init; }

    /// <summary>Times the shard parked for lack of work (<see cref="ShardStats.Parks"/>).</summary>
    public long Parks { get; init; }

    /// <summary>Calls this shard sent to other shards (<see cref="ShardStats.CrossShardSent"/>).</summary>
    public long CrossShardSent { get; init; }
}

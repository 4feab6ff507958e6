using System.Globalization;
using System.Net;
using System.Text;
using Scipio.Net;

namespace Scipio.Samples.KeyValue;

/// <summary>Options of <see cref="KeyValueServer.Start(KeyValueServerOptions?)"/>.</summary>
/// <remarks>Defaults: port 6380 on every address, one shard per CPU the process may use, Redis's limits
/// (proto-max-bulk-len 512 MiB, client-query-buffer-limit 1 GiB), the expiry sweep every 100 ms.</remarks>
public sealed class KeyValueServerOptions
{
    private int _port = 6380, _shards;
    private long _maxBulkLength = 512L << 20, _queryBufferLimit = 1L << 30;
    private TimeSpan _expiryInterval = TimeSpan.FromMilliseconds(100);
    private IPAddress _address = IPAddress.Any;

    /// <summary>The TCP port every shard listens on (SO_REUSEPORT). 0: the kernel picks one; read it from
    /// <see cref="KeyValueServer.Port"/>. Default 6380.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not 0 to 65535.</exception>
    public int Port
    {
        get => _port;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, IPEndPoint.MaxPort);
            _port = value;
        }
    }

    /// <summary>The address to listen on. Default <see cref="IPAddress.Any"/>.</summary>
    /// <exception cref="ArgumentNullException">Null.</exception>
    public IPAddress Address
    {
        get => _address;
        set => _address = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>How many shards; each owns the keys that hash to it and listens on the port. 0 (the default): one
    /// per CPU the process may use.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative.</exception>
    public int Shards
    {
        get => _shards;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _shards = value;
        }
    }

    /// <summary>The CPUs to pin the shards to, one each, spread as <see cref="PoolPlacement.MaxSpread"/> does; with
    /// <see cref="Shards"/> 0, one shard per CPU listed. Null (the default): the CPUs the process may use.</summary>
    public IReadOnlyList<int>? Cpus { get; set; }

    /// <summary>The longest bulk string (a key or a value) a request may carry, in bytes: Redis's
    /// proto-max-bulk-len. A longer one is a protocol error, found from its length before any of it is buffered.
    /// Default 512 MiB.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive, or above <see cref="Array.MaxLength"/>.</exception>
    public long MaxBulkLength
    {
        get => _maxBulkLength;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, Array.MaxLength);
            _maxBulkLength = value;
        }
    }

    /// <summary>The most a connection may make the server buffer for one command, in bytes: Redis's
    /// client-query-buffer-limit. A command known to need more (from its bulk lengths) or that fills this much
    /// without ending is a protocol error. Default 1 GiB.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Below 64 KiB, or above <see cref="Array.MaxLength"/>.</exception>
    public long QueryBufferLimit
    {
        get => _queryBufferLimit;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 64L << 10);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, Array.MaxLength);
            _queryBufferLimit = value;
        }
    }

    /// <summary>How often a shard with keys that expire removes those past their deadline (a read never sees one
    /// anyway). Default 100 ms.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Below 1 ms or above one hour.</exception>
    public TimeSpan ExpiryInterval
    {
        get => _expiryInterval;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.FromMilliseconds(1));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, TimeSpan.FromHours(1));
            _expiryInterval = value;
        }
    }

    /// <summary>How long an idle shard busy-polls before it parks (<see cref="ShardOptions.SpinBeforePark"/>).
    /// Default zero: park at once, which costs least CPU per request.</summary>
    public TimeSpan SpinBeforePark { get; set; }
}

/// <summary>A key-value server that speaks RESP2 (the Redis protocol) on a pool of shards: one shard per CPU, each
/// owning the keys that hash to it, each with its own listener on the same port (SO_REUSEPORT), so the kernel
/// spreads connections over them. A connection is served by the shard that accepted it; a command on a key another
/// shard owns runs there (<see cref="Shard.SubmitTo{T}"/>) and its reply comes back in order.</summary>
/// <remarks>Commands: PING, ECHO, GET, SET (EX, PX, NX, XX, KEEPTTL, GET), DEL, EXISTS, INCR, DECR, INCRBY, DECRBY,
/// MGET, MSET, EXPIRE, PEXPIRE (NX, XX, GT, LT), TTL, PTTL, PERSIST, DBSIZE, FLUSHALL, INFO, COMMAND, CONFIG GET,
/// SELECT 0, QUIT; any other is "-ERR unknown command". Keys expire on their shard's own timer as well as when read.</remarks>
public sealed class KeyValueServer : IAsyncDisposable
{
    private readonly ShardPool _pool;
    private readonly Task _accepting;
    private readonly long _startedAt = Environment.TickCount64;
    private Task? _stopping;

    private KeyValueServer(ShardPool pool, KeyValueServerOptions options, ShardState[] states)
    {
        _pool = pool;
        Options = options;
        States = states;
        for (int i = 0; i < States.Length; i++) States[i] = new ShardState(this, i);
        var address = options.Address;
        // Shard 0 binds first (port 0: the kernel picks), then every other shard binds the same port.
        Port = pool.SubmitTo(0, () =>
        {
            var listener = TcpListener.Bind(new IPEndPoint(address, options.Port));
            States[0].Listener = listener;
            return Task.FromResult(listener.LocalEndPoint.Port);
        }).GetAwaiter().GetResult();
        pool.RunOnAll(() =>
        {
            if (Shard.Id != 0) States[Shard.Id].Listener = TcpListener.Bind(new IPEndPoint(address, Port));
            return Task.FromResult(0);
        }).GetAwaiter().GetResult();
        _accepting = pool.RunOnAll(AcceptAsync);
    }

    /// <summary>Starts a server: the shards, a listener on each, and their accept loops. Returns once it accepts
    /// connections.</summary>
    /// <exception cref="System.Net.Sockets.SocketException">The port is taken (AddressAlreadyInUse), or another
    /// socket error.</exception>
    /// <exception cref="ArgumentException">The CPUs asked for cannot be used (see <see cref="ShardPool.Start"/>).</exception>
    public static KeyValueServer Start(KeyValueServerOptions? options = null)
    {
        options ??= new KeyValueServerOptions();
        if (options.Port != 0) RefuseIfListening(options.Address, options.Port);
        var poolOptions = new ShardPoolOptions { PerShard = new ShardOptions { Name = "kv", SpinBeforePark = options.SpinBeforePark } };
        if (options.Shards > 0) poolOptions.Shards = options.Shards;
        if (options.Cpus is { Count: > 0 } cpus)
        {
            poolOptions.Placement = PoolPlacement.MaxSpread(cpus);
            if (options.Shards == 0) poolOptions.Shards = cpus.Count;
        }
        var pool = ShardPool.Start(poolOptions);
        var states = new ShardState[pool.Count];
        try
        {
            return new KeyValueServer(pool, options, states);
        }
        catch
        {
            // A shard that bound its listener before another failed to: close it, then stop the shards.
            pool.RunOnAll(async () =>
            {
                if (states[Shard.Id]?.Listener is { } listener) await listener.DisposeAsync();
            }).GetAwaiter().GetResult();
            pool.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    /// <summary>Every shard binds with SO_REUSEPORT, which would also let it share the port with another server
    /// that set it (another instance of this one): connections would go to either. So a port something already
    /// accepts connections on is refused first.</summary>
    private static void RefuseIfListening(IPAddress address, int port)
    {
        var probe = address.Equals(IPAddress.Any) ? IPAddress.Loopback : address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback : address;
        using var socket = new System.Net.Sockets.Socket(probe.AddressFamily, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        try
        {
            socket.Connect(new IPEndPoint(probe, port));
        }
        catch (System.Net.Sockets.SocketException)
        {
            return; // nothing listens there (or it cannot be reached): bind will tell
        }
        throw new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.AddressAlreadyInUse,
            $"Port {port} already accepts connections on {probe}: another server listens there. Stop it, or choose another port.");
    }

    /// <summary>Starts a server on <paramref name="port"/> (0: the kernel picks) with <paramref name="shards"/>
    /// shards (0: one per CPU).</summary>
    public static KeyValueServer Start(int port, int shards) => Start(new KeyValueServerOptions { Port = port, Shards = shards });

    /// <summary>The port it listens on.</summary>
    public int Port { get; }

    /// <summary>The options it was started with.</summary>
    public KeyValueServerOptions Options { get; }

    /// <summary>The number of shards.</summary>
    public int ShardCount => States.Length;

    /// <summary>The CPU each shard is pinned to (-1: not pinned to one).</summary>
    public IReadOnlyList<int> Cpus => _pool.Cpus;

    internal ShardState[] States { get; }

    /// <summary>The shard that owns <paramref name="key"/> in a server of <paramref name="shards"/> shards: the hash
    /// is fixed, so a client (or a test) can tell.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="shards"/> is not positive.</exception>
    public static int ShardOf(ReadOnlySpan<byte> key, int shards)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(shards);
        return KeyHash.ShardOf(KeyHash.Of(key), shards);
    }

    /// <summary>Every shard's counters, by shard; each snapshot taken on its shard.</summary>
    public Task<KeyValueShardStats[]> GetStatsAsync() => _pool.RunOnAll(SnapshotHere);

    /// <summary>One shard's counters, taken on that shard. Two snapshots of
    /// <see cref="KeyValueShardStats.AllocatedBytes"/> around some traffic tell what the shard allocated for it (the
    /// snapshot's own allocations, made after the count is read, are the same each time).</summary>
    /// <exception cref="ArgumentOutOfRangeException">No such shard.</exception>
    public Task<KeyValueShardStats> GetShardStatsAsync(int shard) => _pool.SubmitTo(shard, SnapshotHere);

    private Task<KeyValueShardStats> SnapshotHere()
    {
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        return Task.FromResult(States[Shard.Id].Snapshot(allocated));
    }

    /// <summary>From a shard of the server: every shard's counters (INFO).</summary>
    internal async Task<KeyValueShardStats[]> GatherStatsOnShardAsync()
    {
        var all = new KeyValueShardStats[States.Length];
        for (int s = 0; s < all.Length; s++) all[s] = await Shard.SubmitTo(s, SnapshotHere);
        return all;
    }

    private async Task<int> AcceptAsync()
    {
        var state = States[Shard.Id];
        var listener = state.Listener!;
        while (!state.Stopping)
        {
            TcpStream stream;
            try
            {
                stream = await listener.AcceptAsync();
            }
            catch (ObjectDisposedException)
            {
                break; // StopAsync
            }
            catch (System.Net.Sockets.SocketException e)
            {
                if (state.Stopping) break;
                // Out of descriptors, say: the next accept tries again, after a moment for things to settle.
                Console.Error.WriteLine($"KeyValue: accept on shard {state.Id} failed: {e.Message}");
                await Shard.Sleep(TimeSpan.FromMilliseconds(10));
                continue;
            }
            if (state.Stopping)
            {
                await stream.DisposeAsync();
                break;
            }
            var connection = new Connection(state, stream);
            state.Connections.Add(connection);
            state.TotalConnections++;
            connection.Serving = Shard.Spawn(connection.RunAsync);
        }
        return 0;
    }

    /// <summary>Stops: every listener and connection closes, the shards stop. Calling it again waits for the same
    /// stop.</summary>
    public Task StopAsync() => _stopping ??= StopOnceAsync();

    private async Task StopOnceAsync()
    {
        await _pool.RunOnAll(async () =>
        {
            var state = States[Shard.Id];
            state.Stopping = true;
            state.StopExpiry();
            if (state.Listener is { } listener) await listener.DisposeAsync();
            var connections = state.Connections.ToArray();
            foreach (var c in connections) await c.CloseAsync();
            foreach (var c in connections)
                if (c.Serving is { } serving) await serving;
            return 0;
        }).ConfigureAwait(false);
        await _accepting.ConfigureAwait(false);
        await _pool.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>The same as <see cref="StopAsync"/>.</summary>
    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    /// <summary>INFO's text: Server, Clients, Stats, Keyspace and Shards sections (or the one asked for).</summary>
    internal static string FormatInfo(KeyValueServer server, KeyValueShardStats[] shards, string section)
    {
        bool all = section is "default" or "all" or "everything";
        var text = new StringBuilder();
        void Section(string name, Action write)
        {
            if (!all && section != name.ToLowerInvariant()) return;
            if (text.Length > 0) text.Append("\r\n");
            text.Append("# ").Append(name).Append("\r\n");
            write();
        }
        void Line(string key, object value) => text.Append(CultureInfo.InvariantCulture, $"{key}:{value}\r\n");

        Section("Server", () =>
        {
            Line("redis_version", "7.0.0"); // the protocol and command semantics it follows; some clients read it
            Line("scipio_kv", "1");
            Line("redis_mode", "standalone");
            Line("process_id", Environment.ProcessId);
            Line("tcp_port", server.Port);
            Line("uptime_in_seconds", (Environment.TickCount64 - server._startedAt) / 1000);
            Line("shards", shards.Length);
            Line("cpus", string.Join(",", server.Cpus));
        });
        Section("Clients", () => Line("connected_clients", shards.Sum(s => s.Connections)));
        Section("Stats", () =>
        {
            Line("total_connections_received", shards.Sum(s => s.TotalConnections));
            Line("total_commands_processed", shards.Sum(s => s.Commands));
            Line("total_forwarded_commands", shards.Sum(s => s.Forwarded));
            Line("expired_keys", shards.Sum(s => s.ExpiredKeys));
            Line("protocol_errors", shards.Sum(s => s.ProtocolErrors));
        });
        Section("Keyspace", () =>
        {
            long keys = shards.Sum(s => s.Keys);
            if (keys > 0) Line("db0", $"keys={keys},expires={shards.Sum(s => s.Expiring)},avg_ttl=0");
        });
        Section("Shards", () =>
        {
            foreach (var s in shards)
                Line($"shard{s.Shard}", $"cpu={s.Cpu},keys={s.Keys},expires={s.Expiring},connections={s.Connections},commands={s.Commands},forwarded={s.Forwarded},remote_ops={s.RemoteOperations},tasks_run={s.TasksRun},parks={s.Parks}");
        });
        return text.ToString();
    }
}

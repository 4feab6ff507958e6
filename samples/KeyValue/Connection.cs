using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Scipio.Net;

namespace Scipio.Samples.KeyValue;

/// <summary>One client connection, served by the shard that accepted it: reads what arrived, parses every complete
/// command in it straight from the receive buffer, runs each on the shard that owns its keys, and sends the replies
/// of the whole batch in one send.</summary>
/// <remarks>
/// <para>A command whose keys this shard owns (or that has none) runs at once and writes its reply into the send
/// buffer. One whose key another shard owns is forwarded: the batch switches to grouped mode, where commands are
/// collected per owning shard, each group goes to its shard in one <see cref="Shard.SubmitTo{T}"/> call (all groups
/// at once), and the replies are merged back in the order the commands came. So a key's commands run in the order
/// the connection sent them; commands on keys of different shards may take effect in another order than sent, as
/// with Redis Cluster. The remote shard reads the arguments from this connection's receive buffer and writes its
/// replies into the group's buffer, while this connection waits: nothing is copied to cross.</para>
/// <para>A multi-key command whose keys live on several shards (MGET, MSET, DEL, EXISTS), and DBSIZE, FLUSHALL and
/// INFO with several shards, is a barrier: what was grouped before it is run first, then it fans out to the shards
/// concerned and gathers their parts.</para>
/// <para>Sends overlap the next read: the replies go out from one buffer while the next batch fills the other, and
/// a send is awaited only before the next one starts (one send in flight at a time). A client that does not read its
/// replies thus stops the server from reading its requests.</para>
/// <para>Steady-state GET and SET on keys of this shard allocate nothing: the arguments are slices of the receive
/// buffer, the key is looked up by span, the value is copied into the entry's existing array, and the reply is
/// written into a reused, pinned send buffer.</para>
/// </remarks>
internal sealed class Connection
{
    private const int InitialInput = 16 << 10;
    private const int OutputFlushThreshold = 256 << 10; // a batch whose replies pass this sends them before going on
    private const int MaxGroupedOperations = 4096;
    private const int DrainLimit = 1 << 20;             // after a protocol error: bytes read and dropped before closing
    private static readonly TimeSpan DrainTime = TimeSpan.FromSeconds(1);
    private static readonly Task<int> s_done = Task.FromResult(0);

    private readonly ShardState _shard;
    private readonly ShardState[] _states;
    private readonly KeyValueServerOptions _options;
    private readonly TcpStream _stream;
    private readonly int _shards;
    private readonly ArgList _args = new();
    private byte[] _in = new byte[InitialInput];
    private int _filled, _pos;
    private long _needed;             // bytes the incomplete command at _pos needs at least (0: unknown)
    private string? _error;           // the protocol error that ends the connection
    private ReplyBuffer _out = new(), _sending = new();
    private ValueTask _write;
    private bool _writePending;

    // Grouped mode: per shard, the commands it runs for this batch and their replies; the owner of every reply, in order.
    private Group?[]? _groups;
    private int[] _order = [];
    private int _orderCount, _groupedOperations;
    private bool _grouped;
    private CommandId _barrier;        // the command that stopped the batch to fan out
    private int _barrierFirst, _barrierCount;

    private enum Step { Done, Flush, Barrier, Quit, Error }

    public Connection(ShardState shard, TcpStream stream)
    {
        _shard = shard;
        _states = shard.Server.States;
        _options = shard.Server.Options;
        _shards = _states.Length;
        _stream = stream;
    }

    /// <summary>The task serving the connection.</summary>
    public Task? Serving { get; set; }

    /// <summary>Closes the connection (the server stops): the pending read ends, and with it <see cref="Serving"/>.</summary>
    public ValueTask CloseAsync() => _stream.DisposeAsync();

    public async Task RunAsync()
    {
        try
        {
            while (true)
            {
                if (_filled == _in.Length && !GrowInput())
                {
                    await FailAsync();
                    return;
                }
                int n = await _stream.ReadAsync(_in.AsMemory(_filled));
                if (n == 0) return;
                _filled += n;

                Step step;
                while ((step = ProcessSync()) != Step.Done)
                {
                    if (_grouped) await FlushGroupsAsync();
                    if (step == Step.Barrier) await RunBarrierAsync();
                    else if (step == Step.Flush)
                    {
                        if (_writePending)
                        {
                            _writePending = false;
                            await _write;
                        }
                        if (_out.Length > 0) StartWrite();
                    }
                    else if (step == Step.Quit)
                    {
                        _out.Ok();
                        if (_writePending)
                        {
                            _writePending = false;
                            await _write;
                        }
                        StartWrite();
                        return;
                    }
                    else
                    {
                        await FailAsync();
                        return;
                    }
                }
                if (_grouped) await FlushGroupsAsync();
                if (_out.Length > 0)
                {
                    if (_writePending)
                    {
                        _writePending = false;
                        await _write;
                    }
                    StartWrite();
                }
                Compact();
                if (_needed > _options.QueryBufferLimit)
                {
                    _error = "query buffer limit exceeded (client-query-buffer-limit)";
                    await FailAsync();
                    return;
                }
                if (_needed > _in.Length) GrowInput(); // a big bulk string: room for all of it, read in large pieces
            }
        }
        catch (SocketException) { } // the client reset the connection, or the server closed it (StopAsync)
        catch (ObjectDisposedException) { }
        catch (OperationCanceledException) { }
        catch (Exception e)
        {
            Console.Error.WriteLine($"KeyValue: connection on shard {_shard.Id} failed: {e}");
        }
        finally
        {
            if (_writePending)
            {
                _writePending = false;
                try
                {
                    await _write;
                }
                catch (Exception) { } // the connection is going anyway
            }
            await _stream.DisposeAsync();
            _shard.Connections.Remove(this);
        }
    }

    /// <summary>Sends what <see cref="_out"/> holds (no send may be pending) and swaps the two buffers.</summary>
    private void StartWrite()
    {
        var sending = _out;
        _out = _sending;
        _sending = sending;
        _out.Reset();
        _write = _stream.WriteAsync(sending.Memory);
        _writePending = true;
    }

    /// <summary>Parses and runs the complete commands from <see cref="_pos"/> on; stops at the end of what arrived
    /// or at a step that needs an await.</summary>
    private Step ProcessSync()
    {
        ReadOnlySpan<byte> input = _in.AsSpan(0, _filled);
        long maxBulk = _options.MaxBulkLength;
        int self = _shard.Id;
        while (_pos < _filled)
        {
            if (!_grouped) _args.Truncate(0);
            int first = _args.Count;
            var parsed = RespParser.Parse(input, _pos, _args, maxBulk, out int end, out _needed, out _error);
            if (parsed == ParseResult.Incomplete) return Step.Done;
            if (parsed == ParseResult.Error) return Step.Error;
            _pos = end;
            int argc = _args.Count - first;
            if (argc == 0) continue; // an empty line, or "*0"
            _shard.Commands++;
            var r = new Request(input, _args.Slice(first, argc));
            var id = CommandTable.Lookup(r[0]);
            if (id == CommandId.Unknown)
            {
                Commands.Unknown(r, LocalReplies());
                EndLocalReply();
                continue;
            }
            ref readonly var info = ref CommandTable.Info(id);
            if (!info.ArityOk(argc) || (id == CommandId.MSet && argc % 2 == 0))
            {
                Commands.WrongArity(LocalReplies(), info.Name);
                EndLocalReply();
                continue;
            }
            int owner = self;
            switch (info.Keys)
            {
                case KeySpec.None:
                    if (id == CommandId.Quit) return Step.Quit;
                    break;
                case KeySpec.First:
                    if (_shards > 1) owner = OwnerOf(r[1]);
                    break;
                case KeySpec.All:
                case KeySpec.Pairs:
                    if (_shards > 1 && (owner = CommonOwner(r, info.Keys == KeySpec.Pairs ? 2 : 1)) < 0)
                        return Barrier(id, first, argc);
                    break;
                default: // every shard
                    if (_shards > 1 || id == CommandId.Info) return Barrier(id, first, argc);
                    break;
            }
            if (owner == self)
            {
                Commands.Execute(_shard, id, r, LocalReplies());
                EndLocalReply();
            }
            else Forward(owner, id, first, argc);
            if (_out.Length >= OutputFlushThreshold || _groupedOperations >= MaxGroupedOperations) return Step.Flush;
        }
        return Step.Done;
    }

    private int OwnerOf(ReadOnlySpan<byte> key) => KeyHash.ShardOf(KeyHash.Of(key), _shards);

    /// <summary>The shard that owns every key of the command, or -1 if they are spread over several.</summary>
    private int CommonOwner(in Request r, int step)
    {
        int owner = OwnerOf(r[1]);
        for (int i = 1 + step; i < r.Count; i += step)
            if (OwnerOf(r[i]) != owner) return -1;
        return owner;
    }

    private Step Barrier(CommandId id, int first, int argc)
    {
        _barrier = id;
        _barrierFirst = first;
        _barrierCount = argc;
        return Step.Barrier;
    }

    /// <summary>Where a reply made on this shard goes: the send buffer, or (grouped) this shard's group, so that it
    /// takes its place among the forwarded commands' replies.</summary>
    private ReplyBuffer LocalReplies() => _grouped ? GroupFor(_shard.Id).Replies : _out;

    private void EndLocalReply()
    {
        if (!_grouped) return;
        GroupFor(_shard.Id).EndReply();
        AddOrder(_shard.Id);
    }

    private void Forward(int owner, CommandId id, int first, int argc)
    {
        _grouped = true;
        GroupFor(owner).Add(OpKind.Command, id, first, argc);
        AddOrder(owner);
        _groupedOperations++;
        _shard.Forwarded++;
    }

    private Group GroupFor(int shard)
    {
        _groups ??= new Group?[_shards];
        return _groups[shard] ??= new Group(this, shard);
    }

    private void AddOrder(int shard)
    {
        if (_orderCount == _order.Length) Array.Resize(ref _order, Math.Max(64, _order.Length * 2));
        _order[_orderCount++] = shard;
    }

    /// <summary>Runs every group on its shard (all at once), then appends the replies to the send buffer in the order
    /// the commands came.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))] // its box is reused: a forwarded batch allocates less
    private async ValueTask FlushGroupsAsync()
    {
        await RunGroupsAsync();
        var groups = _groups!;
        for (int k = 0; k < _orderCount; k++) _out.Raw(groups[_order[k]]!.NextReply());
        ResetGroups();
    }

    /// <summary>Sends every group with work to its shard, runs this shard's own inline, and waits for all.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask RunGroupsAsync()
    {
        var groups = _groups!;
        for (int s = 0; s < groups.Length; s++)
            if (s != _shard.Id && groups[s] is { OperationCount: > 0 } g) g.Pending = Shard.SubmitTo(s, g.Work);
        if (groups[_shard.Id] is { OperationCount: > 0 } local) local.Execute(_shard);
        foreach (var g in groups)
        {
            if (g?.Pending is not { } pending) continue;
            g.Pending = null;
            await pending;
        }
    }

    private void ResetGroups()
    {
        foreach (var g in _groups!) g?.Reset();
        _orderCount = 0;
        _groupedOperations = 0;
        _grouped = false;
    }

    /// <summary>A command that spans shards: its parts go to their owners, and their answers are combined.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask RunBarrierAsync()
    {
        int first = _barrierFirst, argc = _barrierCount;
        if (_barrier == CommandId.Info)
        {
            string section = argc > 1 ? System.Text.Encoding.UTF8.GetString(Arg(first + 1)).ToLowerInvariant() : "default";
            var stats = await _shard.Server.GatherStatsOnShardAsync();
            _out.Bulk(KeyValueServer.FormatInfo(_shard.Server, stats, section));
            return;
        }
        switch (_barrier)
        {
            case CommandId.MGet:
                for (int i = 1; i < argc; i++)
                {
                    int owner = OwnerOf(Arg(first + i));
                    GroupFor(owner).Add(OpKind.GetPart, _barrier, first + i, 1);
                    AddOrder(owner);
                }
                break;
            case CommandId.Del:
            case CommandId.Exists:
                for (int i = 1; i < argc; i++)
                    GroupFor(OwnerOf(Arg(first + i))).Add(_barrier == CommandId.Del ? OpKind.DelPart : OpKind.ExistsPart, _barrier, first + i, 1);
                break;
            case CommandId.MSet:
                for (int i = 1; i + 1 < argc; i += 2) GroupFor(OwnerOf(Arg(first + i))).Add(OpKind.SetPart, _barrier, first + i, 2);
                break;
            default: // DBSIZE, FLUSHALL: every shard
                for (int s = 0; s < _shards; s++) GroupFor(s).Add(_barrier == CommandId.DbSize ? OpKind.CountPart : OpKind.FlushPart, _barrier, first, 0);
                break;
        }
        await RunGroupsAsync();
        var groups = _groups!;
        switch (_barrier)
        {
            case CommandId.MGet:
                _out.ArrayHeader(argc - 1);
                for (int k = 0; k < _orderCount; k++) _out.Raw(groups[_order[k]]!.NextReply());
                break;
            case CommandId.MSet:
            case CommandId.FlushAll:
                _out.Ok();
                break;
            default:
                long sum = 0;
                foreach (var g in groups) sum += g?.Sum ?? 0;
                _out.Integer(sum);
                break;
        }
        ResetGroups();
    }

    private ReadOnlySpan<byte> Arg(int index)
    {
        var a = _args[index];
        return _in.AsSpan(a.Start, a.Length);
    }

    /// <summary>Moves the incomplete command, if any, to the start of the receive buffer; gives back a buffer that
    /// grew for a big command once it is no longer needed.</summary>
    private void Compact()
    {
        int rest = _filled - _pos;
        if (_in.Length > 4 * InitialInput && rest <= InitialInput / 2 && _needed <= InitialInput)
        {
            var small = new byte[InitialInput];
            _in.AsSpan(_pos, rest).CopyTo(small);
            _in = small;
        }
        else if (rest > 0 && _pos > 0) _in.AsSpan(_pos, rest).CopyTo(_in);
        _filled = rest;
        _pos = 0;
    }

    /// <summary>Makes room for more of an incomplete command: doubles the buffer, or grows it to what the command is
    /// known to need; false (and the error set) past the query buffer limit.</summary>
    private bool GrowInput()
    {
        long limit = Math.Min(_options.QueryBufferLimit, Array.MaxLength);
        if (_in.Length >= limit || _needed > limit)
        {
            _error = "query buffer limit exceeded (client-query-buffer-limit)";
            return false;
        }
        long size = _needed > _in.Length ? _needed + 4096 : 2L * _in.Length;
        var bigger = new byte[Math.Min(size, limit)];
        _in.AsSpan(0, _filled).CopyTo(bigger);
        _in = bigger;
        if (bigger.Length > _shard.PeakQueryBuffer) _shard.PeakQueryBuffer = bigger.Length;
        return true;
    }

    /// <summary>A protocol error: the replies so far, then the error, go out; the sending side is shut; what the
    /// client still sends is read and dropped for a moment (at most <see cref="DrainLimit"/> bytes, for
    /// <see cref="DrainTime"/>), so that the close does not reset the connection before the client has read the
    /// error; then the connection closes.</summary>
    private async Task FailAsync()
    {
        _shard.ProtocolErrors++;
        if (_grouped) await FlushGroupsAsync();
        _out.Error($"ERR Protocol error: {_error}");
        if (_writePending)
        {
            _writePending = false;
            await _write;
        }
        StartWrite();
        _writePending = false;
        await _write;
        await _stream.ShutdownAsync(SocketShutdown.Send);
        try
        {
            await Shard.WithTimeout(DrainTime, async ct =>
            {
                var sink = new byte[InitialInput];
                for (long drained = 0; drained < DrainLimit;)
                {
                    int n = await _stream.ReadAsync(sink, ct);
                    if (n == 0) break;
                    drained += n;
                }
            });
        }
        catch (TimeoutException) { }
    }

    private enum OpKind : byte { Command, GetPart, DelPart, ExistsPart, SetPart, CountPart, FlushPart }

    private readonly record struct Operation(OpKind Kind, CommandId Id, int First, int Count);

    /// <summary>What one shard runs for this connection in one batch, and its replies.</summary>
    private sealed class Group
    {
        private readonly Connection _owner;
        private readonly int _shard;
        private Operation[] _operations = new Operation[16];
        private int[] _ends = new int[16];
        private int _endCount, _next;

        public Group(Connection owner, int shard)
        {
            _owner = owner;
            _shard = shard;
            Work = Run;
        }

        public ReplyBuffer Replies { get; } = new(4096, pinned: false);
        public int OperationCount { get; private set; }
        public long Sum { get; private set; }     // DEL's, EXISTS's and DBSIZE's part
        public Func<Task<int>> Work { get; }      // what the owning shard runs: made once, reused every batch
        public Task<int>? Pending { get; set; }

        public void Add(OpKind kind, CommandId id, int first, int count)
        {
            if (OperationCount == _operations.Length) Array.Resize(ref _operations, _operations.Length * 2);
            _operations[OperationCount++] = new Operation(kind, id, first, count);
        }

        public void EndReply()
        {
            if (_endCount == _ends.Length) Array.Resize(ref _ends, _ends.Length * 2);
            _ends[_endCount++] = Replies.Length;
        }

        public ReadOnlySpan<byte> NextReply()
        {
            int start = _next == 0 ? 0 : _ends[_next - 1];
            return Replies.Written[start.._ends[_next++]];
        }

        public void Reset()
        {
            OperationCount = 0;
            _endCount = 0;
            _next = 0;
            Sum = 0;
            Replies.Reset(retain: 256 << 10);
        }

        private Task<int> Run()
        {
            Execute(_owner._states[_shard]);
            return s_done;
        }

        /// <summary>Runs the operations on <paramref name="shard"/>, its owner's thread. The connection waits
        /// meanwhile, so its receive buffer and arguments stay as they are.</summary>
        public void Execute(ShardState shard)
        {
            ReadOnlySpan<byte> input = _owner._in.AsSpan(0, _owner._filled);
            var table = shard.Table;
            for (int k = 0; k < OperationCount; k++)
            {
                var op = _operations[k];
                var r = new Request(input, _owner._args.Slice(op.First, op.Count));
                switch (op.Kind)
                {
                    case OpKind.Command:
                        Commands.Execute(shard, op.Id, r, Replies);
                        EndReply();
                        break;
                    case OpKind.GetPart:
                        Commands.Get(table, r[0], Replies);
                        EndReply();
                        break;
                    case OpKind.DelPart:
                        Sum += Commands.Delete(table, r[0]);
                        break;
                    case OpKind.ExistsPart:
                        Sum += Commands.Exists(table, r[0]);
                        break;
                    case OpKind.SetPart:
                        Commands.Store(table, r[0], r[1]);
                        break;
                    case OpKind.CountPart:
                        Sum += table.Count;
                        break;
                    case OpKind.FlushPart:
                        table.Clear();
                        break;
                }
            }
            if (shard != _owner._shard) shard.RemoteOperations += OperationCount;
        }
    }
}

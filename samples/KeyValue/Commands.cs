using System.Buffers.Text;
using System.Runtime.CompilerServices;
using System.Text;

namespace Scipio.Samples.KeyValue;

/// <summary>One command's arguments: slices of the receive buffer (argument 0 is the command's name).</summary>
internal readonly ref struct Request(ReadOnlySpan<byte> input, ReadOnlySpan<ArgSlice> args)
{
    private readonly ReadOnlySpan<byte> _input = input;
    private readonly ReadOnlySpan<ArgSlice> _args = args;

    public int Count => _args.Length;

    public ReadOnlySpan<byte> this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            var a = _args[index];
            return _input.Slice(a.Start, a.Length);
        }
    }
}

/// <summary>The commands, run on the shard that owns every key they name (the connection routed them there), each
/// writing its reply. Replies and errors are Redis 7's, word for word.</summary>
internal static class Commands
{
    private static ReadOnlySpan<byte> NotInteger => "ERR value is not an integer or out of range"u8;
    private static ReadOnlySpan<byte> SyntaxError => "ERR syntax error"u8;
    private static ReadOnlySpan<byte> Overflow => "ERR increment or decrement would overflow"u8;

    /// <summary>Runs a command whose keys <paramref name="shard"/> owns (or that has none); the arity has been checked.</summary>
    public static void Execute(ShardState shard, CommandId id, in Request r, ReplyBuffer reply)
    {
        var table = shard.Table;
        switch (id)
        {
            case CommandId.Get:
                {
                    var key = r[1];
                    int e = table.Find(key, KeyHash.Of(key));
                    if (e < 0) reply.Null();
                    else reply.Bulk(table.Value(e));
                    return;
                }
            case CommandId.Set:
                Set(shard, r, reply);
                return;
            case CommandId.Incr:
                IncrBy(table, r[1], 1, reply);
                return;
            case CommandId.Decr:
                IncrBy(table, r[1], -1, reply);
                return;
            case CommandId.IncrBy:
            case CommandId.DecrBy:
                {
                    if (!TryParseInt(r[2], out long by)) reply.Error(NotInteger);
                    else if (id == CommandId.DecrBy && by == long.MinValue) reply.Error("ERR decrement would overflow"u8);
                    else IncrBy(table, r[1], id == CommandId.IncrBy ? by : -by, reply);
                    return;
                }
            case CommandId.Expire:
            case CommandId.PExpire:
                Expire(shard, r, id == CommandId.PExpire, reply);
                return;
            case CommandId.Ttl:
            case CommandId.PTtl:
                {
                    var key = r[1];
                    int e = table.Find(key, KeyHash.Of(key));
                    if (e < 0) reply.Integer(-2);
                    else if (table.ExpiresAt(e) == 0) reply.Integer(-1);
                    else
                    {
                        long left = Math.Max(0, table.ExpiresAt(e) - KeyTable.NowMs);
                        reply.Integer(id == CommandId.PTtl ? left : (left + 500) / 1000);
                    }
                    return;
                }
            case CommandId.Persist:
                {
                    var key = r[1];
                    int e = table.Find(key, KeyHash.Of(key));
                    if (e < 0 || table.ExpiresAt(e) == 0) reply.Integer(0);
                    else
                    {
                        table.SetExpiry(e, 0);
                        reply.Integer(1);
                    }
                    return;
                }
            case CommandId.Del:
            case CommandId.Exists:
                {
                    long n = 0;
                    for (int i = 1; i < r.Count; i++) n += id == CommandId.Del ? Delete(table, r[i]) : Exists(table, r[i]);
                    reply.Integer(n);
                    return;
                }
            case CommandId.MGet:
                reply.ArrayHeader(r.Count - 1);
                for (int i = 1; i < r.Count; i++) Get(table, r[i], reply);
                return;
            case CommandId.MSet:
                for (int i = 1; i + 1 < r.Count; i += 2) Store(table, r[i], r[i + 1]);
                reply.Ok();
                return;
            case CommandId.DbSize:
                reply.Integer(table.Count);
                return;
            case CommandId.FlushAll:
                table.Clear();
                reply.Ok();
                return;
            case CommandId.Ping:
                if (r.Count == 1) reply.Raw("+PONG\r\n"u8);
                else if (r.Count == 2) reply.Bulk(r[1]);
                else WrongArity(reply, "ping");
                return;
            case CommandId.Echo:
                reply.Bulk(r[1]);
                return;
            case CommandId.Select:
                if (!TryParseInt(r[1], out long db)) reply.Error(NotInteger);
                else if (db != 0) reply.Error("ERR DB index is out of range"u8);
                else reply.Ok();
                return;
            case CommandId.Command:
                Command(r, reply);
                return;
            case CommandId.Config:
                Config(shard.Server.Options, r, reply);
                return;
            default:
                throw new InvalidOperationException($"{id} is not run by Commands.Execute");
        }
    }

    /// <summary>GET's reply for one key (MGET's parts).</summary>
    public static void Get(KeyTable table, ReadOnlySpan<byte> key, ReplyBuffer reply)
    {
        int e = table.Find(key, KeyHash.Of(key));
        if (e < 0) reply.Null();
        else reply.Bulk(table.Value(e));
    }

    /// <summary>1 if the key was there and is now gone, else 0.</summary>
    public static int Delete(KeyTable table, ReadOnlySpan<byte> key)
    {
        int e = table.Find(key, KeyHash.Of(key));
        if (e < 0) return 0;
        table.Remove(e);
        return 1;
    }

    public static int Exists(KeyTable table, ReadOnlySpan<byte> key) => table.Find(key, KeyHash.Of(key)) >= 0 ? 1 : 0;

    /// <summary>A plain SET: the value, no deadline (MSET's parts).</summary>
    public static void Store(KeyTable table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        ulong hash = KeyHash.Of(key);
        int e = table.Find(key, hash);
        if (e < 0) table.Add(key, hash, value);
        else
        {
            table.SetValue(e, value);
            table.SetExpiry(e, 0);
        }
    }

    /// <summary>SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]</summary>
    private static void Set(ShardState shard, in Request r, ReplyBuffer reply)
    {
        bool nx = false, xx = false, get = false, keepTtl = false;
        long ttlMs = 0;
        for (int i = 3; i < r.Count; i++)
        {
            var option = r[i];
            bool hasNext = i + 1 < r.Count;
            if (Is(option, "nx"u8) && !xx) nx = true;
            else if (Is(option, "xx"u8) && !nx) xx = true;
            else if (Is(option, "get"u8)) get = true;
            else if (Is(option, "keepttl"u8) && ttlMs == 0) keepTtl = true;
            else if ((Is(option, "ex"u8) || Is(option, "px"u8)) && !keepTtl && ttlMs == 0 && hasNext)
            {
                if (!TryParseInt(r[++i], out long amount))
                {
                    reply.Error(NotInteger);
                    return;
                }
                long scale = option[0] is (byte)'e' or (byte)'E' ? 1000 : 1;
                if (amount <= 0 || amount > long.MaxValue / 1000 / scale)
                {
                    reply.Error("ERR invalid expire time in 'set' command"u8);
                    return;
                }
                ttlMs = amount * scale;
            }
            else
            {
                reply.Error(SyntaxError);
                return;
            }
        }

        var table = shard.Table;
        var key = r[1];
        ulong hash = KeyHash.Of(key);
        int e = table.Find(key, hash);
        if (get)
        {
            // The old value goes out before it is overwritten (the array may be reused).
            if (e < 0) reply.Null();
            else reply.Bulk(table.Value(e));
        }
        if ((nx && e >= 0) || (xx && e < 0))
        {
            if (!get) reply.Null();
            return;
        }
        if (e < 0) e = table.Add(key, hash, r[2]);
        else table.SetValue(e, r[2]);
        if (ttlMs > 0)
        {
            table.SetExpiry(e, KeyTable.NowMs + ttlMs);
            shard.DeadlineAdded();
        }
        else if (!keepTtl) table.SetExpiry(e, 0);
        if (!get) reply.Ok();
    }

    private static void IncrBy(KeyTable table, ReadOnlySpan<byte> key, long by, ReplyBuffer reply)
    {
        ulong hash = KeyHash.Of(key);
        int e = table.Find(key, hash);
        long value = 0;
        if (e >= 0 && !TryParseInt(table.Value(e), out value))
        {
            reply.Error(NotInteger);
            return;
        }
        long result = value + by;
        if (((value ^ result) & (by ^ result)) < 0) // both operands' signs differ from the result's: it overflowed
        {
            reply.Error(Overflow);
            return;
        }
        Span<byte> digits = stackalloc byte[20];
        Utf8Formatter.TryFormat(result, digits, out int n);
        if (e < 0) table.Add(key, hash, digits[..n], slack: 20 - n); // a counter that grows keeps its array
        else table.SetValue(e, digits[..n], slack: 20 - n);
        reply.Integer(result);
    }

    /// <summary>EXPIRE key seconds [NX | XX | GT | LT] (PEXPIRE: milliseconds).</summary>
    private static void Expire(ShardState shard, in Request r, bool milliseconds, ReplyBuffer reply)
    {
        if (!TryParseInt(r[2], out long amount))
        {
            reply.Error(NotInteger);
            return;
        }
        bool nx = false, xx = false, gt = false, lt = false;
        for (int i = 3; i < r.Count; i++)
        {
            var option = r[i];
            if (Is(option, "nx"u8)) nx = true;
            else if (Is(option, "xx"u8)) xx = true;
            else if (Is(option, "gt"u8)) gt = true;
            else if (Is(option, "lt"u8)) lt = true;
            else
            {
                reply.Error($"ERR Unsupported option {Encoding.UTF8.GetString(option)}");
                return;
            }
        }
        if (nx && (xx || gt || lt))
        {
            reply.Error("ERR NX and XX, GT or LT options at the same time are not compatible"u8);
            return;
        }
        if (gt && lt)
        {
            reply.Error("ERR GT and LT options at the same time are not compatible"u8);
            return;
        }
        long now = KeyTable.NowMs;
        bool invalid = !milliseconds && (amount > long.MaxValue / 1000 || amount < long.MinValue / 1000);
        long ms = milliseconds ? amount : invalid ? 0 : amount * 1000;
        if (invalid || ms > long.MaxValue - now)
        {
            reply.Error(milliseconds ? "ERR invalid expire time in 'pexpire' command"u8 : "ERR invalid expire time in 'expire' command"u8);
            return;
        }
        long deadline = now + ms;
        var table = shard.Table;
        var key = r[1];
        int e = table.Find(key, KeyHash.Of(key));
        if (e < 0)
        {
            reply.Integer(0);
            return;
        }
        long current = table.ExpiresAt(e); // 0: none, which counts as infinite for GT and LT
        if ((nx && current != 0) || (xx && current == 0) || (gt && (current == 0 || deadline <= current)) || (lt && current != 0 && deadline >= current))
        {
            reply.Integer(0);
            return;
        }
        if (deadline <= now) table.Remove(e); // a deadline in the past deletes the key, as Redis does
        else
        {
            table.SetExpiry(e, deadline);
            shard.DeadlineAdded();
        }
        reply.Integer(1);
    }

    /// <summary>COMMAND [COUNT | DOCS | INFO name…]: a minimal reply, enough for clients that ask at start.</summary>
    private static void Command(in Request r, ReplyBuffer reply)
    {
        var all = CommandTable.All[1..];
        if (r.Count == 1)
        {
            reply.ArrayHeader(all.Length);
            foreach (ref readonly var info in all) CommandEntry(info, reply);
        }
        else if (Is(r[1], "count"u8)) reply.Integer(all.Length);
        else if (Is(r[1], "docs"u8)) reply.ArrayHeader(0);
        else if (Is(r[1], "info"u8))
        {
            reply.ArrayHeader(r.Count - 2);
            for (int i = 2; i < r.Count; i++)
            {
                var id = CommandTable.Lookup(r[i]);
                if (id == CommandId.Unknown) reply.NullArray();
                else CommandEntry(CommandTable.Info(id), reply);
            }
        }
        else reply.Error($"ERR unknown subcommand '{Encoding.UTF8.GetString(r[1])}'. Try COMMAND HELP.");
    }

    /// <summary>[name, arity, flags, first key, last key, step]</summary>
    private static void CommandEntry(in CommandInfo info, ReplyBuffer reply)
    {
        reply.ArrayHeader(6);
        reply.Bulk(info.Name);
        reply.Integer(info.Arity);
        reply.ArrayHeader(0);
        var (first, last, step) = info.Keys switch
        {
            KeySpec.First => (1, 1, 1),
            KeySpec.All => (1, -1, 1),
            KeySpec.Pairs => (1, -1, 2),
            _ => (0, 0, 0),
        };
        reply.Integer(first);
        reply.Integer(last);
        reply.Integer(step);
    }

    /// <summary>CONFIG GET parameter…: the few parameters this server has (redis-benchmark asks for "save" and
    /// "appendonly" at start); a name it does not have adds nothing. "*" lists them all.</summary>
    private static void Config(KeyValueServerOptions options, in Request r, ReplyBuffer reply)
    {
        if (!Is(r[1], "get"u8))
        {
            reply.Error($"ERR unknown subcommand '{Encoding.UTF8.GetString(r[1])}'. Try CONFIG HELP.");
            return;
        }
        if (r.Count < 3)
        {
            WrongArity(reply, "config|get");
            return;
        }
        (string Name, string Value)[] parameters =
        [
            ("save", ""),
            ("appendonly", "no"),
            ("databases", "1"),
            ("maxmemory", "0"),
            ("port", options.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("proto-max-bulk-len", options.MaxBulkLength.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("client-query-buffer-limit", options.QueryBufferLimit.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ];
        var found = new List<(string, string)>();
        for (int i = 2; i < r.Count; i++)
        {
            string asked = Encoding.UTF8.GetString(r[i]).ToLowerInvariant();
            foreach (var p in parameters)
                if ((asked == "*" || asked == p.Name) && !found.Contains(p)) found.Add(p);
        }
        reply.ArrayHeader(found.Count * 2);
        foreach (var (name, value) in found)
        {
            reply.Bulk(name);
            reply.Bulk(value);
        }
    }

    public static void WrongArity(ReplyBuffer reply, string name) =>
        reply.Error($"ERR wrong number of arguments for '{name}' command");

    /// <summary>Redis 7's reply to a command it does not know: the name and the start of the arguments, quoted.</summary>
    public static void Unknown(in Request r, ReplyBuffer reply)
    {
        var args = new StringBuilder();
        for (int i = 1; i < r.Count && args.Length < 128; i++)
        {
            string arg = Encoding.UTF8.GetString(r[i]);
            args.Append('\'').Append(arg, 0, Math.Min(arg.Length, Math.Max(0, 128 - args.Length))).Append("' ");
        }
        string name = Encoding.UTF8.GetString(r[0]);
        if (name.Length > 128) name = name[..128];
        reply.Error($"ERR unknown command '{name}', with args beginning with: {args}");
    }

    /// <summary>Case-insensitive comparison with a lower-case ASCII word.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Is(ReadOnlySpan<byte> arg, ReadOnlySpan<byte> lowerWord)
    {
        if (arg.Length != lowerWord.Length) return false;
        for (int i = 0; i < arg.Length; i++)
            if ((arg[i] | 0x20) != lowerWord[i]) return false;
        return true;
    }

    /// <summary>A 64-bit decimal as Redis reads one (string2ll): an optional '-', digits, no leading zero, no sign
    /// '+', no spaces, nothing after.</summary>
    public static bool TryParseInt(ReadOnlySpan<byte> s, out long value)
    {
        value = 0;
        if (s.IsEmpty || s.Length > 20) return false;
        bool negative = s[0] == (byte)'-';
        int i = negative ? 1 : 0;
        if (i == s.Length) return false;
        if (s[i] == (byte)'0') return s.Length == i + 1 && !negative;
        ulong v = 0;
        for (; i < s.Length; i++)
        {
            uint d = (uint)(s[i] - '0');
            if (d > 9) return false;
            if (v > (ulong.MaxValue - d) / 10) return false;
            v = v * 10 + d;
        }
        if (negative)
        {
            if (v > (ulong)long.MaxValue + 1) return false;
            value = (long)(0 - v);
        }
        else
        {
            if (v > long.MaxValue) return false;
            value = (long)v;
        }
        return true;
    }
}

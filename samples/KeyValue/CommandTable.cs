using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Scipio.Samples.KeyValue;

/// <summary>The commands this server knows.</summary>
internal enum CommandId : byte
{
    Unknown,
    Ping, Echo, Quit, Select, Command, Config,
    Get, Set, Incr, Decr, IncrBy, DecrBy, Expire, PExpire, Ttl, PTtl, Persist,
    Del, Exists, MGet, MSet,
    DbSize, FlushAll, Info,
}

/// <summary>Which arguments are keys: that decides where a command runs.</summary>
internal enum KeySpec : byte
{
    /// <summary>No key: runs on the connection's shard.</summary>
    None,
    /// <summary>The first argument: runs on its owner.</summary>
    First,
    /// <summary>Every argument (DEL, EXISTS, MGET): on their owner if they share one, else fanned out.</summary>
    All,
    /// <summary>Every other argument, from the first (MSET's key-value pairs).</summary>
    Pairs,
    /// <summary>The whole key space (DBSIZE, FLUSHALL, INFO): every shard.</summary>
    AllShards,
}

/// <summary>A command's name, arity (Redis's convention: n exactly n arguments counting the name, −n at least n)
/// and keys.</summary>
internal readonly record struct CommandInfo(CommandId Id, string Name, int Arity, KeySpec Keys)
{
    public bool ArityOk(int argc) => Arity >= 0 ? argc == Arity : argc >= -Arity;
}

/// <summary>Finds a command by name, case-insensitively, without allocating: names of up to 8 letters are compared
/// as one 64-bit word with every byte OR-ed with 0x20 (which lower-cases a letter and maps a byte to a given
/// lower-case letter only from that letter's two cases).</summary>
internal static class CommandTable
{
    private static readonly CommandInfo[] s_infos =
    [
        new(CommandId.Unknown, "", 0, KeySpec.None),
        new(CommandId.Ping, "ping", -1, KeySpec.None),
        new(CommandId.Echo, "echo", 2, KeySpec.None),
        new(CommandId.Quit, "quit", -1, KeySpec.None),
        new(CommandId.Select, "select", 2, KeySpec.None),
        new(CommandId.Command, "command", -1, KeySpec.None),
        new(CommandId.Config, "config", -2, KeySpec.None),
        new(CommandId.Get, "get", 2, KeySpec.First),
        new(CommandId.Set, "set", -3, KeySpec.First),
        new(CommandId.Incr, "incr", 2, KeySpec.First),
        new(CommandId.Decr, "decr", 2, KeySpec.First),
        new(CommandId.IncrBy, "incrby", 3, KeySpec.First),
        new(CommandId.DecrBy, "decrby", 3, KeySpec.First),
        new(CommandId.Expire, "expire", -3, KeySpec.First),
        new(CommandId.PExpire, "pexpire", -3, KeySpec.First),
        new(CommandId.Ttl, "ttl", 2, KeySpec.First),
        new(CommandId.PTtl, "pttl", 2, KeySpec.First),
        new(CommandId.Persist, "persist", 2, KeySpec.First),
        new(CommandId.Del, "del", -2, KeySpec.All),
        new(CommandId.Exists, "exists", -2, KeySpec.All),
        new(CommandId.MGet, "mget", -2, KeySpec.All),
        new(CommandId.MSet, "mset", -3, KeySpec.Pairs),
        new(CommandId.DbSize, "dbsize", 1, KeySpec.AllShards),
        new(CommandId.FlushAll, "flushall", -1, KeySpec.AllShards),
        new(CommandId.Info, "info", -1, KeySpec.AllShards),
    ];

    /// <summary>Every command, by id.</summary>
    public static ReadOnlySpan<CommandInfo> All => s_infos;

    public static ref readonly CommandInfo Info(CommandId id) => ref s_infos[(int)id];

    // The packed lower-case names, one word each (little-endian: the first letter is the low byte).
    private static readonly ulong s_get = Pack("get"), s_set = Pack("set"), s_del = Pack("del"), s_ttl = Pack("ttl");
    private static readonly ulong s_ping = Pack("ping"), s_echo = Pack("echo"), s_incr = Pack("incr"), s_decr = Pack("decr"),
        s_mget = Pack("mget"), s_mset = Pack("mset"), s_info = Pack("info"), s_quit = Pack("quit"), s_pttl = Pack("pttl");
    private static readonly ulong s_exists = Pack("exists"), s_expire = Pack("expire"), s_incrby = Pack("incrby"),
        s_decrby = Pack("decrby"), s_dbsize = Pack("dbsize"), s_config = Pack("config"), s_select = Pack("select");
    private static readonly ulong s_command = Pack("command"), s_pexpire = Pack("pexpire"), s_persist = Pack("persist");
    private static readonly ulong s_flushall = Pack("flushall");

    private static ulong Pack(string name)
    {
        ulong v = 0;
        for (int i = 0; i < name.Length; i++) v |= (ulong)name[i] << (8 * i);
        return v;
    }

    /// <summary>The command named <paramref name="name"/> (any case), or <see cref="CommandId.Unknown"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static CommandId Lookup(ReadOnlySpan<byte> name)
    {
        int n = name.Length;
        if (n is < 3 or > 8) return CommandId.Unknown;
        ulong w;
        if (n >= 4)
        {
            // Two overlapping 4-byte reads cover 4 to 8 bytes.
            ulong lo = BinaryPrimitives.ReadUInt32LittleEndian(name);
            ulong hi = BinaryPrimitives.ReadUInt32LittleEndian(name[(n - 4)..]);
            w = lo | (hi << (8 * (n - 4)));
        }
        else w = name[0] | ((ulong)name[1] << 8) | ((ulong)name[2] << 16);
        w |= 0x2020202020202020UL >> (8 * (8 - n));
        switch (n)
        {
            case 3:
                if (w == s_get) return CommandId.Get;
                if (w == s_set) return CommandId.Set;
                if (w == s_del) return CommandId.Del;
                if (w == s_ttl) return CommandId.Ttl;
                break;
            case 4:
                if (w == s_ping) return CommandId.Ping;
                if (w == s_mget) return CommandId.MGet;
                if (w == s_mset) return CommandId.MSet;
                if (w == s_incr) return CommandId.Incr;
                if (w == s_decr) return CommandId.Decr;
                if (w == s_echo) return CommandId.Echo;
                if (w == s_info) return CommandId.Info;
                if (w == s_quit) return CommandId.Quit;
                if (w == s_pttl) return CommandId.PTtl;
                break;
            case 6:
                if (w == s_exists) return CommandId.Exists;
                if (w == s_expire) return CommandId.Expire;
                if (w == s_incrby) return CommandId.IncrBy;
                if (w == s_decrby) return CommandId.DecrBy;
                if (w == s_dbsize) return CommandId.DbSize;
                if (w == s_config) return CommandId.Config;
                if (w == s_select) return CommandId.Select;
                break;
            case 7:
                if (w == s_command) return CommandId.Command;
                if (w == s_pexpire) return CommandId.PExpire;
                if (w == s_persist) return CommandId.Persist;
                break;
            case 8:
                if (w == s_flushall) return CommandId.FlushAll;
                break;
        }
        return CommandId.Unknown;
    }
}

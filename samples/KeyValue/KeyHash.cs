using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Scipio.Samples.KeyValue;

/// <summary>The one hash of a key: its high half picks the owning shard, its low half the bucket in that shard's
/// table. Fixed (not seeded per process), so a client or a test can compute where a key lives.</summary>
/// <remarks>Eight bytes at a time, a multiply and a shift per word, MurmurHash3's finalizer at the end: good enough
/// spread for a sample. A server exposed to hostile clients would seed it per process (HashDoS).</remarks>
internal static class KeyHash
{
    private const ulong Seed = 0x9E3779B97F4A7C15;
    private const ulong Multiplier = 0xFF51AFD7ED558CCD;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Of(ReadOnlySpan<byte> key)
    {
        ulong h = Seed ^ ((ulong)key.Length * Multiplier);
        while (key.Length >= 8)
        {
            h = (h ^ BinaryPrimitives.ReadUInt64LittleEndian(key)) * Multiplier;
            h ^= h >> 29;
            key = key[8..];
        }
        if (key.Length > 0)
        {
            ulong tail = 0;
            for (int i = 0; i < key.Length; i++) tail |= (ulong)key[i] << (8 * i);
            h = (h ^ tail) * Multiplier;
            h ^= h >> 29;
        }
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53;
        h ^= h >> 33;
        return h;
    }

    /// <summary>The shard that owns a key of hash <paramref name="hash"/> among <paramref name="shards"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ShardOf(ulong hash, int shards) => shards == 1 ? 0 : (int)((hash >> 32) % (uint)shards);
}

using System.Buffers.Text;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Scipio.Samples.KeyValue;

/// <summary>RESP2 replies written into one growable byte array, sent as a whole: a batch of pipelined commands
/// becomes one send. The array is pinned (allocated on the pinned heap) while it has its default size, so a send
/// of it needs no GC handle.</summary>
internal sealed class ReplyBuffer
{
    /// <summary>The size a buffer starts with and shrinks back to.</summary>
    public const int DefaultSize = 16 << 10;

    private readonly int _initialSize;
    private readonly bool _pin;
    private byte[] _buffer;
    private bool _pinned;

    /// <summary>A buffer of <paramref name="size"/> bytes to start with, on the pinned heap if
    /// <paramref name="pinned"/> (for one that is sent as is).</summary>
    public ReplyBuffer(int size = DefaultSize, bool pinned = true)
    {
        _initialSize = size;
        _pin = pinned;
        _buffer = GC.AllocateUninitializedArray<byte>(size, pinned);
        _pinned = pinned;
    }

    public int Length { get; private set; }

    public byte[] Array => _buffer;

    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, Length);

    /// <summary>What was written, as memory for a send.</summary>
    public ReadOnlyMemory<byte> Memory =>
        _pinned ? MemoryMarshal.CreateFromPinnedArray(_buffer, 0, Length) : _buffer.AsMemory(0, Length);

    /// <summary>Empties the buffer; one that grew past <paramref name="retain"/> bytes goes back to the default size.</summary>
    public void Reset(int retain = 1 << 20)
    {
        Length = 0;
        if (_buffer.Length > retain)
        {
            _buffer = GC.AllocateUninitializedArray<byte>(_initialSize, _pin);
            _pinned = _pin;
        }
    }

    /// <summary>Drops everything after the first <paramref name="length"/> bytes.</summary>
    public void Truncate(int length) => Length = length;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Span<byte> Room(int size)
    {
        if (_buffer.Length - Length < size) Grow(size);
        return _buffer.AsSpan(Length);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Grow(int size)
    {
        long wanted = Math.Max((long)_buffer.Length * 2, (long)Length + size);
        if (wanted > System.Array.MaxLength) wanted = (long)Length + size;
        var bigger = GC.AllocateUninitializedArray<byte>((int)wanted);
        _buffer.AsSpan(0, Length).CopyTo(bigger);
        _buffer = bigger;
        _pinned = false;
    }

    /// <summary>Raw bytes, already RESP (a constant reply such as "+OK\r\n").</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Raw(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Room(bytes.Length));
        Length += bytes.Length;
    }

    public void Ok() => Raw("+OK\r\n"u8);

    public void Null() => Raw("$-1\r\n"u8);

    public void NullArray() => Raw("*-1\r\n"u8);

    /// <summary>:n</summary>
    public void Integer(long value)
    {
        if ((ulong)value <= 9)
        {
            var room = Room(4);
            room[0] = (byte)':';
            room[1] = (byte)('0' + value);
            room[2] = (byte)'\r';
            room[3] = (byte)'\n';
            Length += 4;
            return;
        }
        Prefixed((byte)':', value);
    }

    /// <summary>*n: the header of an array of <paramref name="count"/> replies.</summary>
    public void ArrayHeader(long count) => Prefixed((byte)'*', count);

    /// <summary>$n\r\n…\r\n</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Bulk(ReadOnlySpan<byte> value)
    {
        var room = Room(value.Length + 16);
        room[0] = (byte)'$';
        int n;
        if (value.Length < 10)
        {
            room[1] = (byte)('0' + value.Length);
            n = 1;
        }
        else Utf8Formatter.TryFormat(value.Length, room[1..], out n);
        room[n + 1] = (byte)'\r';
        room[n + 2] = (byte)'\n';
        value.CopyTo(room[(n + 3)..]);
        int end = n + 3 + value.Length;
        room[end] = (byte)'\r';
        room[end + 1] = (byte)'\n';
        Length += end + 2;
    }

    /// <summary>A bulk string of text (cold paths: INFO, CONFIG).</summary>
    public void Bulk(string text) => Bulk(System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>+text (no CR or LF inside).</summary>
    public void Simple(ReadOnlySpan<byte> text)
    {
        var room = Room(text.Length + 3);
        room[0] = (byte)'+';
        text.CopyTo(room[1..]);
        room[text.Length + 1] = (byte)'\r';
        room[text.Length + 2] = (byte)'\n';
        Length += text.Length + 3;
    }

    /// <summary>-message: an error reply; the message starts with its code ("ERR …", "WRONGTYPE …").</summary>
    public void Error(ReadOnlySpan<byte> message)
    {
        var room = Room(message.Length + 3);
        room[0] = (byte)'-';
        message.CopyTo(room[1..]);
        room[message.Length + 1] = (byte)'\r';
        room[message.Length + 2] = (byte)'\n';
        Length += message.Length + 3;
    }

    /// <summary>An error reply built from text (cold path); CR and LF become spaces, as Redis does, so that what a
    /// client sent cannot end the line early.</summary>
    public void Error(string message)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(message);
        for (int i = 0; i < bytes.Length; i++)
            if (bytes[i] is (byte)'\r' or (byte)'\n') bytes[i] = (byte)' ';
        Error(bytes);
    }

    private void Prefixed(byte prefix, long value)
    {
        var room = Room(24);
        room[0] = prefix;
        Utf8Formatter.TryFormat(value, room[1..], out int n);
        room[n + 1] = (byte)'\r';
        room[n + 2] = (byte)'\n';
        Length += n + 3;
    }
}

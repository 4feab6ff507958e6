using System.Runtime.CompilerServices;

namespace Scipio.Samples.KeyValue;

/// <summary>Where one argument lies in the receive buffer.</summary>
internal readonly record struct ArgSlice(int Start, int Length);

/// <summary>The arguments of the commands of one batch, as slices of the receive buffer (grows, never shrinks).</summary>
internal sealed class ArgList
{
    private ArgSlice[] _items = new ArgSlice[256];

    public int Count { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(int start, int length)
    {
        if (Count == _items.Length) Array.Resize(ref _items, _items.Length * 2);
        _items[Count++] = new ArgSlice(start, length);
    }

    public void Truncate(int count) => Count = count;

    public ReadOnlySpan<ArgSlice> Slice(int first, int count) => _items.AsSpan(first, count);

    public ArgSlice this[int index] => _items[index];
}

/// <summary>What <see cref="RespParser.Parse"/> found.</summary>
internal enum ParseResult
{
    /// <summary>A whole command (possibly of no arguments: an empty line or "*0", which the caller skips).</summary>
    Command,
    /// <summary>The command is not all there yet: read more.</summary>
    Incomplete,
    /// <summary>Not RESP: the connection gets the error and is closed.</summary>
    Error,
}

/// <summary>Parses RESP2 requests in place: a multibulk array of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), as
/// every client library sends, or an inline command ("GET k\r\n"), as typed into telnet. Arguments are slices of the
/// receive buffer: nothing is copied or allocated.</summary>
/// <remarks>Limits as Redis has them: an inline request or a multibulk header line longer than 64 KiB, more than
/// 1,048,576 arguments, or a bulk string longer than proto-max-bulk-len is a protocol error, found before the bytes
/// are buffered.</remarks>
internal static class RespParser
{
    /// <summary>The longest inline request, and the longest a length line may get without its CRLF (Redis's
    /// PROTO_INLINE_MAX_SIZE).</summary>
    public const int MaxInline = 64 << 10;

    /// <summary>The most arguments one command may have (Redis's limit on a multibulk length).</summary>
    public const int MaxArguments = 1024 * 1024;

    /// <summary>Parses the command that starts at <paramref name="start"/>.</summary>
    /// <param name="input">The bytes received so far.</param>
    /// <param name="start">Where the command starts.</param>
    /// <param name="args">Receives its arguments (on <see cref="ParseResult.Command"/> only).</param>
    /// <param name="maxBulk">proto-max-bulk-len.</param>
    /// <param name="end">After the command (on <see cref="ParseResult.Command"/>).</param>
    /// <param name="needed">On <see cref="ParseResult.Incomplete"/>: the least number of bytes from
    /// <paramref name="start"/> the command is known to need (from its bulk lengths), or 0.</param>
    /// <param name="error">On <see cref="ParseResult.Error"/>: what is wrong, after "ERR Protocol error: ".</param>
    public static ParseResult Parse(ReadOnlySpan<byte> input, int start, ArgList args, long maxBulk, out int end, out long needed, out string? error)
    {
        end = start;
        needed = 0;
        error = null;
        if (input[start] != (byte)'*') return ParseInline(input, start, args, out end, out error);

        int i = start + 1;
        switch (ReadLength(input, ref i, out long count))
        {
            case LengthResult.Incomplete:
                return ParseResult.Incomplete; // at most 18 digits so far: a runaway length line is Invalid
            case LengthResult.Invalid:
                return Fail("invalid multibulk length", out error);
        }
        if (count > MaxArguments) return Fail("invalid multibulk length", out error);
        int mark = args.Count;
        for (long k = 0; k < count; k++)
        {
            if (i >= input.Length) return Incomplete(args, mark);
            if (input[i] != (byte)'$') return Fail($"expected '$', got '{Printable(input[i])}'", out error);
            i++;
            var length = ReadLength(input, ref i, out long bulk);
            if (length == LengthResult.Incomplete) return Incomplete(args, mark);
            if (length == LengthResult.Invalid || bulk < 0 || bulk > maxBulk)
            {
                args.Truncate(mark);
                return Fail("invalid bulk length", out error);
            }
            if (input.Length - i < bulk + 2)
            {
                needed = i + bulk + 2 - start;
                return Incomplete(args, mark);
            }
            int to = i + (int)bulk;
            if (input[to] != (byte)'\r' || input[to + 1] != (byte)'\n')
            {
                args.Truncate(mark);
                return Fail("expected CRLF after a bulk string", out error);
            }
            args.Add(i, (int)bulk);
            i = to + 2;
        }
        end = i;
        return ParseResult.Command;
    }

    private static ParseResult Incomplete(ArgList args, int mark)
    {
        args.Truncate(mark);
        return ParseResult.Incomplete;
    }

    private static ParseResult Fail(string message, out string? error)
    {
        error = message;
        return ParseResult.Error;
    }

    private static string Printable(byte b) => b is >= 0x20 and < 0x7F ? ((char)b).ToString() : $"\\x{b:x2}";

    private enum LengthResult { Ok, Incomplete, Invalid }

    /// <summary>A decimal (optionally negative) ended by CRLF, from <paramref name="i"/>; on Ok, <paramref name="i"/>
    /// is after the CRLF.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static LengthResult ReadLength(ReadOnlySpan<byte> input, ref int i, out long value)
    {
        value = 0;
        int p = i;
        bool negative = false;
        if (p < input.Length && input[p] == (byte)'-')
        {
            negative = true;
            p++;
        }
        int digits = 0;
        while (true)
        {
            if (p >= input.Length) return digits > 18 ? LengthResult.Invalid : LengthResult.Incomplete;
            byte c = input[p];
            if (c == (byte)'\r') break;
            uint d = (uint)(c - '0');
            if (d > 9 || ++digits > 18) return LengthResult.Invalid;
            value = value * 10 + d;
            p++;
        }
        if (digits == 0) return LengthResult.Invalid;
        if (p + 1 >= input.Length) return LengthResult.Incomplete;
        if (input[p + 1] != (byte)'\n') return LengthResult.Invalid;
        if (negative) value = -value;
        i = p + 2;
        return LengthResult.Ok;
    }

    /// <summary>A line of words separated by spaces or tabs; a word may be quoted ("a b" or 'a b', no escapes).</summary>
    private static ParseResult ParseInline(ReadOnlySpan<byte> input, int start, ArgList args, out int end, out string? error)
    {
        end = start;
        error = null;
        int newline = input[start..].IndexOf((byte)'\n');
        if (newline < 0)
        {
            if (input.Length - start > MaxInline) return Fail("too big inline request", out error);
            return ParseResult.Incomplete;
        }
        if (newline > MaxInline) return Fail("too big inline request", out error);
        int lineEnd = start + newline;
        end = lineEnd + 1;
        if (lineEnd > start && input[lineEnd - 1] == (byte)'\r') lineEnd--;
        int mark = args.Count;
        int i = start;
        while (true)
        {
            while (i < lineEnd && input[i] is (byte)' ' or (byte)'\t') i++;
            if (i >= lineEnd) break;
            byte quote = input[i];
            if (quote is (byte)'"' or (byte)'\'')
            {
                int close = input[(i + 1)..lineEnd].IndexOf(quote);
                int after = i + 1 + close + 1;
                if (close < 0 || (after < lineEnd && input[after] is not ((byte)' ' or (byte)'\t')))
                {
                    args.Truncate(mark);
                    return Fail("unbalanced quotes in request", out error);
                }
                args.Add(i + 1, close);
                i = after;
            }
            else
            {
                int from = i;
                while (i < lineEnd && input[i] is not ((byte)' ' or (byte)'\t')) i++;
                args.Add(from, i - from);
            }
        }
        return ParseResult.Command;
    }
}

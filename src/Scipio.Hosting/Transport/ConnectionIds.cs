namespace Scipio.Hosting.Transport;

/// <summary>Connection ids as Kestrel makes them: 13 characters of base 32 over a counter that starts at the
/// process's start time, so ids do not repeat across restarts in one log.</summary>
internal static class ConnectionIds
{
    private const string Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
    private static long s_last = DateTime.UtcNow.Ticks;

    public static string Next() => string.Create(13, Interlocked.Increment(ref s_last), static (chars, id) =>
    {
        for (int i = chars.Length - 1; i >= 0; i--)
        {
            chars[i] = Digits[(int)(id & 31)];
            id >>= 5;
        }
    });
}

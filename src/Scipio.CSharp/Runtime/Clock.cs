using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Scipio.Runtime;

/// <summary>The shell's one clock: monotonic nanoseconds (Stopwatch, CLOCK_MONOTONIC on Linux). The core gets
/// "now" from here as an argument.</summary>
internal static class Clock
{
    private static readonly bool s_isNanoseconds = Stopwatch.Frequency == 1_000_000_000;
    private static readonly double s_nsPerTick = 1e9 / Stopwatch.Frequency;

    public static long NowNs
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            long t = Stopwatch.GetTimestamp();
            return s_isNanoseconds ? t : (long)(t * s_nsPerTick);
        }
    }

    /// <summary>Nanoseconds in <paramref name="t"/>, saturated at Time.Never: TimeSpan.MaxValue is 2^63 ticks, which
    /// would overflow as nanoseconds and turn a 29,000-year sleep into none.</summary>
    public static long ToNs(TimeSpan t) => Scipio.Core.Time.ofTicksSaturating(t.Ticks);

    public static TimeSpan FromNs(long ns) => TimeSpan.FromTicks(ns / Scipio.Core.Time.NanosPerTick);
}

namespace Scipio.Core

/// Time as the core sees it: monotonic nanoseconds handed in by the shell (which reads CLOCK_MONOTONIC).
/// The core never reads a clock; every function that needs "now" takes it as an argument.
[<RequireQualifiedAccess>]
module Time =
    /// No deadline: later than any real instant.
    [<Literal>]
    let Never = System.Int64.MaxValue

    /// Nanoseconds in one millisecond.
    [<Literal>]
    let NanosPerMilli = 1_000_000L

    /// Nanoseconds in a TimeSpan tick (100 ns).
    [<Literal>]
    let NanosPerTick = 100L

    /// `a + b`, clamped to `Never` instead of wrapping around.
    let inline addSaturating (a: int64) (b: int64) =
        if b > 0L && a > Never - b then Never else a + b

    /// A TimeSpan's ticks (100 ns each) in nanoseconds, clamped instead of overflowing: a span longer than `Never`
    /// nanoseconds (about 29,000 years; TimeSpan.MaxValue is one) is `Never`, and a negative span below
    /// `Int64.MinValue` nanoseconds is `Int64.MinValue`. Other negative spans convert exactly; callers that do not
    /// accept them (a Sleep, a latency budget) reject them before converting.
    let ofTicksSaturating (ticks: int64) =
        if ticks > Never / NanosPerTick then
            Never
        elif ticks < System.Int64.MinValue / NanosPerTick then
            System.Int64.MinValue
        else
            ticks * NanosPerTick

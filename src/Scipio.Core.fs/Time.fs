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

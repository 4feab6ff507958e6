namespace Scipio.Core

/// CPU shares of a task queue: while several queues are runnable, each gets CPU time in proportion to its shares.
[<RequireQualifiedAccess>]
module ShareMath =
    /// The fewest shares a queue may have.
    [<Literal>]
    let Min = 1

    /// The most shares a queue may have; a queue with this many advances its virtual runtime at wall-clock speed.
    [<Literal>]
    let Max = 1000

    /// True when `shares` is within Min..Max.
    let isValid (shares: int) = shares >= Min && shares <= Max

    /// Virtual runtime charged for running `elapsedNs` with `shares`: time scaled by Max / shares, so that a queue
    /// with twice the shares is charged half as much for the same CPU time.
    let inline virtualRuntime (shares: int) (elapsedNs: int64) = elapsedNs * int64 Max / int64 shares

    /// CPU time a queue with `shares` runs to be charged `virtualNs`: the inverse of virtualRuntime, computed in
    /// two parts so that a large gap cannot overflow.
    let realTime (shares: int) (virtualNs: int64) =
        virtualNs / int64 Max * int64 shares
        + virtualNs % int64 Max * int64 shares / int64 Max

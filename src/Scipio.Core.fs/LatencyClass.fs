namespace Scipio.Core

/// Latency class of a task queue, as the scheduler sees it.
[<Struct; RequireQualifiedAccess>]
type LatencyClass =
    /// Throughput work: it runs when its shares say so, and may wait a full time slice.
    | NotImportant
    /// Latency-sensitive work: once runnable it should run within `budgetNs`.
    | Matters of budgetNs: int64

/// Functions over LatencyClass. F# compiles this module as `LatencyClassModule` beside the type of the same name, so
/// C# calls `LatencyClassModule.budget`.
[<RequireQualifiedAccess>]
module LatencyClass =
    /// The budget of a latency-sensitive class, `Time.Never` for one that is not.
    let budget (latency: LatencyClass) =
        match latency with
        | LatencyClass.NotImportant -> Time.Never
        | LatencyClass.Matters budgetNs -> budgetNs

    /// True when the class asks to run within a budget.
    let matters (latency: LatencyClass) =
        match latency with
        | LatencyClass.NotImportant -> false
        | LatencyClass.Matters _ -> true

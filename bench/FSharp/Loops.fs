namespace Scipio.Bench.FSharp

open System.Threading.Tasks
open Scipio

/// One loop three ways, `n` iterations of a 64-bit add each: in `shard { }` (a preemption point per iteration, from
/// the builder), in `task { }` with a manual `do! Shard.YieldIfNeeded()` per iteration (the same fairness by hand),
/// and in `task { }` with no preemption point at all (the floor: what the loop costs when nothing checks). Each
/// returns its sum, which the caller keeps, so the JIT cannot drop the loop.
type Loops =
    /// `while` in shard { }.
    static member ShardLoop(n: int64) : Task<int64> =
        shard {
            let mutable i = 0L
            let mutable sum = 0L

            while i < n do
                sum <- sum + i
                i <- i + 1L

            return sum
        }

    /// `for` over an array in shard { }.
    static member ShardForArray(items: int64 array) : Task<int64> =
        shard {
            let mutable sum = 0L

            for x in items do
                sum <- sum + x

            return sum
        }

    /// `while` in task { } with `do! Shard.YieldIfNeeded()` in every iteration.
    static member TaskLoopYieldIfNeeded(n: int64) : Task<int64> =
        task {
            let mutable i = 0L
            let mutable sum = 0L

            while i < n do
                sum <- sum + i
                i <- i + 1L
                do! Shard.YieldIfNeeded()

            return sum
        }

    /// `while` in task { } without a preemption point.
    static member TaskLoop(n: int64) : Task<int64> =
        task {
            let mutable i = 0L
            let mutable sum = 0L

            while i < n do
                sum <- sum + i
                i <- i + 1L

            return sum
        }

    /// `for` over an array in task { } without a preemption point.
    static member TaskForArray(items: int64 array) : Task<int64> =
        task {
            let mutable sum = 0L

            for x in items do
                sum <- sum + x

            return sum
        }

namespace Scipio

open System
open System.Threading
open System.Threading.Tasks

/// Shards from F#: curried functions over the C# `Shard` class, taking F# functions and TimeSpans. `Shard.Run`,
/// `Shard.Spawn` and the other C# members stay reachable beside these (F# looks a name up in both).
/// <remarks>Every function but run, runWith, start, startWith and isOnShard must be called on a shard; elsewhere it
/// throws InvalidOperationException, as the C# API does.</remarks>
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Shard =
    /// Starts a shard with default options on a new thread, runs `main` on it and blocks until it completes;
    /// returns its result or rethrows its exception. See Shard.Run.
    let run (main: unit -> Task<'T>) : 'T = Scipio.Shard.Run(Func<Task<'T>> main)

    /// `run` with options (placement, ring size, preempt interval…).
    let runWith (options: ShardOptions) (main: unit -> Task<'T>) : 'T =
        Scipio.Shard.Run(Func<Task<'T>> main, options)

    /// Starts a shard with default options on a new thread and runs `main` on it, without blocking: the handle's
    /// Completion ends with main's result. See Shard.Start.
    let start (main: unit -> Task<'T>) : ShardHandle<'T> = Scipio.Shard.Start(Func<Task<'T>> main)

    /// `start` with options.
    let startWith (options: ShardOptions) (main: unit -> Task<'T>) : ShardHandle<'T> =
        Scipio.Shard.Start(Func<Task<'T>> main, options)

    /// Runs `work` on this shard, in the current task queue, as its own task.
    let spawn (work: unit -> Task<'T>) : Task<'T> = Scipio.Shard.Spawn(Func<Task<'T>> work)

    /// Runs `work` on this shard in `queue`, which shares the CPU with the others by its shares.
    let spawnInto (queue: TaskQueue) (work: unit -> Task<'T>) : Task<'T> =
        Scipio.Shard.SpawnInto(queue, Func<Task<'T>> work)

    /// Runs blocking `work` on a helper thread, off the shard; the result comes back to the shard.
    let spawnBlocking (work: unit -> 'T) : Task<'T> =
        Scipio.Shard.SpawnBlocking(Func<'T> work)

    /// Runs `work` on shard `shard` of this shard's pool; the result comes back here.
    let submitTo (shard: int) (work: unit -> Task<'T>) : Task<'T> =
        Scipio.Shard.SubmitTo(shard, Func<Task<'T>> work)

    /// Completes after `delay` (a timer on the shard's ring, never the ThreadPool's); zero waits one turn of the run
    /// loop.
    let sleep (delay: TimeSpan) : ValueTask = Scipio.Shard.Sleep delay

    /// `sleep`, ended early with OperationCanceledException when `cancellationToken` is canceled.
    let sleepWith (cancellationToken: CancellationToken) (delay: TimeSpan) : ValueTask =
        Scipio.Shard.Sleep(delay, cancellationToken)

    /// A preemption point: completes at once unless the queue should give the CPU back, in which case the rest
    /// waits at the back of its queue. Loops in `shard { }` need none.
    let yieldIfNeeded () : ValueTask = Scipio.Shard.YieldIfNeeded()

    /// Always yields: the rest goes to the back of its queue and the scheduler picks again.
    let yieldNow () : YieldAwaitable = Scipio.Shard.Yield()

    /// Whether the running queue should give the CPU back (Shard.NeedPreempt).
    let needPreempt () : bool = Scipio.Shard.NeedPreempt

    /// Runs `work` with a token that is canceled at the deadline; TimeoutException if it ends canceled after it.
    let withTimeout (timeout: TimeSpan) (work: CancellationToken -> Task<'T>) : Task<'T> =
        Scipio.Shard.WithTimeout(timeout, Func<CancellationToken, Task<'T>> work)

    /// A timer that ticks every `period` on this shard: `while! timer.WaitForNextTickAsync() do …`.
    let periodicTimer (period: TimeSpan) : ShardPeriodicTimer = Scipio.Shard.CreatePeriodicTimer period

    /// Runs `action` once after `delay`, in the current task queue; dispose the result to cancel it.
    let runAfter (delay: TimeSpan) (action: unit -> unit) : ShardTimerAction =
        Scipio.Shard.RunAfter(delay, Action action)

    /// Runs `action` every `period`, in the current task queue; dispose the result to stop it.
    let runEvery (period: TimeSpan) (action: unit -> unit) : ShardTimerAction =
        Scipio.Shard.RunEvery(period, Action action)

    /// Whether this thread runs a shard.
    let isOnShard () : bool = Scipio.Shard.IsOnShard

    /// This shard's index in its pool (0 for a lone shard).
    let id () : int = Scipio.Shard.Id

    /// The CPU this shard is pinned to (or runs on at this instant when it is not pinned to one).
    let cpu () : int = Scipio.Shard.Cpu

    /// This shard's pool, None for a lone shard.
    let pool () : ShardPool option = Option.ofObj Scipio.Shard.Pool

    /// The task queue the calling code runs in.
    let currentQueue () : TaskQueue = Scipio.Shard.CurrentTaskQueue

    /// This shard's statistics: runtime, preemptions, parks, rings, and each task queue's.
    let stats () : ShardStats = Scipio.Shard.Stats

/// Task queues from F#: create one on the current shard, read and change it.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module TaskQueue =
    /// A new task queue on this shard: `name` (unique on the shard), its CPU `shares` (Shares.Static 1..1000 or
    /// Shares.Dynamic) and its `latency` class (Latency.NotImportant or Latency.Matters budget).
    let create (name: string) (shares: Shares) (latency: Latency) : TaskQueue =
        Scipio.Shard.CreateTaskQueue(name, shares, latency)

    /// The queue's name.
    let name (queue: TaskQueue) : string = queue.Name

    /// The queue's statistics: runtime, tasks run, times picked, longest wait.
    let stats (queue: TaskQueue) : TaskQueueStats = queue.Stats

    /// Gives the queue new CPU shares (on its shard); what it ran so far stands.
    let setShares (shares: Shares) (queue: TaskQueue) : unit = queue.Shares <- shares

    /// Runs `work` in the queue (on its shard, which must be the current one).
    let spawn (work: unit -> Task<'T>) (queue: TaskQueue) : Task<'T> =
        Scipio.Shard.SpawnInto(queue, Func<Task<'T>> work)

/// Shard pools from F#: start one, send work to its shards, stop it.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module ShardPool =
    /// Starts a pool with default options: one shard per CPU the process may use, spread over the machine.
    let start () : ShardPool = Scipio.ShardPool.Start()

    /// Starts a pool with `options` (shard count, placement, per-shard options).
    let startWith (options: ShardPoolOptions) : ShardPool = Scipio.ShardPool.Start options

    /// The number of shards.
    let count (pool: ShardPool) : int = pool.Count

    /// The CPU of each shard, by shard id (-1 where a shard is not pinned).
    let cpus (pool: ShardPool) : int list = List.ofSeq pool.Cpus

    /// Runs `work` on shard `shard` (from any thread); the result or exception comes back to the caller.
    let submitTo (shard: int) (work: unit -> Task<'T>) (pool: ShardPool) : Task<'T> =
        pool.SubmitTo(shard, Func<Task<'T>> work)

    /// Runs `work` on every shard; the results by shard id.
    let runOnAll (work: unit -> Task<'T>) (pool: ShardPool) : Task<'T array> = pool.RunOnAll(Func<Task<'T>> work)

    /// Stops taking work, lets submitted work finish, then stops and joins the shards.
    let stop (pool: ShardPool) : Task = pool.DisposeAsync().AsTask()

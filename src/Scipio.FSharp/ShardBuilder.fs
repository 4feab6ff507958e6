// TaskCode and TaskStateMachineData are FSharp.Core's "for compiled F# code" types: a builder of resumable code is
// where they are meant to be used.
#nowarn "1204"

namespace Scipio

open System
open System.Runtime.CompilerServices
open System.Threading.Tasks
open Microsoft.FSharp.Control
open Microsoft.FSharp.Core.CompilerServices
open Microsoft.FSharp.Core.CompilerServices.StateMachineHelpers

/// The preemption signal of the shard running on this thread, read once and kept: what `shard { }` loops check after
/// each iteration. Shard.NeedPreempt finds the shard through a thread-static on every call; a loop that keeps this
/// pays only the signal's memory reads.
[<Struct; NoEquality; NoComparison>]
type PreemptionSignal =
    val private shard: Scipio.Runtime.ShardExecutor
    private new(shard) = { shard = shard }

    /// The signal of the shard running on this thread.
    /// <exception cref="T:System.InvalidOperationException">The thread does not run a shard.</exception>
    static member Current = PreemptionSignal(Scipio.Runtime.ShardExecutor.Require "shard { }")

    /// Shard.NeedPreempt of the shard it was read on: its slice is over, a latency-sensitive queue waits, or work
    /// arrived from another thread. A few memory reads.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    member signal.IsRaised() = signal.shard.NeedPreempt

/// The builder behind `shard { }`: F#'s `task { }` (the same resumable state machine over FSharp.Core's TaskCode, the
/// same Bind and ReturnFrom for Task, Task<'T>, ValueTask, ValueTask<'T>, Async and any awaitable, which it calls)
/// with a preemption point at the end of every iteration of a `for` or `while` loop: it reads Shard.NeedPreempt and,
/// only when that is true, yields as `Shard.YieldIfNeeded()` does, so that a long loop written without a thought for
/// the scheduler stays fair to the shard's other task queues.
/// <remarks>A `shard { }` must start on a shard (inside Shard.Run, Shard.Start, a pool's work or work spawned there):
/// elsewhere it throws InvalidOperationException at once, as the C# API does, rather than returning a faulted task.
/// When no yield is due, the check is a few memory reads: no allocation, no await. FSharp.Core's TaskBuilderBase
/// has no public constructor, so this builder is a sibling of `task { }` rather than a subclass: the members that
/// do not concern loops forward to FSharp.Core's resumable code and to `task`'s own Bind and ReturnFrom.</remarks>
[<Sealed>]
type ShardBuilder() =

    /// Throws the not-on-a-shard InvalidOperationException unless the calling thread runs a shard.
    static member RequireShard() =
        if not Shard.IsOnShard then
            raise (
                InvalidOperationException(
                    "shard { } must start on a shard: inside Shard.Run, Shard.Start or work spawned there. Code "
                    + "that left the shard (ConfigureAwait(false), Task.Run, F#'s backgroundTask) cannot use it; "
                    + "task { } runs anywhere."
                )
            )

    /// The dynamic implementation, used where the compiler does not make a state machine (F# Interactive, code run
    /// from quotations). Compiled code never calls it: warning 3511 reports a `shard { }` that would.
    static member RunDynamic(code: TaskCode<'T, 'T>) : Task<'T> =
        ShardBuilder.RequireShard()
        TaskBuilder.RunDynamic code

    /// A preemption point: reads Shard.NeedPreempt and yields, as `do! Shard.YieldIfNeeded()` would, only when it is
    /// true. Loops in `shard { }` run one at the end of every iteration.
    static member inline PreemptionPoint<'TOverall>() : TaskCode<'TOverall, unit> =
        TaskCode<'TOverall, unit>(fun sm ->
            if __useResumableCode then
                if Shard.NeedPreempt then
                    // The yield source never completes synchronously: suspend, and resume after the others ran.
                    let mutable awaiter = Shard.YieldIfNeeded().GetAwaiter()
                    let mutable __stack_resumed = awaiter.IsCompleted

                    if not __stack_resumed then
                        let __stack_yield_fin = ResumableCode.Yield().Invoke(&sm)
                        __stack_resumed <- __stack_yield_fin

                    if __stack_resumed then
                        awaiter.GetResult()
                        true
                    else
                        sm.Data.MethodBuilder.AwaitUnsafeOnCompleted(&awaiter, &sm)
                        false
                else
                    true
            elif Shard.NeedPreempt then
                TaskBuilderBase.BindDynamic(&sm, Shard.YieldIfNeeded(), (fun () -> ResumableCode.Zero()))
            else
                true)

    /// Delays the code until it runs.
    member inline _.Delay(generator: unit -> TaskCode<'TOverall, 'T>) : TaskCode<'TOverall, 'T> =
        ResumableCode.Delay generator

    /// Nothing: the implicit `else` of an `if`.
    [<DefaultValue>]
    member inline _.Zero() : TaskCode<'TOverall, unit> = ResumableCode.Zero()

    /// `return value`.
    member inline _.Return(value: 'T) : TaskCode<'T, 'T> =
        TaskCode<'T, 'T>(fun sm ->
            sm.Data.Result <- value
            true)

    /// One step, then the next.
    member inline _.Combine(first: TaskCode<'TOverall, unit>, next: TaskCode<'TOverall, 'T>) : TaskCode<'TOverall, 'T> =
        ResumableCode.Combine(first, next)

    /// `while condition do body`, with a preemption point after each iteration: when the shard's preemption signal
    /// (read once, as the loop starts) is raised, the loop yields as `Shard.YieldIfNeeded()` does.
    member inline _.While
        ([<InlineIfLambda>] condition: unit -> bool, body: TaskCode<'TOverall, unit>)
        : TaskCode<'TOverall, unit> =
        TaskCode<'TOverall, unit>(fun sm ->
            if __useResumableCode then
                let mutable signal = PreemptionSignal.Current
                let mutable __stack_go = true

                while __stack_go && condition () do
                    // The body may hold resumption points: resuming branches straight into it.
                    let __stack_body_fin = body.Invoke(&sm)

                    if __stack_body_fin && signal.IsRaised() then
                        // The yield source never completes synchronously: suspend, and resume after the others ran.
                        let mutable awaiter = Shard.YieldIfNeeded().GetAwaiter()
                        let mutable __stack_resumed = awaiter.IsCompleted

                        if not __stack_resumed then
                            let __stack_yield_fin = ResumableCode.Yield().Invoke(&sm)
                            __stack_resumed <- __stack_yield_fin

                        if __stack_resumed then
                            awaiter.GetResult()
                            // Read again after a resumption: cheap next to the yield, and right whatever the
                            // state machine kept across it.
                            signal <- PreemptionSignal.Current
                        else
                            sm.Data.MethodBuilder.AwaitUnsafeOnCompleted(&awaiter, &sm)

                        __stack_go <- __stack_resumed
                    else
                        __stack_go <- __stack_body_fin

                __stack_go
            else
                ResumableCode.WhileDynamic(
                    &sm,
                    condition,
                    ResumableCode.Combine(body, ShardBuilder.PreemptionPoint<'TOverall>())
                ))

    /// `for item in sequence do body`, with a preemption point after each iteration.
    member inline this.For(sequence: seq<'T>, body: 'T -> TaskCode<'TOverall, unit>) : TaskCode<'TOverall, unit> =
        ResumableCode.Using(
            sequence.GetEnumerator(),
            fun items ->
                this.While(
                    (fun () -> items.MoveNext()),
                    TaskCode<'TOverall, unit>(fun sm -> (body items.Current).Invoke(&sm))
                )
        )

    /// `try body with handler`: catches what the body throws, before and after its awaits.
    member inline _.TryWith
        (body: TaskCode<'TOverall, 'T>, handler: exn -> TaskCode<'TOverall, 'T>)
        : TaskCode<'TOverall, 'T> =
        ResumableCode.TryWith(body, handler)

    /// `try body finally compensation`: the compensation runs once the body is done, however it ends.
    member inline _.TryFinally
        (body: TaskCode<'TOverall, 'T>, [<InlineIfLambda>] compensation: unit -> unit)
        : TaskCode<'TOverall, 'T> =
        ResumableCode.TryFinally(
            body,
            ResumableCode<_, _>(fun _ ->
                compensation ()
                true)
        )

    /// `use resource = …` for an IAsyncDisposable: awaits DisposeAsync when the body is done, as task { } does.
    member inline _.Using<'Resource, 'TOverall, 'T when 'Resource :> IAsyncDisposable>
        (resource: 'Resource, body: 'Resource -> TaskCode<'TOverall, 'T>)
        : TaskCode<'TOverall, 'T> =
        task.Using(resource, body)

    /// `and!` of two tasks: both run, the result pairs their results.
    member inline _.MergeSources(first: Task<'T1>, second: Task<'T2>) = task.MergeSources(first, second)

    /// Runs the code as a Task on the current shard; throws InvalidOperationException off a shard.
    member inline _.Run(code: TaskCode<'T, 'T>) : Task<'T> =
        if __useResumableCode then
            __stateMachine<TaskStateMachineData<'T>, Task<'T>>
                (MoveNextMethodImpl<_>(fun sm ->
                    __resumeAt sm.ResumptionPoint
                    let mutable __stack_error: Exception | null = null

                    try
                        let __stack_done = code.Invoke(&sm)

                        if __stack_done then
                            sm.Data.MethodBuilder.SetResult(sm.Data.Result)
                    with error ->
                        __stack_error <- error

                    // The exception is set outside the handler, as FSharp.Core's task { } does (dotnet/roslyn#26567).
                    match __stack_error with
                    | null -> ()
                    | error -> sm.Data.MethodBuilder.SetException error))
                (SetStateMachineMethodImpl<_>(fun sm state -> sm.Data.MethodBuilder.SetStateMachine state))
                (AfterCode<_, _>(fun sm ->
                    ShardBuilder.RequireShard()
                    sm.Data.MethodBuilder <- AsyncTaskMethodBuilder<'T>.Create()
                    sm.Data.MethodBuilder.Start(&sm)
                    sm.Data.MethodBuilder.Task))
        else
            ShardBuilder.RunDynamic code

/// `let!`, `do!` and `return!` of any awaitable (ValueTask, ValueTask<'T>, Task, a YieldAwaitable…) in `shard { }`:
/// the lowest of three priorities, as in FSharp.Core's task { } (extensions opened later win).
[<AutoOpen>]
module ShardBuilderLowPriority =
    type ShardBuilder with

        /// `let! x = awaitable`: awaits anything with GetAwaiter, as task { } does.
        [<NoEagerConstraintApplication>]
        member inline _.Bind< ^TaskLike, 'TResult1, 'TResult2, ^Awaiter, 'TOverall
            when ^TaskLike: (member GetAwaiter: unit -> ^Awaiter)
            and ^Awaiter :> ICriticalNotifyCompletion
            and ^Awaiter: (member get_IsCompleted: unit -> bool)
            and ^Awaiter: (member GetResult: unit -> 'TResult1)>
            (awaitable: ^TaskLike, continuation: 'TResult1 -> TaskCode<'TOverall, 'TResult2>)
            : TaskCode<'TOverall, 'TResult2> =
            task.Bind(awaitable, continuation)

        /// `return! awaitable`.
        [<NoEagerConstraintApplication>]
        member inline _.ReturnFrom< ^TaskLike, ^Awaiter, 'T
            when ^TaskLike: (member GetAwaiter: unit -> ^Awaiter)
            and ^Awaiter :> ICriticalNotifyCompletion
            and ^Awaiter: (member get_IsCompleted: unit -> bool)
            and ^Awaiter: (member GetResult: unit -> 'T)>
            (awaitable: ^TaskLike)
            : TaskCode<'T, 'T> =
            task.ReturnFrom awaitable

        /// `use resource = …` for an IDisposable: disposed when the body is done.
        member inline _.Using<'Resource, 'TOverall, 'T when 'Resource :> IDisposable | null>
            (resource: 'Resource, body: 'Resource -> TaskCode<'TOverall, 'T>)
            : TaskCode<'TOverall, 'T> =
            ResumableCode.Using(resource, body)

/// `let!` and `return!` of an F# Async in `shard { }` (started at once on the shard, as task { } starts it).
[<AutoOpen>]
module ShardBuilderMediumPriority =
    type ShardBuilder with

        /// `let! x = computation` for an Async.
        member inline _.Bind
            (computation: Async<'TResult1>, continuation: 'TResult1 -> TaskCode<'TOverall, 'TResult2>)
            : TaskCode<'TOverall, 'TResult2> =
            task.Bind(computation, continuation)

        /// `return! computation` for an Async.
        member inline _.ReturnFrom(computation: Async<'T>) : TaskCode<'T, 'T> = task.ReturnFrom computation

/// `let!` and `return!` of a Task<'T> in `shard { }`: the highest priority, so that a Task<'T> binds as a task.
[<AutoOpen>]
module ShardBuilderHighPriority =
    type ShardBuilder with

        /// `let! x = t` for a Task<'T>.
        member inline _.Bind
            (t: Task<'TResult1>, continuation: 'TResult1 -> TaskCode<'TOverall, 'TResult2>)
            : TaskCode<'TOverall, 'TResult2> =
            task.Bind(t, continuation)

        /// `return! t` for a Task<'T>.
        member inline _.ReturnFrom(t: Task<'T>) : TaskCode<'T, 'T> = task.ReturnFrom t

/// Brings the `shard { }` builder into scope with `open Scipio`.
[<AutoOpen>]
module ShardBuilderInstance =
    /// `shard { }`: a `task { }` for code on a shard whose `for` and `while` loops are preemption points (see
    /// ShardBuilder).
    let shard = ShardBuilder()

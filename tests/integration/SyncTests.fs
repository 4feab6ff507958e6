/// Scipio.Sync on a real shard: LocalSemaphore, LocalRwLock and Gate — FIFO service, cancellation that never
/// consumes a permit, writers not starved, passes that hold a closing gate open, the shard-ownership check, zero
/// allocation per wait in steady state, and a model-based property of the semaphore.
module Scipio.Integration.Tests.SyncTests

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Sync
open Scipio.Integration.Tests.Helpers

/// Awaits `wait`, then logs "granted id", or "canceled id" if it ended canceled. Starts synchronously: a wait served
/// at once is logged before this returns.
let private logWait (log: List<string>) (id: int) (wait: ValueTask) : Task<unit> =
    task {
        try
            do! wait
            log.Add $"granted %d{id}"
        with :? OperationCanceledException ->
            log.Add $"canceled %d{id}"
    }

/// Awaits a lock request and logs "<name> in", keeping the hold in `holds`.
let private logHold
    (log: List<string>)
    (holds: Dictionary<string, IDisposable>)
    (name: string)
    (request: ValueTask<IDisposable>)
    =
    task {
        let! hold = request
        holds[name] <- hold
        log.Add $"%s{name} in"
    }

/// One trip to the back of the queue: every continuation enqueued before it has run.
let private settle () = Shard.Yield()

let private semaphoreBasics =
    test "LocalSemaphore: TryWait, WaitAsync and Release count permits; bad arguments throw" {
        runShard (fun () ->
            task {
                let sem = LocalSemaphore 2
                Expect.isTrue (sem.TryWait()) "a permit is available"
                let wait = sem.WaitAsync()
                Expect.isTrue wait.IsCompletedSuccessfully "a wait with a permit available completes synchronously"
                Expect.equal sem.CurrentCount 0 "both permits taken"
                Expect.isFalse (sem.TryWait()) "no permit left"
                sem.Release 2
                Expect.equal sem.CurrentCount 2 "Release(2) adds two permits"

                expectExn<ArgumentOutOfRangeException> "Release(0)" (thrownBy (fun () -> sem.Release 0))
                |> ignore

                expectExn<ArgumentOutOfRangeException>
                    "new LocalSemaphore(-1)"
                    (thrownBy (fun () -> LocalSemaphore -1))
                |> ignore

                use cts = new CancellationTokenSource()
                cts.Cancel()
                let canceled = sem.WaitAsync cts.Token
                Expect.isTrue canceled.IsCanceled "a canceled token fails the wait even with permits available"
                Expect.equal sem.CurrentCount 2 "and takes no permit"
                sem.Release(Int32.MaxValue - 2)

                expectExn<SemaphoreFullException> "past int.MaxValue" (thrownBy (fun () -> sem.Release 1))
                |> ignore
            })
    }

let private semaphoreFifo =
    test "LocalSemaphore serves waiters in arrival order, never inline in Release" {
        let log =
            runShard (fun () ->
                task {
                    let sem = LocalSemaphore 0
                    let log = List<string>()
                    let waits = [| for id in 0..4 -> logWait log id (sem.WaitAsync()) |]
                    sem.Release 2
                    Expect.isEmpty log "granted waiters resume later, in their queue, not inside Release"
                    do! settle ()
                    Expect.equal (List.ofSeq log) [ "granted 0"; "granted 1" ] "the first two, in order"
                    sem.Release 1
                    sem.Release 2
                    do! settle ()
                    let! _ = Task.WhenAll waits
                    return List.ofSeq log
                })

        Expect.equal log [ for id in 0..4 -> $"granted %d{id}" ] "every waiter, in arrival order"
    }

let private semaphoreCancel =
    test "LocalSemaphore: a canceled waiter takes no permit, the next one does (on the shard and from another thread)" {
        runShard (fun () ->
            task {
                let sem = LocalSemaphore 0
                let log = List<string>()
                use cts = new CancellationTokenSource()
                let w0 = logWait log 0 (sem.WaitAsync cts.Token)
                let w1 = logWait log 1 (sem.WaitAsync())
                cts.Cancel()
                do! settle ()
                Expect.equal (List.ofSeq log) [ "canceled 0" ] "the canceled wait ends with OperationCanceledException"
                sem.Release 1
                do! settle ()
                Expect.equal (List.ofSeq log) [ "canceled 0"; "granted 1" ] "the permit goes to the next waiter"
                Expect.equal sem.CurrentCount 0 "and is consumed once"
                do! w0
                do! w1

                // Canceled from another thread: the callback is posted to the shard.
                log.Clear()
                use cts2 = new CancellationTokenSource()
                let w2 = logWait log 2 (sem.WaitAsync cts2.Token)
                do! Task.Run(fun () -> cts2.Cancel())
                do! w2
                Expect.equal (List.ofSeq log) [ "canceled 2" ] "canceled from a ThreadPool thread"
                sem.Release 1
                Expect.equal sem.CurrentCount 1 "nobody waits: the permit is kept"
                Expect.isTrue (sem.TryWait()) "and can be taken"

                // Canceled at the same moment as the Release: the token is canceled on another thread, whose
                // callback is posted but not yet run (the shard is busy in this very work item) when Release comes.
                log.Clear()
                use cts3 = new CancellationTokenSource()
                let w3 = logWait log 3 (sem.WaitAsync cts3.Token)
                let w4 = logWait log 4 (sem.WaitAsync())
                Task.Run(fun () -> cts3.Cancel()).Wait()
                sem.Release 1
                do! settle ()
                Expect.equal (List.ofSeq log) [ "canceled 3"; "granted 4" ] "the racing permit goes to the next waiter"
                let! _ = Task.WhenAll(w3, w4)
                Expect.equal sem.CurrentCount 0 "no permit lost or made up"
            })
    }

let private semaphoreTryWaitVsWaiters =
    test "LocalSemaphore: a TryWait after a Release never overtakes a waiting waiter" {
        runShard (fun () ->
            task {
                let sem = LocalSemaphore 0
                let log = List<string>()
                let w = logWait log 0 (sem.WaitAsync())
                sem.Release 1
                Expect.isFalse (sem.TryWait()) "the released permit belongs to the waiter"
                Expect.isFalse (sem.WaitAsync().IsCompleted) "so does it against a new WaitAsync, which queues"
                Expect.equal sem.CurrentCount 0 "no permit is visible"
                do! w
                Expect.equal (List.ofSeq log) [ "granted 0" ] "the waiter got it"
            })
    }

let private rwReadersShareWriterExcludes =
    test "LocalRwLock: readers share; a writer excludes readers and writers" {
        runShard (fun () ->
            task {
                let rw = LocalRwLock()
                let log = List<string>()
                let holds = Dictionary<string, IDisposable>()
                let r1 = rw.ReadLockAsync()
                let r2 = rw.ReadLockAsync()
                Expect.isTrue (r1.IsCompletedSuccessfully && r2.IsCompletedSuccessfully) "readers share at once"
                Expect.equal rw.CurrentReaders 2 "two readers"
                let w = logHold log holds "w" (rw.WriteLockAsync())
                Expect.isFalse w.IsCompleted "the writer waits for the readers"
                r1.Result.Dispose()
                do! settle ()
                Expect.isEmpty log "one reader still in"
                r2.Result.Dispose()
                do! settle ()
                Expect.equal (List.ofSeq log) [ "w in" ] "the writer goes in when the last reader leaves"
                Expect.isTrue rw.IsWriteLocked "write-locked"
                let r3 = logHold log holds "r3" (rw.ReadLockAsync())
                let w2 = logHold log holds "w2" (rw.WriteLockAsync())
                do! settle ()
                Expect.equal (List.ofSeq log) [ "w in" ] "a reader and a writer wait behind the writer"
                holds["w"].Dispose()
                do! settle ()
                Expect.equal (List.ofSeq log) [ "w in"; "r3 in" ] "FIFO: the reader first, the writer still excluded"
                holds["r3"].Dispose()
                let! _ = Task.WhenAll(w, r3, w2)
                Expect.equal (List.ofSeq log) [ "w in"; "r3 in"; "w2 in" ] "then the second writer"
                holds["w2"].Dispose()
                Expect.isFalse rw.IsWriteLocked "free again"
            })
    }

let private rwWriterNotStarved =
    test "LocalRwLock: a waiting writer is not starved by a stream of readers" {
        runShard (fun () ->
            task {
                let rw = LocalRwLock()
                let log = List<string>()
                let holds = Dictionary<string, IDisposable>()
                let! first = rw.ReadLockAsync()
                let w = logHold log holds "w" (rw.WriteLockAsync())

                let readers =
                    [| for i in 1..3 -> logHold log holds $"r%d{i}" (rw.ReadLockAsync()) |]

                do! settle ()
                Expect.isEmpty log "later readers queue behind a waiting writer (though only readers hold the lock)"
                Expect.equal rw.CurrentReaders 1 "only the first reader is in"
                first.Dispose()
                do! settle ()
                Expect.equal (List.ofSeq log) [ "w in" ] "the writer goes first"
                holds["w"].Dispose()
                let! _ = Task.WhenAll readers
                Expect.equal (List.ofSeq log) [ "w in"; "r1 in"; "r2 in"; "r3 in" ] "then the readers, together"
                Expect.equal rw.CurrentReaders 3 "all three share"

                // A canceled waiting writer lets the readers queued behind it in.
                use cts = new CancellationTokenSource()

                let! canceledWriter =
                    thrownByTask (fun () ->
                        task {
                            let pending = rw.WriteLockAsync cts.Token
                            let late = rw.ReadLockAsync()
                            Expect.isFalse late.IsCompleted "a reader queues behind the waiting writer"
                            cts.Cancel()
                            let! hold = late
                            hold.Dispose()
                            return! pending
                        })

                expectExn<OperationCanceledException> "the canceled writer" canceledWriter
                |> ignore

                for KeyValue(name, hold) in holds do
                    if name.StartsWith "r" then
                        hold.Dispose()

                Expect.equal rw.CurrentReaders 0 "every reader left"
                Expect.isFalse rw.IsWriteLocked "the canceled writer never held the lock"
            })
    }

let private releaseTwice =
    test "Disposing a lock hold or a gate pass twice is harmless" {
        runShard (fun () ->
            task {
                let rw = LocalRwLock()
                let! r1 = rw.ReadLockAsync()
                let! r2 = rw.ReadLockAsync()
                r1.Dispose()
                r1.Dispose()
                Expect.equal rw.CurrentReaders 1 "the second Dispose did not release the other reader"
                r2.Dispose()
                let! w = rw.WriteLockAsync()
                w.Dispose()
                let! r3 = rw.ReadLockAsync()
                w.Dispose()
                r1.Dispose()
                Expect.equal rw.CurrentReaders 1 "stale Disposes after a later acquisition do nothing"
                r3.Dispose()
                Expect.equal rw.CurrentReaders 0 "released"
                let gate = Gate()
                let p1 = gate.Enter()
                let p2 = gate.Enter()
                p1.Dispose()
                p1.Dispose()
                Expect.equal gate.Count 1 "a pass disposed twice counts once"
                p2.Dispose()
            })
    }

let private gateClose =
    test "Gate: CloseAsync completes only once every pass is disposed; Enter after it throws" {
        runShard (fun () ->
            task {
                let gate = Gate()
                let p1 = gate.Enter()
                let p2 = gate.Enter()
                Expect.equal gate.Count 2 "two passes out"
                let closed = gate.CloseAsync()
                Expect.isTrue gate.IsClosing "closing"
                Expect.isFalse closed.IsCompleted "two passes are out"

                let e =
                    thrownBy (fun () -> gate.Enter())
                    |> expectExactExn<InvalidOperationException> "Enter after CloseAsync"

                Expect.stringContains e.Message "closed" "the message says the gate is closed"
                let entered, _ = gate.TryEnter()
                Expect.isFalse entered "TryEnter refuses too"
                p1.Dispose()
                do! settle ()
                Expect.isFalse closed.IsCompleted "one pass is still out"
                p2.Dispose()
                Expect.isTrue (Object.ReferenceEquals(gate.CloseAsync(), closed)) "CloseAsync again: the same Task"
                do! closed
                Expect.equal gate.Count 0 "every pass returned"
                let empty = Gate()
                Expect.isTrue (empty.CloseAsync().IsCompletedSuccessfully) "a gate with no pass out closes at once"
            })
    }

let private wrongShard =
    test "Using a Scipio.Sync primitive from another shard or thread throws InvalidOperationException" {
        let created =
            TaskCompletionSource<LocalSemaphore * LocalRwLock * Gate * IDisposable>()

        let finished = TaskCompletionSource()

        let owner =
            Shard.Start(
                Func<Task>(fun () ->
                    task {
                        let rw = LocalRwLock()
                        let gate = Gate()
                        let! hold = rw.ReadLockAsync()
                        created.SetResult((LocalSemaphore 1, rw, gate, hold))
                        do! finished.Task
                        hold.Dispose()
                    }),
                ShardOptions(Placement = Placement.Fixed 0)
            )

        try
            let sem, rw, gate, hold = awaitBounded "the owning shard" shardTimeout created.Task

            let fromOtherShard =
                Shard
                    .Start(
                        Func<Task<exn option list>>(fun () ->
                            task {
                                let attempts: (unit -> unit) list =
                                    [
                                        fun () -> sem.TryWait() |> ignore
                                        fun () -> sem.WaitAsync() |> ignore
                                        fun () -> sem.Release()
                                        fun () -> sem.CurrentCount |> ignore
                                        fun () -> rw.ReadLockAsync() |> ignore
                                        fun () -> rw.WriteLockAsync() |> ignore
                                        fun () -> hold.Dispose()
                                        fun () -> gate.Enter() |> ignore
                                        fun () -> gate.CloseAsync() |> ignore
                                    ]

                                return [ for f in attempts -> thrownBy f ]
                            }),
                        ShardOptions(Placement = Placement.Fixed 1)
                    )
                    .Completion
                |> awaitBounded "the other shard" shardTimeout

            for thrown in fromOtherShard do
                let e = expectExactExn<InvalidOperationException> "a call from shard B" thrown
                Expect.stringContains e.Message "belongs to shard" "the message names the owning shard"

            let offShard =
                expectExactExn<InvalidOperationException> "a call off any shard" (thrownBy (fun () -> sem.TryWait()))

            Expect.stringContains offShard.Message "not a shard" "the message says the caller is not on a shard"

            thrownBy (fun () -> LocalSemaphore 1)
            |> expectExactExn<InvalidOperationException> "new LocalSemaphore off a shard"
            |> ignore

            expectExactExn<InvalidOperationException> "new Gate off a shard" (thrownBy (fun () -> Gate()))
            |> ignore
        finally
            finished.TrySetResult() |> ignore

            if not (owner.Completion.Wait shardTimeout) then
                failtest "the owning shard did not end"
    }

// ---- allocations: counts on the shard thread over 100k cycles after a warm-up (see AllocationTests.fs for why
// every `let mutable` sits at the top of the task) ----

let private warmup = 10_000
let private cycles = 100_000

let private expectNoAllocation (what: string) (bytes: int64) =
    Expect.isLessThan
        (float bytes / float cycles)
        1.0
        $"%s{what} should allocate nothing in steady state: %d{bytes} B over %d{cycles} cycles"

/// Runs `cycle` `warmup` times, then measures `cycles` of it on the shard thread.
let private measure (cycle: int -> ValueTask) : Task<int64> =
    task {
        let thread = Environment.CurrentManagedThreadId
        let mutable before = 0L
        let mutable measured = 0L
        let mutable pass = 0
        let mutable i = 0

        while pass < 2 do
            before <- GC.GetAllocatedBytesForCurrentThread()
            i <- 0

            while i < (if pass = 0 then warmup else cycles) do
                do! cycle i
                i <- i + 1

            measured <- GC.GetAllocatedBytesForCurrentThread() - before
            pass <- pass + 1

        Expect.equal Environment.CurrentManagedThreadId thread "the loop stayed on the shard thread"
        return measured
    }

/// Takes and releases a hold `warmup` times, then measures `cycles` of it on the shard thread.
let private measureHolds (acquire: unit -> ValueTask<IDisposable>) : Task<int64> =
    task {
        let thread = Environment.CurrentManagedThreadId
        let mutable before = 0L
        let mutable measured = 0L
        let mutable pass = 0
        let mutable i = 0

        while pass < 2 do
            before <- GC.GetAllocatedBytesForCurrentThread()
            i <- 0

            while i < (if pass = 0 then warmup else cycles) do
                let! hold = acquire ()
                hold.Dispose()
                i <- i + 1

            measured <- GC.GetAllocatedBytesForCurrentThread() - before
            pass <- pass + 1

        Expect.equal Environment.CurrentManagedThreadId thread "the loop stayed on the shard thread"
        return measured
    }

let private allocations =
    test "Scipio.Sync allocates nothing per wait, hold or pass in steady state" {
        runShard (fun () ->
            task {
                // Uncontended: the synchronous paths.
                let sem = LocalSemaphore 1

                let! bytes =
                    measure (fun _ ->
                        let wait = sem.WaitAsync()
                        sem.Release()
                        wait)

                expectNoAllocation "LocalSemaphore WaitAsync+Release (uncontended)" bytes

                // Contended: two tasks ping-ponging through two semaphores, every wait suspends on a pooled node.
                let ping = LocalSemaphore 0
                let pong = LocalSemaphore 0

                let partner =
                    spawn (fun () ->
                        task {
                            let mutable i = 0

                            while i < warmup + cycles do
                                do! pong.WaitAsync()
                                ping.Release()
                                i <- i + 1
                        })

                let! bytes =
                    measure (fun _ ->
                        pong.Release()
                        ping.WaitAsync())

                do! partner
                expectNoAllocation "LocalSemaphore WaitAsync+Release (ping-pong, suspending)" bytes

                let rw = LocalRwLock()
                let! bytes = measureHolds (fun () -> rw.ReadLockAsync())
                expectNoAllocation "LocalRwLock read lock + release (uncontended)" bytes

                // Contended: a writer that holds across a yield; the reader waits for it every time, and it for the
                // reader.
                let writer =
                    spawn (fun () ->
                        task {
                            let mutable i = 0

                            while i < warmup + cycles do
                                let! hold = rw.WriteLockAsync()
                                do! Shard.Yield()
                                hold.Dispose()
                                i <- i + 1
                        })

                let! bytes = measureHolds (fun () -> rw.ReadLockAsync())
                do! writer
                expectNoAllocation "LocalRwLock read lock + release (behind a writer, suspending)" bytes

                let gate = Gate()

                let! bytes =
                    measure (fun _ ->
                        gate.Enter().Dispose()
                        ValueTask.CompletedTask)

                expectNoAllocation "Gate Enter + pass Dispose" bytes
            })
    }

// ---- model-based property ----

/// An operation on a semaphore; the ints are normalized when run (a small release, an index into cancelable waits).
type SemaphoreOp =
    | Wait
    | WaitCancelable
    | Cancel of int
    | Release of int
    | TryWait

let private releaseCount n = abs (n % 3) + 1

/// The model: a count and a FIFO of waiting ids. Returns what a correct semaphore logs.
let private model (initial: int) (ops: SemaphoreOp list) : string list =
    let log = List<string>()
    let waiting = List<int>()
    let cancelables = List<int>()
    let mutable count = initial
    let mutable next = 0

    let release n =
        let mutable n = n

        while n > 0 && waiting.Count > 0 do
            log.Add $"granted %d{waiting[0]}"
            waiting.RemoveAt 0
            n <- n - 1

        count <- count + n

    let wait () =
        if count > 0 then
            count <- count - 1
            log.Add $"granted %d{next}"
        else
            waiting.Add next

        next <- next + 1

    for op in ops do
        match op with
        | Wait -> wait ()
        | WaitCancelable ->
            cancelables.Add next
            wait ()
        | Cancel k when cancelables.Count > 0 ->
            let id = cancelables[abs (k % cancelables.Count)]

            if waiting.Remove id then
                log.Add $"canceled %d{id}"
        | Cancel _ -> ()
        | Release n -> release (releaseCount n)
        | TryWait ->
            log.Add $"try %b{count > 0}"

            if count > 0 then
                count <- count - 1

    release 1000
    log.Add $"count %d{count}"
    List.ofSeq log

/// The same operations against a LocalSemaphore on a shard; every wait must have ended by the end (no lost wake-up).
let private real (initial: int) (ops: SemaphoreOp list) : string list =
    runShard (fun () ->
        task {
            let sem = LocalSemaphore initial
            let log = List<string>()
            let cancelables = List<CancellationTokenSource>()
            let waits = List<Task<unit>>()

            for op in ops do
                match op with
                | Wait -> waits.Add(logWait log waits.Count (sem.WaitAsync()))
                | WaitCancelable ->
                    let cts = new CancellationTokenSource()
                    cancelables.Add cts
                    waits.Add(logWait log waits.Count (sem.WaitAsync cts.Token))
                | Cancel k when cancelables.Count > 0 -> cancelables[abs (k % cancelables.Count)].Cancel()
                | Cancel _ -> ()
                | Release n -> sem.Release(releaseCount n)
                | TryWait -> log.Add $"try %b{sem.TryWait()}"

                do! settle ()

            sem.Release 1000
            do! settle ()

            let pending = waits |> Seq.filter (fun w -> not w.IsCompleted) |> Seq.length
            Expect.equal pending 0 "every wait has ended: no lost wake-up"
            log.Add $"count %d{sem.CurrentCount}"

            for cts in cancelables do
                cts.Dispose()

            return List.ofSeq log
        })

let private semaphoreModel =
    testPropertyWithConfig
        { FsCheckConfig.defaultConfig with
            maxTest = 100
        }
        "LocalSemaphore agrees with a count-and-FIFO model: same grants, cancellations and TryWaits, in the same order"
    <| fun (initial: int) (ops: SemaphoreOp list) ->
        let initial = abs (initial % 4)
        let expected = model initial ops
        let actual = real initial ops
        Expect.equal actual expected "the shard's log against the model's"

let tests =
    testSequenced
    <| testList
        "sync"
        [
            semaphoreBasics
            semaphoreFifo
            semaphoreCancel
            semaphoreTryWaitVsWaiters
            rwReadersShareWriterExcludes
            rwWriterNotStarved
            releaseTwice
            gateClose
            wrongShard
            allocations
            semaphoreModel
        ]

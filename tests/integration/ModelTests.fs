/// Model-based properties: FsCheck generates operation sequences and the runtime's primitive is run against a small
/// model of what its documentation promises. SharedChannel between two shards pinned to CPUs 0 and 1 (a writer's
/// and a reader's sequence run concurrently, checked against "every successful write is read once, in order, then
/// the completion"), and LocalRwLock on one shard (checked step by step against a FIFO queue with the documented
/// reader/writer policy). LocalSemaphore's model property is in SyncTests, SpscRing's in the property suite.
/// Each case is bounded in time and fails with its operations printed; FsCheck's replay line stays in a failure.
module Scipio.Integration.Tests.ModelTests

open System
open System.Collections.Generic
open System.Numerics
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Channels
open Scipio.Sync
open Scipio.Integration.Tests.Helpers

/// How long one generated case may run (both shards together) before it counts as a hang.
let private caseTimeout = TimeSpan.FromSeconds 3.0

/// Waits for a case's shard at most `caseTimeout`; a hang fails with the case's operations.
let private boundedCase (what: string) (case: string) (t: Task<'T>) : 'T =
    let finished =
        try
            t.Wait caseTimeout
        with :? AggregateException ->
            true

    if not finished then
        failtestf
            "%s did not finish within %O (a hang: a lost wake-up or a wait never served). The case:\n%s"
            what
            caseTimeout
            case

    t.GetAwaiter().GetResult()

// ---- SharedChannel, two shards ----

/// What the writer's shard does, in order; a Complete (with or without an error) always follows the last one.
type WriterOp =
    | TryWrite
    | WriteAsync
    /// WaitToWriteAsync; when it says there is room, a TryWrite that must succeed (the writer is the only one).
    | WaitThenTryWrite
    /// k Shard.Yield()s (k normalized to 1..8).
    | WriterPause of byte

/// What the reader's shard does, in order; a drain to the completion always follows the last one.
type ReaderOp =
    | TryRead
    | ReadAsync
    /// WaitToReadAsync; when it says there is an item, a TryRead that must succeed (the reader is the only one).
    | WaitThenTryRead
    /// ReadAllAsync to the end (the completion).
    | ReadAll
    | ReaderPause of byte

/// How the reader drains what is left once its operations are done.
type Drain =
    | DrainReadAsync
    | DrainWaitToRead
    | DrainReadAll

let private pauseOf (k: byte) = int k % 8 + 1

/// The error a case completes the channel with, if any; recognized by reference.
let private completionError (withError: bool) : exn option =
    if withError then
        Some(InvalidOperationException "the writer's error" :> exn)
    else
        None

/// Runs one case: the writer's ops then Complete on CPU 0, the reader's ops then a drain on CPU 1, concurrently.
/// Returns the violations of the model (empty when the run agrees with it).
let private runChannelCase
    (capacity: int)
    (wops: WriterOp list)
    (rops: ReaderOp list)
    (withError: bool)
    (drain: Drain)
    =
    let case =
        sprintf
            "capacity %d, writer %A then Complete(%s), reader %A then %A"
            capacity
            wops
            (if withError then "error" else "")
            rops
            drain

    let ch = SharedChannel.CreateBounded<int> capacity
    let slots = int (BitOperations.RoundUpToPowerOf2(uint32 capacity))
    let error = completionError withError
    // Items the reader has taken, bumped after each one is in its hands: at most one item it dequeued is not counted.
    let readCount = [| 0 |]
    let aGo = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    let bGo = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

    let writer =
        Shard
            .Start(
                Func<Task<int * List<string>>>(fun () ->
                    task {
                        aGo.TrySetResult() |> ignore
                        do! bGo.Task
                        let bad = List<string>()
                        let mutable next = 0 // the next item, and how many were written successfully

                        let tryWrite (where: string) =
                            let before = Volatile.Read(&readCount[0])

                            if ch.Writer.TryWrite next then
                                let after = Volatile.Read(&readCount[0])
                                // In the ring before it: next - (taken), and taken <= after + 1.
                                if next - after - 1 >= slots then
                                    bad.Add
                                        $"%s{where}: TryWrite %d{next} succeeded, but at least %d{next - after - 1} of %d{slots} slots were taken"

                                next <- next + 1
                                true
                            else
                                // In the ring: next - (taken), and taken >= before.
                                if next - before < slots then
                                    bad.Add
                                        $"%s{where}: TryWrite %d{next} returned false with at most %d{next - before} of %d{slots} slots taken"

                                false

                        for op in wops do
                            match op with
                            | TryWrite -> tryWrite "TryWrite" |> ignore
                            | WriteAsync ->
                                do! ch.Writer.WriteAsync next
                                next <- next + 1
                            | WaitThenTryWrite ->
                                let! room = ch.Writer.WaitToWriteAsync()

                                if not room then
                                    bad.Add "WaitToWriteAsync returned false before the writer completed"
                                elif not (tryWrite "after WaitToWriteAsync") then
                                    bad.Add "WaitToWriteAsync said there was room, but the TryWrite after it failed"
                            | WriterPause k ->
                                for _ in 1 .. pauseOf k do
                                    do! Shard.Yield()

                        match error with
                        | Some e -> ch.Writer.Complete e
                        | None -> ch.Writer.Complete()

                        // After the completion: nothing more goes in.
                        if ch.Writer.TryWrite -1 then
                            bad.Add "TryWrite succeeded after Complete"

                        if ch.Writer.TryComplete() then
                            bad.Add "a second TryComplete succeeded"

                        try
                            do! ch.Writer.WriteAsync -1
                            bad.Add "WriteAsync succeeded after Complete"
                        with
                        | :? ChannelClosedException -> ()
                        | e ->
                            bad.Add $"WriteAsync after Complete threw %s{e.GetType().Name}, not ChannelClosedException"

                        try
                            let! room = ch.Writer.WaitToWriteAsync()

                            match error, room with
                            | None, false -> ()
                            | _ -> bad.Add $"WaitToWriteAsync after Complete returned %b{room}"
                        with e ->
                            match error with
                            | Some err when Object.ReferenceEquals(e, err) -> ()
                            | _ -> bad.Add $"WaitToWriteAsync after Complete threw %s{e.GetType().Name}: %s{e.Message}"

                        return next, bad
                    }),
                ShardOptions(Placement = Placement.Fixed 0)
            )
            .Completion

    let reader =
        Shard
            .Start(
                Func<Task<List<int> * List<string * int * exn option> * List<string>>>(fun () ->
                    task {
                        bGo.TrySetResult() |> ignore
                        do! aGo.Task
                        let read = List<int>()
                        // Each time the reader saw the completion: how, after how many items, with what exception.
                        let closed = List<string * int * exn option>()
                        let bad = List<string>()

                        let take (x: int) =
                            read.Add x
                            Interlocked.Increment(&readCount[0]) |> ignore

                        let readAll (how: string) =
                            task {
                                try
                                    let e = ch.Reader.ReadAllAsync().GetAsyncEnumerator()
                                    let mutable go = true

                                    while go do
                                        let! more = e.MoveNextAsync()
                                        if more then take e.Current else go <- false

                                    closed.Add(how, read.Count, None)
                                with e ->
                                    closed.Add(how, read.Count, Some e)
                            }

                        let readAsync (how: string) =
                            task {
                                try
                                    let! x = ch.Reader.ReadAsync()
                                    take x
                                    return true
                                with e ->
                                    closed.Add(how, read.Count, Some e)
                                    return false
                            }

                        let waitThenTryRead (how: string) =
                            task {
                                try
                                    let! more = ch.Reader.WaitToReadAsync()

                                    if more then
                                        match ch.Reader.TryRead() with
                                        | true, x -> take x
                                        | _ ->
                                            bad.Add
                                                "WaitToReadAsync said there was an item, but the TryRead after it failed"
                                    else
                                        closed.Add(how, read.Count, None)

                                    return more
                                with e ->
                                    closed.Add(how, read.Count, Some e)
                                    return false
                            }

                        for op in rops do
                            match op with
                            | TryRead ->
                                match ch.Reader.TryRead() with
                                | true, x -> take x
                                | _ -> ()
                            | ReadAsync -> do! readAsync "ReadAsync" :> Task
                            | WaitThenTryRead -> do! waitThenTryRead "WaitToReadAsync" :> Task
                            | ReadAll -> do! readAll "ReadAllAsync"
                            | ReaderPause k ->
                                for _ in 1 .. pauseOf k do
                                    do! Shard.Yield()

                        match drain with
                        | DrainReadAsync ->
                            let mutable go = true

                            while go do
                                let! more = readAsync "drain: ReadAsync"
                                go <- more
                        | DrainWaitToRead ->
                            let mutable go = true

                            while go do
                                let! more = waitThenTryRead "drain: WaitToReadAsync"
                                go <- more
                        | DrainReadAll -> do! readAll "drain: ReadAllAsync"

                        // Drained and completed: Completion has ended, faulted with the error if there was one.
                        let! completion =
                            task {
                                try
                                    do! ch.Reader.Completion
                                    return None
                                with e ->
                                    return Some e
                            }

                        match error, completion with
                        | None, None -> ()
                        | Some err, Some e when Object.ReferenceEquals(e, err) -> ()
                        | _ -> bad.Add $"Reader.Completion ended with %A{completion}, expected %A{error}"

                        match ch.Reader.TryRead() with
                        | true, x -> bad.Add $"TryRead found %d{x} after the completion was seen"
                        | _ -> ()

                        return read, closed, bad
                    }),
                ShardOptions(Placement = Placement.Fixed 1)
            )
            .Completion

    let written, writerBad = boundedCase "the writer's shard" case writer
    let read, closed, readerBad = boundedCase "the reader's shard" case reader
    let bad = List<string>(writerBad)
    bad.AddRange readerBad

    // Every item written successfully is read exactly once, in order; nothing else is read.
    let expected = List.init written id

    if List.ofSeq read <> expected then
        bad.Add $"read %A{List.ofSeq read}, but %d{written} items were written (0 .. %d{written - 1}, in order)"

    // Each sighting of the completion came after everything written had been read, and says how it ended.
    for how, count, thrown in closed do
        if count <> written then
            bad.Add $"%s{how} saw the completion after %d{count} items, but %d{written} were written"

        let ok =
            match how.Replace("drain: ", ""), error, thrown with
            | "ReadAsync", None, Some(:? ChannelClosedException as e) -> isNull e.InnerException
            | "ReadAsync", Some err, Some(:? ChannelClosedException as e) ->
                Object.ReferenceEquals(e.InnerException, err)
            | ("WaitToReadAsync" | "ReadAllAsync"), None, None -> true
            | ("WaitToReadAsync" | "ReadAllAsync"), Some err, Some e -> Object.ReferenceEquals(e, err)
            | _ -> false

        if not ok then
            bad.Add $"%s{how} saw the completion as %A{thrown}, expected the completion %A{error}"

    if closed.Count = 0 then
        bad.Add "the reader never saw the completion"

    if bad.Count > 0 then
        failtestf "SharedChannel disagrees with the model:\n  %s\nThe case: %s" (String.Join("\n  ", bad)) case

let private sharedChannelModel =
    testPropertyWithConfig
        { FsCheckConfig.defaultConfig with
            maxTest = 300
            endSize = 100
        }
        "SharedChannel between shards on CPUs 0 and 1 agrees with its model: successful writes read once, in order, then the completion"
    <| fun (capacity: byte) (wops: WriterOp list) (rops: ReaderOp list) (withError: bool) (drain: Drain) ->
        // Mostly small (1 to 4: the writer often finds it full), sometimes up to 64.
        let capacity =
            if capacity < 192uy then
                int capacity % 4 + 1
            else
                int capacity % 64 + 1

        runChannelCase capacity wops rops withError drain

// ---- LocalRwLock, one shard ----

/// A step on one shard; the ints are normalized when run (an index into the holders, the waiters, all requests).
type RwOp =
    | ReaderArrives
    | WriterArrives
    /// A holder (k-th, by arrival) releases; waits for its hold first if it was granted but has not resumed yet.
    | Release of int
    /// The k-th waiting request's token is canceled.
    | CancelWaiter of int
    /// The k-th request's token is canceled, whatever its state (after a grant: no effect).
    | CancelAny of int
    /// A turn passes (Shard.Yield): granted waiters resume.
    | Turn

type private Status =
    | Waiting
    | Held
    | Released
    | Canceled

/// The documented policy: FIFO by arrival; a request goes in at once only when nobody waits (and the lock allows);
/// a waiting writer holds back later readers; a release or a cancellation serves the head of the queue: one writer,
/// or the run of readers up to the next writer.
type private RwModel() =
    let kinds = List<bool>() // true: writer
    let status = List<Status>()
    let queue = List<int>()

    member _.Count = kinds.Count
    member _.IsWriter id = kinds[id]
    member _.Status id = status[id]
    member _.Queue = List.ofSeq queue

    member _.Holders =
        [
            for id in 0 .. kinds.Count - 1 do
                if status[id] = Held then
                    id
        ]

    member m.Readers = m.Holders |> List.filter (fun id -> not kinds[id]) |> List.length
    member m.WriterHeld = m.Holders |> List.exists (fun id -> kinds[id])

    member m.Serve() =
        let mutable go = true

        while go && queue.Count > 0 do
            let head = queue[0]

            if m.WriterHeld then
                go <- false
            elif kinds[head] then
                if m.Readers > 0 then
                    go <- false
                else
                    queue.RemoveAt 0
                    status[head] <- Held
                    go <- false
            else
                queue.RemoveAt 0
                status[head] <- Held

    member m.Arrive(writer: bool) =
        let id = kinds.Count
        let free = queue.Count = 0 && not m.WriterHeld && (not writer || m.Readers = 0)
        kinds.Add writer
        status.Add(if free then Held else Waiting)

        if not free then
            queue.Add id

        id

    member m.Release id =
        status[id] <- Released
        m.Serve()

    member m.Cancel id =
        if status[id] = Waiting then
            queue.Remove id |> ignore
            status[id] <- Canceled
            m.Serve()

let private kindName (writer: bool) = if writer then "writer" else "reader"

let private runRwCase (ops: RwOp list) =
    let case = sprintf "%A" ops

    let main () =
        task {
            let rw = LocalRwLock()
            let model = RwModel()
            let ctss = List<CancellationTokenSource>()
            let status = List<Status>() // as the requests' own tasks saw it
            let holds = Dictionary<int, IDisposable>()
            let tasks = List<Task>()
            let mutable step = 0

            let fail (what: string) =
                let at =
                    if step >= 1 && step <= ops.Length then
                        sprintf "step %d (%A)" step (List.item (step - 1) ops)
                    else
                        "the end"

                failtestf "LocalRwLock disagrees with the model at %s: %s\nThe case: %s" at what case

            let request (writer: bool) =
                let id = model.Arrive writer
                let cts = new CancellationTokenSource()
                ctss.Add cts
                status.Add Waiting

                let pending =
                    if writer then
                        rw.WriteLockAsync cts.Token
                    else
                        rw.ReadLockAsync cts.Token

                tasks.Add(
                    task {
                        try
                            let! hold = pending
                            holds[id] <- hold
                            status[id] <- Held
                        with :? OperationCanceledException ->
                            status[id] <- Canceled
                    }
                )

                // Served at once exactly when the model says so (the wait completes synchronously).
                if status[id] <> model.Status id then
                    fail
                        $"request %d{id} (%s{kindName writer}) is %A{status[id]} at once; the model: %A{model.Status id}"

            // The lock's own counters, exact at every moment.
            let checkLock () =
                if rw.IsWriteLocked && rw.CurrentReaders > 0 then
                    fail $"a writer holds the lock together with %d{rw.CurrentReaders} readers"

                if rw.CurrentReaders <> model.Readers || rw.IsWriteLocked <> model.WriterHeld then
                    fail
                        $"the lock has %d{rw.CurrentReaders} readers, writer %b{rw.IsWriteLocked}; the model: %d{model.Readers} readers, writer %b{model.WriterHeld} (holders %A{model.Holders}, queue %A{model.Queue})"

            // After a turn every granted or canceled wait has resumed: each request's state is the model's.
            let checkAll () =
                for id in 0 .. model.Count - 1 do
                    if status[id] <> model.Status id then
                        fail
                            $"request %d{id} (%s{kindName (model.IsWriter id)}) is %A{status[id]}; the model: %A{model.Status id} (queue %A{model.Queue})"

                let held =
                    [
                        for id in 0 .. status.Count - 1 do
                            if status[id] = Held then
                                id
                    ]

                let writers = held |> List.filter model.IsWriter

                if not writers.IsEmpty && held.Length > 1 then
                    fail $"holders %A{held}: a writer with someone else"

                // No reader in while a writer that arrived before it still waits.
                for r in held do
                    if not (model.IsWriter r) then
                        for w in 0 .. r - 1 do
                            if model.IsWriter w && status[w] = Waiting then
                                fail
                                    $"reader %d{r} holds the lock while writer %d{w}, which arrived before it, still waits"

            let turn () =
                task {
                    do! Shard.Yield()
                    checkAll ()
                }

            let release id =
                task {
                    if status[id] <> Held then
                        do! turn () // granted, not resumed yet

                    if status[id] <> Held then
                        fail $"request %d{id} holds the lock in the model, but never resumed with its hold"

                    model.Release id
                    status[id] <- Released
                    holds[id].Dispose()
                    holds.Remove id |> ignore
                    checkLock ()
                }

            for op in ops do
                step <- step + 1

                match op with
                | ReaderArrives -> request false
                | WriterArrives -> request true
                | Release k ->
                    match model.Holders with
                    | [] -> ()
                    | holders -> do! release (List.item (abs (k % holders.Length)) holders)
                | CancelWaiter k ->
                    match model.Queue with
                    | [] -> ()
                    | queue ->
                        let id = List.item (abs (k % queue.Length)) queue
                        model.Cancel id
                        ctss[id].Cancel()
                | CancelAny k when model.Count > 0 ->
                    let id = abs (k % model.Count)
                    model.Cancel id
                    ctss[id].Cancel()
                | CancelAny _ -> ()
                | Turn -> do! turn ()

                checkLock ()

            // Everyone who holds releases, until nobody holds: every waiter must be served (or canceled) meanwhile.
            step <- ops.Length + 1 // "the end"
            do! turn ()
            let mutable rounds = 0

            while not model.Holders.IsEmpty do
                rounds <- rounds + 1

                if rounds > model.Count + 1 then
                    fail "the holders never ran out"

                for id in model.Holders do
                    do! release id

                do! turn ()

            let stuck =
                [
                    for id in 0 .. status.Count - 1 do
                        if status[id] = Waiting then
                            id
                ]

            if not stuck.IsEmpty then
                fail $"requests %A{stuck} still wait with the lock free: a lost wake-up"

            if rw.CurrentReaders <> 0 || rw.IsWriteLocked then
                fail "the lock is still held after every hold was released"

            for t in tasks do
                if not t.IsCompleted then
                    fail "a request's task has not ended"

            for cts in ctss do
                cts.Dispose()
        }

    Shard.Start(Func<Task<unit>>(main), ShardOptions()).Completion
    |> boundedCase "the shard" case

let private rwLockModel =
    testPropertyWithConfig
        { FsCheckConfig.defaultConfig with
            maxTest = 500
            endSize = 100
        }
        "LocalRwLock agrees step by step with a FIFO model: who holds it, who waits, no reader past an earlier writer, no lost wake-up"
    <| fun (ops: RwOp list) -> runRwCase ops

let tests = testSequenced <| testList "models" [ sharedChannelModel; rwLockModel ]

/// Scipio.Channels on real shards: LocalChannel's bounded and unbounded semantics, backpressure, completion and
/// shard binding; ReadAllAsync resuming on the shard in the consumer's queue; SharedChannel between two shards
/// pinned to CPUs 0 and 1 (a million ints in order, completion with and without an exception, a third shard
/// rejected); a two-peer mesh; the sharded router; and the allocation budget of a message in steady state.
module Scipio.Integration.Tests.ChannelTests

open System
open System.Collections.Generic
open System.IO
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Channels
open Scipio.Integration.Tests.Helpers

/// Starts a shard pinned to `cpu` running `main`; its completion, bounded by the caller.
let private startOn (cpu: int) (main: unit -> Task<'T>) : Task<'T> =
    Shard.Start(Func<Task<'T>>(main), ShardOptions(Placement = Placement.Fixed cpu)).Completion

/// Waits for both shards' results (each bounded by `shardTimeout`).
let private both (a: Task<'A>) (b: Task<'B>) =
    awaitBounded "shard A" shardTimeout a, awaitBounded "shard B" shardTimeout b

/// A barrier for two shards: each signals its own source and awaits the other's (resuming on its shard).
type private Rendezvous() =
    let a = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    let b = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

    member _.A() =
        a.TrySetResult() |> ignore
        b.Task

    member _.B() =
        b.TrySetResult() |> ignore
        a.Task

// ---- LocalChannel ----

let private localBounded =
    test
        "LocalChannel.CreateBounded: TryWrite up to capacity, FIFO reads, Count and TryPeek, WriteAsync waits while full" {
        runShard (fun () ->
            task {
                let ch = LocalChannel.CreateBounded<int> 3
                Expect.isTrue (ch.Writer.TryWrite 1 && ch.Writer.TryWrite 2 && ch.Writer.TryWrite 3) "three fit"
                Expect.isFalse (ch.Writer.TryWrite 4) "a fourth does not"
                Expect.equal ch.Reader.Count 3 "Count"
                Expect.equal (ch.Reader.TryPeek()) (true, 1) "TryPeek: the oldest, not taken"
                let pending = ch.Writer.WriteAsync 4
                Expect.isFalse pending.IsCompleted "WriteAsync on a full channel waits"
                let wait = ch.Writer.WaitToWriteAsync().AsTask()
                Expect.isFalse wait.IsCompleted "WaitToWriteAsync waits too"
                Expect.equal (ch.Reader.TryRead()) (true, 1) "first in, first out"
                // The read made room: the blocked write's item moved in; its await resumes (queued, not inline).
                do! pending
                Expect.isFalse wait.IsCompleted "the blocked write took the room: still full"
                let! a = ch.Reader.ReadAsync()
                let! room = wait
                Expect.isTrue room "WaitToWriteAsync: room (true) after the next read"
                let! b = ch.Reader.ReadAsync()
                let! c = ch.Reader.ReadAsync()
                Expect.equal [ a; b; c ] [ 2; 3; 4 ] "the rest in order, the blocked write's last"
                // A ReadAsync on the empty channel gets the next write handed over.
                let read = ch.Reader.ReadAsync()
                Expect.isFalse read.IsCompleted "ReadAsync on an empty channel waits"
                Expect.isTrue (ch.Writer.TryWrite 5) "a write with a reader waiting"
                let! five = read
                Expect.equal five 5 "handed to the waiting reader"
                Expect.equal ch.Reader.Count 0 "…without passing through the buffer"
            })
    }

let private localUnbounded =
    test "LocalChannel.CreateUnbounded: every write succeeds at once; reads in order" {
        runShard (fun () ->
            task {
                let ch = LocalChannel.CreateUnbounded<int>()
                let mutable i = 0
                let mutable ok = true

                while i < 100_000 do
                    ok <- ok && ch.Writer.TryWrite i
                    i <- i + 1

                Expect.isTrue ok "every TryWrite succeeded"
                Expect.equal ch.Reader.Count 100_000 "all buffered"
                i <- 0
                let mutable inOrder = true

                while i < 100_000 do
                    let! x = ch.Reader.ReadAsync()
                    inOrder <- inOrder && x = i
                    i <- i + 1

                Expect.isTrue inOrder "read back in order"
                Expect.isFalse (fst (ch.Reader.TryRead())) "then empty"
            })
    }

let private localCompletion =
    test
        "LocalChannel completion: writes throw ChannelClosedException, buffered items still read, then closed; an error surfaces" {
        runShard (fun () ->
            task {
                let ch = LocalChannel.CreateBounded<int> 4
                ch.Writer.TryWrite 1 |> ignore
                let waiting = ch.Writer.WaitToWriteAsync()
                Expect.isTrue waiting.IsCompleted "room: completes at once"
                Expect.isTrue (ch.Writer.TryComplete()) "first completion"
                Expect.isFalse (ch.Writer.TryComplete()) "second completion refused"
                Expect.isFalse (ch.Writer.TryWrite 2) "TryWrite after completion"

                let! e =
                    thrownByTask (fun () ->
                        ch.Writer
                            .WriteAsync(2)
                            .AsTask()
                            .ContinueWith(fun (t: Task) ->
                                t.Wait()
                                0))

                expectExn<ChannelClosedException>
                    "WriteAsync after completion"
                    (e |> Option.map (fun e -> e.GetBaseException()))
                |> ignore

                Expect.isFalse ch.Reader.Completion.IsCompleted "Completion waits for the buffered item"
                let! one = ch.Reader.ReadAsync()
                Expect.equal one 1 "the buffered item"
                let! more = ch.Reader.WaitToReadAsync()
                Expect.isFalse more "WaitToReadAsync: false once drained"
                let! e = thrownByTask (fun () -> ch.Reader.ReadAsync().AsTask())
                expectExn<ChannelClosedException> "ReadAsync once drained" e |> ignore
                do! ch.Reader.Completion

                // A reader waiting when the channel completes with an error sees the error.
                let failing = LocalChannel.CreateUnbounded<int>()
                let wait = failing.Reader.WaitToReadAsync().AsTask()
                let read = LocalChannel.CreateUnbounded<int>()
                let blockedRead = read.Reader.ReadAsync().AsTask()
                failing.Writer.Complete(InvalidDataException "boom")
                read.Writer.Complete(InvalidDataException "bang")
                let! e = thrownByTask (fun () -> wait)

                Expect.equal
                    (expectExn<InvalidDataException> "a waiting WaitToReadAsync" e).Message
                    "boom"
                    "the error itself"

                let! e = thrownByTask (fun () -> blockedRead)
                let closed = expectExn<ChannelClosedException> "a waiting ReadAsync" e

                Expect.isTrue
                    (closed.InnerException :? InvalidDataException)
                    "ChannelClosedException with the error inside"

                let! e =
                    thrownByTask (fun () ->
                        failing.Reader.Completion.ContinueWith(fun (t: Task) ->
                            t.Wait()
                            0))

                Expect.isSome e "Completion faults"
            })
    }

let private localCancel =
    test "LocalChannel: a canceled ReadAsync ends canceled and the next write is not lost" {
        runShard (fun () ->
            task {
                let ch = LocalChannel.CreateBounded<int> 1
                use cts = new CancellationTokenSource()
                let read = ch.Reader.ReadAsync(cts.Token).AsTask()
                cts.Cancel()
                let! e = thrownByTask (fun () -> read)
                expectExn<OperationCanceledException> "the canceled read" e |> ignore
                Expect.isTrue (ch.Writer.TryWrite 7) "a write after the cancel"

                Expect.equal
                    (ch.Reader.TryRead())
                    (true, 7)
                    "the item is in the channel, not given to the canceled read"
                // Canceled from another thread: posted to the shard, acted on there.
                use cts2 = new CancellationTokenSource()
                let read2 = ch.Reader.ReadAsync(cts2.Token).AsTask()
                let! _ = Task.Run(fun () -> cts2.Cancel())
                let! e = thrownByTask (fun () -> read2)
                expectExn<OperationCanceledException> "canceled from another thread" e |> ignore
            })
    }

let private localReadAllStaysOnShard =
    test "LocalChannel.Reader.ReadAllAsync resumes on the shard, in the consumer's task queue, after every await" {
        runShard (fun () ->
            task {
                let ch = LocalChannel.CreateBounded<int> 8

                let consumerQueue =
                    Shard.CreateTaskQueue("consumer", Shares.Static 100, Latency.NotImportant)

                let thread = Environment.CurrentManagedThreadId

                let producer =
                    spawn (fun () ->
                        task {
                            let mutable i = 0

                            while i < 10_000 do
                                do! ch.Writer.WriteAsync i

                                if i % 97 = 0 then
                                    do! Shard.Yield()

                                i <- i + 1

                            ch.Writer.Complete()
                            return 0
                        })

                let consumer =
                    spawnInto consumerQueue (fun () ->
                        task {
                            let e = ch.Reader.ReadAllAsync().GetAsyncEnumerator()
                            let mutable wrong = 0
                            let mutable next = 0
                            let mutable go = true

                            while go do
                                let! more = e.MoveNextAsync()

                                if not more then
                                    go <- false
                                else
                                    if
                                        not Shard.IsOnShard
                                        || Shard.CurrentTaskQueue <> consumerQueue
                                        || Environment.CurrentManagedThreadId <> thread
                                        || e.Current <> next
                                    then
                                        wrong <- wrong + 1

                                    next <- next + 1

                            return next, wrong
                        })

                let! _ = producer
                let! n, wrong = consumer
                Expect.equal n 10_000 "every item"
                Expect.equal wrong 0 "each item read on the shard thread, in the consumer's queue, in order"
            })
    }

let private localOtherShardThrows =
    test "LocalChannel used off its shard (a plain thread, another shard) throws InvalidOperationException" {
        let ch = runShard (fun () -> Task.FromResult(LocalChannel.CreateUnbounded<int>()))
        let e = thrownBy (fun () -> ch.Writer.TryWrite 1)
        expectExn<InvalidOperationException> "TryWrite on a plain thread" e |> ignore

        let fromShard =
            runShard (fun () -> Task.FromResult(thrownBy (fun () -> ch.Reader.TryRead())))

        expectExn<InvalidOperationException> "TryRead on another shard" fromShard
        |> ignore

        let e = thrownBy (fun () -> LocalChannel.CreateBounded<int> 4)
        expectExn<InvalidOperationException> "created off any shard" e |> ignore
    }

// ---- SharedChannel ----

let private million = 1_000_000

/// Writes 0 .. n-1 with WriteAsync, then completes (with `error` if given).
let private writeInts (w: ChannelWriter<int>) (n: int) (error: exn option) =
    task {
        let mutable i = 0

        while i < n do
            do! w.WriteAsync i
            i <- i + 1

        match error with
        | Some e -> w.Complete e
        | None -> w.Complete()
    }

/// Reads with ReadAllAsync: the count, and how many items came out of order.
let private readInts (r: ChannelReader<int>) =
    task {
        let e = r.ReadAllAsync().GetAsyncEnumerator()
        let mutable next = 0
        let mutable wrong = 0
        let mutable go = true

        while go do
            let! more = e.MoveNextAsync()

            if more then
                if e.Current <> next then
                    wrong <- wrong + 1

                next <- next + 1
            else
                go <- false

        return next, wrong
    }

let private sharedMillion =
    test "SharedChannel between shards on CPUs 0 and 1: 1M ints arrive once each, in order, then the completion" {
        let ch = SharedChannel.CreateBounded<int> 1024
        let meet = Rendezvous()

        let writer =
            startOn 0 (fun () ->
                task {
                    do! meet.A()
                    do! writeInts ch.Writer million None
                    return Shard.Id
                })

        let reader =
            startOn 1 (fun () ->
                task {
                    do! meet.B()
                    let! n, wrong = readInts ch.Reader
                    do! ch.Reader.Completion
                    return n, wrong, Shard.IsOnShard
                })

        let _, (n, wrong, onShard) = both writer reader
        Expect.equal n million "every item, none twice"
        Expect.equal wrong 0 "in order"
        Expect.isTrue onShard "the reader resumed on its shard after ReadAllAsync and Completion"
    }

let private sharedError =
    test "SharedChannel: a completion with an exception reaches the reader's shard after the items; Completion faults" {
        let ch = SharedChannel.CreateBounded<int> 16
        let meet = Rendezvous()

        let writer =
            startOn 0 (fun () ->
                task {
                    do! meet.A()
                    do! writeInts ch.Writer 1000 (Some(InvalidDataException "boom"))
                    return 0
                })

        let reader =
            startOn 1 (fun () ->
                task {
                    do! meet.B()
                    let mutable count = 0
                    let mutable error = None

                    try
                        let e = ch.Reader.ReadAllAsync().GetAsyncEnumerator()
                        let mutable go = true

                        while go do
                            let! more = e.MoveNextAsync()
                            if more then count <- count + 1 else go <- false
                    with e ->
                        error <- Some e

                    let! completion =
                        thrownByTask (fun () ->
                            ch.Reader.Completion.ContinueWith(fun (t: Task) ->
                                t.Wait()
                                0))

                    return count, error, completion
                })

        let _, (count, error, completion) = both writer reader
        Expect.equal count 1000 "the items written before the error"
        Expect.equal (expectExn<InvalidDataException> "ReadAllAsync" error).Message "boom" "the writer's exception"
        Expect.isSome completion "Reader.Completion faulted"
    }

let private sharedThirdShard =
    test
        "SharedChannel: once the writer is bound, a third shard or a plain thread writing throws InvalidOperationException" {
        let ch = SharedChannel.CreateBounded<int> 16
        let meet = Rendezvous()

        let writer =
            startOn 0 (fun () ->
                task {
                    Expect.isTrue (ch.Writer.TryWrite 1) "the first writer binds"
                    do! meet.A()
                    return 0
                })

        let third =
            startOn 1 (fun () ->
                task {
                    do! meet.B()
                    let onShard = thrownBy (fun () -> ch.Writer.TryWrite 2)
                    let reads = ch.Reader.TryRead() // the reader side binds here: allowed
                    return onShard, reads
                })

        let _, (onShard, reads) = both writer third
        expectExn<InvalidOperationException> "a second shard writing" onShard |> ignore
        Expect.equal reads (true, 1) "the reader, on another shard, reads what the first wrote"

        expectExn<InvalidOperationException> "a plain thread writing" (thrownBy (fun () -> ch.Writer.TryWrite 3))
        |> ignore

        expectExn<InvalidOperationException> "a plain thread reading" (thrownBy (fun () -> ch.Reader.TryRead()))
        |> ignore
    }

// ---- mesh and router ----

let private mesh =
    test "ChannelMesh.Full(2): 1M messages each way between shards on CPUs 0 and 1, order kept per sender" {
        let m = ChannelMesh.Full<int>(2, 512)

        let run (id: int) =
            task {
                let me = m.Join id
                let other = 1 - id

                let send =
                    spawn (fun () ->
                        task {
                            do! writeInts (me.WriterTo other) million None
                            return 0
                        })

                let e = me.ReadAllAsync().GetAsyncEnumerator()
                let mutable next = 0
                let mutable wrong = 0
                let mutable go = true

                while go do
                    let! more = e.MoveNextAsync()

                    if more then
                        let struct (from, item) = e.Current

                        if from <> other || item <> next then
                            wrong <- wrong + 1

                        next <- next + 1
                    else
                        go <- false

                let! _ = send
                return next, wrong
            }

        let (n0, w0), (n1, w1) =
            both (startOn 0 (fun () -> run 0)) (startOn 1 (fun () -> run 1))

        Expect.equal (n0, n1) (million, million) "each peer received every message"
        Expect.equal (w0, w1) (0, 0) "from the right peer, in the order sent"

        expectExn<InvalidOperationException> "joining twice" (thrownBy (fun () -> m.Join 0))
        |> ignore
    }

let private router =
    test "ShardedRouter: items go to hash(key) mod N and the handler runs on the owner, in order per sender" {
        let m = ChannelMesh.Full<struct (int * int * int)>(2, 64)
        let perShard = 20_000

        let run (id: int) =
            task {
                let handled = List<struct (int * int * int)>()
                let mutable wrongOwner = 0

                let mutable router =
                    Unchecked.defaultof<ShardedRouter<int, struct (int * int * int)>>

                router <-
                    ShardedRouter<int, struct (int * int * int)>(
                        m.Join id,
                        fun item ->
                            let struct (key, _, _) = item

                            if router.OwnerOf key <> router.Id || not Shard.IsOnShard then
                                wrongOwner <- wrongOwner + 1

                            handled.Add item
                            ValueTask.CompletedTask
                    )

                let running = router.RunAsync()
                let mutable i = 0

                while i < perShard do
                    let key = i * 7919 + id
                    do! router.SendAsync(key, struct (key, id, i))
                    i <- i + 1

                router.Complete()
                do! running
                return handled.ToArray(), wrongOwner
            }

        let (h0, w0), (h1, w1) =
            both (startOn 0 (fun () -> run 0)) (startOn 1 (fun () -> run 1))

        Expect.equal (h0.Length + h1.Length) (2 * perShard) "every item handled once"
        Expect.equal (w0, w1) (0, 0) "each on its owner's shard"
        Expect.isTrue (h0.Length > 0 && h1.Length > 0) "both shards own some keys"

        for handled in [ h0; h1 ] do
            for sender in 0..1 do
                let seqs =
                    handled
                    |> Array.choose (fun (struct (_, s, n)) -> if s = sender then Some n else None)

                Expect.equal seqs (Array.sort seqs) $"items from shard %d{sender} handled in the order sent"
    }

// ---- allocations ----

let private operations = 100_000

let private localAllocations =
    test "LocalChannel: 0 B per message in steady state (a producer and a consumer task through 4 slots, both waiting)" {
        let bytes, waited =
            runShard (fun () ->
                task {
                    let ch = LocalChannel.CreateBounded<int> 4
                    let mutable measured = 0L
                    let mutable before = 0L
                    let mutable waits = 0
                    let mutable pass = 0

                    while pass < 2 do
                        let producer =
                            spawn (fun () ->
                                task {
                                    let mutable i = 0

                                    while i < operations do
                                        let w = ch.Writer.WriteAsync i

                                        if not w.IsCompleted then
                                            waits <- waits + 1

                                        do! w
                                        i <- i + 1

                                    return 0
                                })

                        let consumer =
                            spawn (fun () ->
                                task {
                                    let mutable i = 0
                                    let mutable sum = 0L

                                    while i < operations do
                                        let! x = ch.Reader.ReadAsync()
                                        sum <- sum + int64 x
                                        i <- i + 1

                                    return sum
                                })

                        before <- GC.GetAllocatedBytesForCurrentThread()
                        let! _ = producer
                        let! _ = consumer
                        measured <- GC.GetAllocatedBytesForCurrentThread() - before
                        pass <- pass + 1

                    return measured, waits
                })

        let perOp = float bytes / float operations
        Expect.isGreaterThan waited 1000 "the producer really waited for room (the pooled-wait path ran)"

        Expect.isLessThan
            perOp
            0.1
            $"LocalChannel should allocate nothing per message: %d{bytes} B over %d{operations} ({perOp:F3} B/msg)"
    }

let private sharedWriterAllocations =
    test "SharedChannel: 0 B per message in steady state on the writer's shard" {
        let ch = SharedChannel.CreateBounded<int> 256
        let meet = Rendezvous()

        let writer =
            startOn 0 (fun () ->
                task {
                    do! meet.A()
                    let mutable measured = 0L
                    let mutable before = 0L
                    let mutable pass = 0
                    let mutable i = 0

                    while pass < 2 do
                        before <- GC.GetAllocatedBytesForCurrentThread()
                        i <- 0

                        while i < operations do
                            do! ch.Writer.WriteAsync(pass * operations + i)
                            i <- i + 1

                        measured <- GC.GetAllocatedBytesForCurrentThread() - before
                        pass <- pass + 1

                    ch.Writer.Complete()
                    return measured
                })

        let reader =
            startOn 1 (fun () ->
                task {
                    do! meet.B()
                    return! readInts ch.Reader
                })

        let bytes, (n, wrong) = both writer reader
        Expect.equal (n, wrong) (2 * operations, 0) "everything arrived in order"
        let perOp = float bytes / float operations

        Expect.isLessThan
            perOp
            0.1
            $"the writer should allocate nothing per message: %d{bytes} B over %d{operations} ({perOp:F3} B/msg)"
    }

let tests =
    testSequenced
    <| testList
        "channels"
        [
            localBounded
            localUnbounded
            localCompletion
            localCancel
            localReadAllStaysOnShard
            localOtherShardThrows
            sharedMillion
            sharedError
            sharedThirdShard
            mesh
            router
            localAllocations
            sharedWriterAllocations
        ]

/// The operation kinds below the public API, on the real kernel: a multishot operation delivers each CQE to its
/// reader in order and is counted once by its ring, at its final CQE; an operation goes back to its pool only once
/// the kernel has let go of it; a cancel that arrives after the final CQE sends nothing. (DmaFile and the sockets,
/// next, are their public users.)
module Scipio.Integration.Tests.OperationKindTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Interop
open Scipio.Integration.Tests.Helpers

let private executor () =
    Scipio.Runtime.ShardExecutor.Require "test"

let tests =
    testSequenced
    <| testList
        "operation kinds"
        [
            test "a multishot timeout delivers its CQEs in order, F_MORE on all but the last, and counts once" {
                requireIoUring "IORING_TIMEOUT_MULTISHOT"

                let results, books =
                    runShard (fun () ->
                        task {
                            let e = executor ()
                            let main = (e.Backend :?> Scipio.Ring.IoUringBackend).Main
                            let op = e.Operations.RentMultishot().Start("multishot timeout", false)
                            op.PrepareTimeout(200_000L, 5u)
                            e.Submit op
                            let results = ResizeArray()
                            let books = ResizeArray()
                            let mutable more = true

                            while more do
                                let! cqe = op.ReadAsync()
                                results.Add cqe
                                books.Add(main.Book.Lingering, main.Book.Prompt)
                                more <- cqe.HasMore

                            op.Dispose()
                            return results.ToArray(), books.ToArray()
                        })

                Expect.equal results.Length 5 "one CQE per shot"
                Expect.all results.[0..3] (fun c -> c.HasMore) "every shot but the last says more is coming"
                Expect.isFalse results.[4].HasMore "the last shot ends the stream"
                Expect.all results (fun c -> c.Result = -Errno.ETIME) "each shot is a timeout's -ETIME"

                Expect.equal
                    books
                    [| (1, 0); (1, 0); (1, 0); (1, 0); (0, 0) |]
                    "the book holds it as one lingering operation (no completion-queue room) until its final CQE, then lets go"
            }

            test
                "a multishot poll reports each signal in order; disposing it cancels it and recycles it after its final CQE" {
                requireIoUring "IORING_POLL_ADD_MULTI"

                let events, recycled =
                    runShard (fun () ->
                        task {
                            let e = executor ()
                            let fd = Libc.EventFd(0u, Libc.EfdCloexec ||| Libc.EfdNonblock)
                            let op = e.Operations.RentMultishot().Start("multishot poll", true)
                            op.PreparePoll(fd, 1u)
                            e.Submit op
                            let events = ResizeArray()

                            for _ in 1..3 do
                                Libc.WriteEventFd(fd, 1UL)
                                // Each write wakes the eventfd's waiters: a new signal, though it stays readable.
                                let! cqe = op.ReadAsync()
                                events.Add cqe

                            op.Dispose()

                            // The cancel's and the poll's final CQEs arrive within a loop turn or two; the operation
                            // goes back to its pool only then.
                            let mutable turns = 0

                            while e.Operations.Pooled = 0 && turns < 10_000 do
                                do! Shard.Sleep(TimeSpan.FromMilliseconds 0.1)
                                turns <- turns + 1

                            let again = e.Operations.RentMultishot()
                            Libc.Close fd |> ignore
                            return events.ToArray(), obj.ReferenceEquals(again, op)
                        })

                Expect.equal events.Length 3 "one CQE per signal"
                Expect.all events (fun c -> c.HasMore && c.Result > 0) "each a POLLIN with more to come"
                Expect.isTrue recycled "the disposed operation went back to its pool once the kernel let go of it"
            }

            test
                "moving the preemption timer earlier does not raise NeedPreempt by itself (the move's own CQE is taken)" {
                let afterArm, afterMove, fired =
                    runShard (fun () ->
                        task {
                            let backend = executor().Backend
                            // Far-off deadlines: neither fires during the test.
                            backend.SetPreemptTimer(Scipio.Core.PreemptTimerDecision.Arm 20_000_000_000L)
                            |> ignore

                            let afterArm = Shard.NeedPreempt

                            backend.SetPreemptTimer(Scipio.Core.PreemptTimerDecision.Move 10_000_000_000L)
                            |> ignore

                            let afterMove = Shard.NeedPreempt
                            let fired = backend.Reap()
                            return afterArm, afterMove, fired
                        })

                Expect.isFalse afterArm "arming the timer raises nothing"

                Expect.isFalse
                    afterMove
                    "moving it raises nothing either: only its firing, or a latency completion, may"

                Expect.isFalse fired "and nothing on the latency ring reads as the timer having fired"
            }

            test "the two-path operations rename and link through the ring, their paths in the operation's own scratch" {
                withTempDir (fun dir ->
                    let a = IO.Path.Combine(dir, "a.txt")
                    let b = IO.Path.Combine(dir, "b-with-a-longer-name-than-a.txt")
                    let c = IO.Path.Combine(dir, "c.txt")
                    IO.File.WriteAllText(a, "hello")

                    let renamed, linked, missing =
                        runShard (fun () ->
                            task {
                                let e = executor ()

                                let run (prepare: Scipio.Ring.PathOperation -> unit) =
                                    let op =
                                        e.Operations
                                            .RentPath()
                                            .Start("rename or link", a, null, CancellationToken.None)

                                    prepare op
                                    e.Submit op
                                    ValueTask<int>(op :> Sources.IValueTaskSource<int>, op.Version).AsTask()

                                let! renamed = run (fun op -> op.PrepareRename(a, b, 0u))
                                let! linked = run (fun op -> op.PrepareLink(b, c, 0))

                                let! missing =
                                    task {
                                        try
                                            let! _ = run (fun op -> op.PrepareRename(a, c, 0u))
                                            return None
                                        with e ->
                                            return Some e
                                    }

                                return renamed, linked, missing
                            })

                    Expect.equal (renamed, linked) (0, 0) "both succeed"
                    Expect.isFalse (IO.File.Exists a) "the old name is gone"
                    Expect.equal (IO.File.ReadAllText b) "hello" "the file is under its new name"
                    Expect.equal (IO.File.ReadAllText c) "hello" "and under the hard link"

                    Expect.isTrue
                        (match missing with
                         | Some(:? IO.FileNotFoundException) -> true
                         | _ -> false)
                        $"renaming a missing file fails with ENOENT (FileNotFoundException naming it), got {missing}")
            }

            test "canceling an operation after its final CQE, before its awaiter ran, sends no stray cancel" {
                let delta =
                    runShard (fun () ->
                        task {
                            let e = executor ()
                            use cts = new CancellationTokenSource()
                            let op = e.Operations.RentReadWrite().Start("nop", null, null, cts.Token)
                            op.PrepareNop()
                            e.Submit op
                            let pending = ValueTask<int>(op :> Sources.IValueTaskSource<int>, op.Version)
                            // Let the loop reap the NOP's CQE without running the awaiter: spin on the operation's state.
                            while op.State <> Scipio.Ring.OperationState.Done do
                                do! Shard.Sleep TimeSpan.Zero

                            let before = Shard.Stats.Main.Submitted
                            cts.Cancel()
                            let! n = pending
                            do! Shard.Sleep TimeSpan.Zero
                            ignore n
                            return Shard.Stats.Main.Submitted - before
                        })

                Expect.equal delta 0L "no ASYNC_CANCEL was submitted for an operation the kernel had finished"
            }
        ]

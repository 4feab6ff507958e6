/// RingBook against a model of a shell that obeys `admit`: operations that may not go in yet wait in a FIFO backlog
/// that is retried after each completion; SubmitFirst means submit, then prepare.
module Scipio.Property.Tests.RingBookTests

open System.Collections.Generic
open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

/// What happens to one ring.
type RingCommand =
    /// The shell wants `count` new operations. Should it have to submit first, the kernel consumes up to `take` SQEs
    /// (at least one).
    | Issue of count: int * take: int
    /// io_uring_enter: the kernel consumes up to `take` of the prepared SQEs, perhaps fewer than are prepared.
    | Submit of take: int
    /// A CQE arrives for the in-flight operation at `pick` (modulo the number in flight), in any order; the shell then
    /// retries its backlog, submitting up to `take` if it has to.
    | Complete of pick: int * take: int

let private ringSizes =
    gen {
        let! sq = Gen.elements [ 1; 2; 4; 8; 16; 32 ]
        // io_uring's CQ is twice the SQ by default and at least as large with IORING_SETUP_CQSIZE; a smaller one
        // is not a legal ring, but the invariants must not rely on it.
        let! cq = Gen.frequency [ 4, Gen.elements [ sq; 2 * sq; 4 * sq ]; 1, Gen.choose (1, 64) ]
        return sq, cq
    }

let private command =
    let take = Gen.frequency [ 3, Gen.choose (0, 4); 1, Gen.choose (0, 64) ]

    Gen.frequency
        [ 3, Gen.map2 (fun c t -> Issue(c, t)) (Gen.choose (1, 8)) take
          2, Gen.map Submit take
          3, Gen.map2 (fun p t -> Complete(p, t)) (Gen.choose (0, 1000)) take ]

/// The shell's side of the ring: which operation is where.
type private Shell(sqEntries: int, cqEntries: int) =
    let mutable book = RingBook.create sqEntries cqEntries
    let backlog = Queue<int>()
    let sq = Queue<int>()
    let inFlight = List<int>()
    let completed = HashSet<int>()
    let mutable issued = 0

    let checkInvariants () =
        let b = book
        Expect.isLessThanOrEqual (b.Prepared + b.InFlight) b.CqEntries "Prepared + InFlight <= CqEntries"
        Expect.isLessThanOrEqual b.Prepared b.SqEntries "Prepared <= SqEntries"
        Expect.isLessThanOrEqual b.UserOps (RingBook.userCapacity b) "user operations keep to their share"
        Expect.equal (b.Submitted - b.Completed) (int64 b.InFlight) "Submitted - Completed = InFlight"
        Expect.equal b.Prepared sq.Count "Prepared counts the SQEs written"
        Expect.equal b.InFlight inFlight.Count "InFlight counts the operations the kernel holds"
        Expect.equal (RingBook.isIdle b) (sq.Count = 0 && inFlight.Count = 0) "isIdle"

    /// The kernel consumes SQEs in ring order, `take` at most.
    let submit take =
        let consumed = min take sq.Count

        for _ in 1..consumed do
            inFlight.Add(sq.Dequeue())

        book <- RingBook.submitted consumed book

    /// Writes the operation's SQE if admit allows, submitting first if it says so; false when it must wait.
    let tryPlace id take =
        match RingBook.admit book with
        | Admission.Prepare ->
            book <- RingBook.prepared true book
            sq.Enqueue id
            true
        | Admission.SubmitFirst ->
            submit (max 1 take)
            Expect.equal (RingBook.admit book) Admission.Prepare "after submitting, there is room to prepare"
            book <- RingBook.prepared true book
            sq.Enqueue id
            true
        | Admission.Backlog -> false

    let retryBacklog take =
        while backlog.Count > 0 && tryPlace (backlog.Peek()) take do
            backlog.Dequeue() |> ignore

    member _.Book = book
    member _.Issued = issued
    member _.Completed = completed

    member this.Run(c: RingCommand) =
        // Messages are built only on failure: formatting a union for every check would dominate the run time.
        try
            this.Step c
            checkInvariants ()
        with :? AssertException as e ->
            failtestf "after %A (book %A): %s" c book e.Message

    member private _.Step(c: RingCommand) =
        match c with
        | Issue(count, take) ->
            for _ in 1..count do
                let id = issued
                issued <- issued + 1

                // Newcomers do not overtake the backlog.
                if backlog.Count > 0 || not (tryPlace id take) then
                    backlog.Enqueue id
        | Submit take -> submit take
        | Complete(pick, take) ->
            if inFlight.Count > 0 then
                let at = pick % inFlight.Count
                let id = inFlight[at]
                inFlight.RemoveAt at
                book <- RingBook.completed true book
                Expect.isTrue (completed.Add id) "each operation completes once"
                retryBacklog take

    /// The program stops issuing; the kernel consumes and completes everything, the backlog included.
    member this.Drain() =
        let mutable rounds = 0

        while (backlog.Count > 0 || sq.Count > 0 || inFlight.Count > 0) && rounds <= issued do
            this.Run(Submit sq.Count)

            while inFlight.Count > 0 do
                this.Run(Complete(0, sq.Count))

            rounds <- rounds + 1

        Expect.equal backlog.Count 0 "the backlog drains"

let tests =
    testList
        "RingBook"
        [ testPropertyWithConfig
              models
              "a shell that obeys admit never overfills the rings, and every operation completes once"
          <| Prop.forAll (Arb.fromGen (Gen.zip ringSizes (Gen.listOf command))) (fun ((sqEntries, cqEntries), commands) ->
              let shell = Shell(sqEntries, cqEntries)

              for c in commands do
                  shell.Run c

              shell.Drain()
              Expect.isTrue (RingBook.isIdle shell.Book) "idle at the end"
              Expect.equal shell.Completed.Count shell.Issued "every operation completed"
              Expect.equal shell.Book.Submitted (int64 shell.Issued) "every operation submitted once"
              Expect.equal shell.Book.Completed (int64 shell.Issued) "every completion counted once")

          testPropertyWithConfig quick "user operations holding their whole share leave room for a cancel each and two more"
          <| Prop.forAll (Arb.fromGen (Gen.elements [ 2; 4; 8; 16; 32; 256 ])) (fun sqEntries ->
              // A legal ring: the kernel makes the CQ twice the SQ.
              let mutable book = RingBook.create sqEntries (2 * sqEntries)

              let place admission user =
                  match admission book with
                  | Admission.Prepare -> book <- RingBook.prepared user book; true
                  | Admission.SubmitFirst ->
                      book <- RingBook.submitted book.Prepared book
                      book <- RingBook.prepared user book
                      true
                  | Admission.Backlog -> false

              // Reads on idle sockets: they fill the user share and never complete.
              while place RingBook.admit true do
                  ()

              let users = book.UserOps
              Expect.equal users (RingBook.userCapacity book) "the share is full"

              // Each of them canceled, plus the wake-up read and the latency-ring poll.
              for i in 1 .. users + 2 do
                  Expect.isTrue (place RingBook.admitInternal false) $"the shard's own operation {i} of {users + 2} finds room"

              Expect.isLessThanOrEqual (book.Prepared + book.InFlight) book.CqEntries "and the CQ cannot overflow")

          testPropertyWithConfig quick "submitted moves at most what is prepared, and never a negative count"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip3 ringSizes (Gen.choose (0, 64)) (Gen.choose (-10, 100))))
              (fun ((sqEntries, cqEntries), preparedCount, count) ->
                  let mutable book = RingBook.create sqEntries cqEntries

                  for _ in 1..preparedCount do
                      book <- RingBook.prepared true book

                  let after = RingBook.submitted count book
                  let moved = max 0 (min count preparedCount)
                  Expect.equal after.Prepared (preparedCount - moved) "prepared drops by what the kernel took"
                  Expect.equal after.InFlight moved "in flight grows by the same"
                  Expect.equal after.Submitted (int64 moved) "counted")

          testPropertyWithConfig quick "admit: Backlog when the CQ could overflow, else SubmitFirst when the SQ is full"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip3 ringSizes (Gen.choose (0, 130)) (Gen.choose (0, 130))))
              (fun ((sqEntries, cqEntries), prepared, inFlight) ->
                  let book =
                      { RingBook.create sqEntries cqEntries with
                          Prepared = prepared
                          InFlight = inFlight }

                  let expected =
                      if prepared + inFlight + 1 > cqEntries then Admission.Backlog
                      elif prepared + 1 > sqEntries then Admission.SubmitFirst
                      else Admission.Prepare

                  Expect.equal (RingBook.admit book) expected "the first limit one more SQE would break") ]

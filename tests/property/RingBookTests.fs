/// RingBook: its transitions, and a model shell that obeys `admit` against a model kernel ring with IORING_FEAT_NODROP
/// (an SQ, in-flight operations, a CQ of CqEntries and an unbounded overflow list the kernel flushes into the CQ when
/// the shell reaps). Operations the book does not admit wait in one FIFO backlog per class.
module Scipio.Property.Tests.RingBookTests

open System.Collections.Generic
open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

/// What happens to one ring.
type RingCommand =
    /// The shell wants `count` new operations of a class. Should it have to submit first, the kernel consumes up to
    /// `take` SQEs (at least one).
    | Issue of op: OpClass * count: int * take: int
    /// io_uring_enter: the kernel consumes up to `take` of the prepared SQEs, perhaps fewer than are prepared.
    | Submit of take: int
    /// The kernel completes up to `count` prompt or internal operations it holds, picked from `pick` on.
    | CompletePrompt of count: int * pick: int
    /// The kernel completes up to `count` lingering operations (data arrives on a few idle sockets).
    | CompleteLingering of count: int * pick: int
    /// Every lingering operation the kernel holds completes at once (a broadcast, a peer closing every connection).
    | LingeringBurst
    /// The shell reaps every CQE, the kernel then flushes its overflow list into the CQ, and the shell retries its
    /// backlogs, submitting up to `take` if it has to.
    | Reap of take: int

let private ringSizes =
    gen {
        let! sq = Gen.elements [ 1; 2; 4; 8; 16; 32 ]
        // The shell asks for a CQ of 16 × SQ (at least 1024; smaller here, so that bursts overflow it). Other sizes
        // are not what the shell sets up, but the invariants must not rely on it.
        let! cq =
            Gen.frequency
                [
                    4, Gen.constant (16 * sq)
                    1, Gen.elements [ sq; 2 * sq ]
                    1, Gen.choose (1, 64)
                ]

        return sq, cq
    }

let private opClass =
    Gen.frequency
        [
            3, Gen.constant OpClass.Prompt
            3, Gen.constant OpClass.Lingering
            1, Gen.constant OpClass.Internal
        ]

let private command =
    let take = Gen.frequency [ 3, Gen.choose (0, 4); 1, Gen.choose (0, 64) ]

    let count op =
        match op with
        | OpClass.Lingering -> Gen.frequency [ 2, Gen.choose (1, 8); 1, Gen.choose (1, 400) ]
        | OpClass.Prompt -> Gen.frequency [ 2, Gen.choose (1, 8); 1, Gen.choose (1, 100) ]
        | OpClass.Internal -> Gen.choose (1, 3)

    Gen.frequency
        [
            4,
            gen {
                let! op = opClass
                let! n = count op
                let! t = take
                return Issue(op, n, t)
            }
            2, Gen.map Submit take
            3, Gen.map2 (fun n p -> CompletePrompt(n, p)) (Gen.choose (1, 50)) (Gen.choose (0, 1000))
            1, Gen.map2 (fun n p -> CompleteLingering(n, p)) (Gen.choose (1, 20)) (Gen.choose (0, 1000))
            1, Gen.constant LingeringBurst
            3, Gen.map Reap take
        ]

/// The shell and the kernel's sides of one ring: which operation is where.
type private Model(sqEntries: int, cqEntries: int) =
    let mutable book = RingBook.create sqEntries cqEntries
    let classes = List<OpClass>()
    let promptBacklog = Queue<int>()
    let lingeringBacklog = Queue<int>()
    let sq = Queue<int>()
    // What the kernel holds: operations that complete by themselves, and lingering ones.
    let quick = List<int>()
    let lingering = List<int>()
    let cq = Queue<int>()
    let overflow = Queue<int>()
    let completed = HashSet<int>()
    let counts = Dictionary<OpClass, int>()

    do
        for c in [ OpClass.Internal; OpClass.Prompt; OpClass.Lingering ] do
            counts[c] <- 0

    let backlogOf op =
        match op with
        | OpClass.Lingering -> lingeringBacklog
        | _ -> promptBacklog

    let checkInvariants () =
        let b = book
        Expect.isLessThanOrEqual b.Prepared b.SqEntries "Prepared <= SqEntries"
        Expect.equal b.Prepared sq.Count "Prepared counts the SQEs written"

        Expect.equal
            b.InFlight
            (quick.Count + lingering.Count + cq.Count + overflow.Count)
            "InFlight counts what the kernel holds, its CQ and its overflow list"

        Expect.equal (b.Submitted - b.Completed) (int64 b.InFlight) "Submitted - Completed = InFlight"
        Expect.equal b.Prompt counts[OpClass.Prompt] "Prompt counts prompt operations prepared or in flight"
        Expect.equal b.Lingering counts[OpClass.Lingering] "Lingering counts lingering operations"
        Expect.equal b.Internal counts[OpClass.Internal] "Internal counts the shard's own"
        Expect.isLessThanOrEqual b.Prompt (RingBook.promptCapacity b) "prompt operations keep to their capacity"
        Expect.isLessThanOrEqual b.Lingering (RingBook.lingeringCapacity b) "lingering ones to theirs"
        Expect.equal (RingBook.userOps b) (b.Prompt + b.Lingering) "userOps"
        Expect.equal (RingBook.isIdle b) (sq.Count = 0 && b.InFlight = 0) "isIdle"

    /// The kernel consumes SQEs in ring order, `take` at most.
    let submit take =
        let consumed = min take sq.Count

        for _ in 1..consumed do
            let id = sq.Dequeue()

            if classes[id] = OpClass.Lingering then
                lingering.Add id
            else
                quick.Add id

        book <- RingBook.submitted consumed book

    /// The kernel posts a CQE: into the CQ if it has room and nothing overflowed before it, else (NODROP) into the
    /// overflow list, in order.
    let post id =
        if cq.Count < cqEntries && overflow.Count = 0 then
            cq.Enqueue id
        else
            overflow.Enqueue id

    /// The kernel completes the operation at `at` of `held`.
    let complete (held: List<int>) at =
        let id = held[at]
        held[at] <- held[held.Count - 1]
        held.RemoveAt(held.Count - 1)
        post id

    let place id take =
        let op = classes[id]
        book <- RingBook.prepared op book
        counts[op] <- counts[op] + 1
        sq.Enqueue id
        ignore take

    /// Writes the operation's SQE if admit allows, submitting first if it says so; false when it must wait.
    let tryPlace id take =
        let op = classes[id]

        match RingBook.admit op book with
        | Admission.Prepare ->
            place id take
            true
        | Admission.SubmitFirst ->
            submit (max 1 take)
            Expect.equal (RingBook.admit op book) Admission.Prepare "after submitting, there is room to prepare"
            place id take
            true
        | Admission.Backlog ->
            if op = OpClass.Internal then
                failtest "the shard's own operation was backlogged"

            false

    let retry (backlog: Queue<int>) take =
        while backlog.Count > 0 && tryPlace (backlog.Peek()) take do
            backlog.Dequeue() |> ignore

    member _.Book = book
    member _.Issued = classes.Count
    member _.Completed = completed
    member _.Backlogged = promptBacklog.Count + lingeringBacklog.Count

    member this.Run(c: RingCommand) =
        // Messages are built only on failure: formatting a union for every check would dominate the run time.
        try
            this.Step c
            checkInvariants ()
        with :? AssertException as e ->
            failtestf
                "after %A (book %A, backlogs %d prompt, %d lingering): %s"
                c
                book
                promptBacklog.Count
                lingeringBacklog.Count
                e.Message

    member private _.Step(c: RingCommand) =
        match c with
        | Issue(op, count, take) ->
            for _ in 1..count do
                let id = classes.Count
                classes.Add op

                // Newcomers do not overtake their class's backlog.
                if op = OpClass.Internal then
                    tryPlace id take |> ignore
                elif (backlogOf op).Count > 0 || not (tryPlace id take) then
                    (backlogOf op).Enqueue id
        | Submit take -> submit take
        | CompletePrompt(count, pick) ->
            for _ in 1 .. min count quick.Count do
                complete quick (pick % quick.Count)
        | CompleteLingering(count, pick) ->
            for _ in 1 .. min count lingering.Count do
                complete lingering (pick % lingering.Count)
        | LingeringBurst ->
            while lingering.Count > 0 do
                complete lingering (lingering.Count - 1)
        | Reap take ->
            while cq.Count > 0 do
                let id = cq.Dequeue()
                let op = classes[id]
                book <- RingBook.completed op book
                counts[op] <- counts[op] - 1
                Expect.isTrue (completed.Add id) "each operation completes once"

            while overflow.Count > 0 && cq.Count < cqEntries do
                cq.Enqueue(overflow.Dequeue())

            retry promptBacklog take
            retry lingeringBacklog take

    /// The program stops issuing; the kernel consumes and completes everything, the backlogs included.
    member this.Drain() =
        let mutable rounds = 0

        while (this.Backlogged > 0 || not (RingBook.isIdle book))
              && rounds <= 4 * classes.Count + 4 do
            this.Run(Submit sq.Count)
            this.Run(CompletePrompt(quick.Count, 0))
            this.Run LingeringBurst
            this.Run(Reap sq.Count)
            rounds <- rounds + 1

        Expect.equal this.Backlogged 0 "the backlogs drain"

/// A book with any counts a shell could reach, for the single-transition properties.
let private anyBook =
    gen {
        let! sq, cq = ringSizes
        let! prepared = Gen.choose (0, sq)
        let! inFlight = Gen.choose (0, 5000)
        let book = RingBook.create sq cq

        let! prompt =
            Gen.frequency
                [
                    3, Gen.choose (0, RingBook.promptCapacity book)
                    1, Gen.elements [ RingBook.promptCapacity book ]
                ]

        let! lingering =
            Gen.frequency [ 3, Gen.choose (0, 3000); 1, Gen.elements [ RingBook.lingeringCapacity book ] ]

        let! internalOps = Gen.choose (0, 50)

        return
            { book with
                Prepared = prepared
                InFlight = inFlight
                Prompt = prompt
                Lingering = lingering
                Internal = internalOps
            }
    }

let tests =
    testList
        "RingBook"
        [
            testPropertyWithConfig
                models
                "a model shell on a NODROP ring: nothing lost, the shard's own never backlogged, backlogs drain"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip ringSizes (Gen.listOf command)))
                (fun ((sqEntries, cqEntries), commands) ->
                    let shell = Model(sqEntries, cqEntries)

                    for c in commands do
                        shell.Run c

                    shell.Drain()
                    Expect.isTrue (RingBook.isIdle shell.Book) "idle at the end"
                    Expect.equal shell.Completed.Count shell.Issued "every operation completed"
                    Expect.equal shell.Book.Submitted (int64 shell.Issued) "every operation submitted once"
                    Expect.equal shell.Book.Completed (int64 shell.Issued) "every completion counted once")

            testPropertyWithConfig
                quick
                "thousands of idle lingering operations block neither file I/O nor the shard's own"
            <| Prop.forAll (Arb.fromGen (Gen.elements [ 2; 4; 8; 16; 32; 64 ])) (fun sqEntries ->
                // The shell's ring: CQ = 16 × SQ, at least 1024.
                let mutable book = RingBook.create sqEntries (max 1024 (16 * sqEntries))

                let place op =
                    match RingBook.admit op book with
                    | Admission.Prepare ->
                        book <- RingBook.prepared op book
                        true
                    | Admission.SubmitFirst ->
                        book <- RingBook.submitted book.Prepared book
                        book <- RingBook.prepared op book
                        true
                    | Admission.Backlog -> false

                // Reads on idle sockets and FIFOs: they never complete.
                for _ in 1..5000 do
                    Expect.isTrue (place OpClass.Lingering) "5,000 idle reads are admitted"

                // Then a burst of file reads fills the prompt share, and each prompt read gets a cancel.
                let mutable prompts = 0

                while place OpClass.Prompt do
                    prompts <- prompts + 1

                Expect.equal prompts (RingBook.promptCapacity book) "the whole prompt share"

                for i in 1 .. 5000 + prompts + 2 do
                    Expect.isTrue (place OpClass.Internal) $"the shard's own operation {i} finds room"

                Expect.isLessThanOrEqual book.Prepared book.SqEntries "the SQ never overfills")

            testPropertyWithConfig
                quick
                "admit: Backlog only when the class is at capacity, else SubmitFirst when the SQ is full"
            <| Prop.forAll (Arb.fromGen (Gen.zip anyBook opClass)) (fun (book, op) ->
                let atCapacity =
                    match op with
                    | OpClass.Internal -> false
                    | OpClass.Prompt -> book.Prompt >= RingBook.promptCapacity book
                    | OpClass.Lingering -> book.Lingering >= RingBook.lingeringCapacity book

                let expected =
                    if atCapacity then
                        Admission.Backlog
                    elif book.Prepared >= book.SqEntries then
                        Admission.SubmitFirst
                    else
                        Admission.Prepare

                Expect.equal (RingBook.admit op book) expected "the first limit one more operation would break"
                Expect.notEqual (RingBook.admit OpClass.Internal book) Admission.Backlog "Internal is never backlogged")

            testPropertyWithConfig quick "capacities: prompt CQ − SQ (at least 1), lingering 64 × CQ"
            <| Prop.forAll (Arb.fromGen ringSizes) (fun (sq, cq) ->
                let book = RingBook.create sq cq
                Expect.equal (RingBook.promptCapacity book) (max 1 (cq - sq)) "prompt"
                Expect.equal (RingBook.lingeringCapacity book) (64 * cq) "lingering"

                Expect.equal
                    (RingBook.lingeringCapacity (RingBook.create sq System.Int32.MaxValue))
                    System.Int32.MaxValue
                    "no overflow")

            testPropertyWithConfig
                quick
                "prepared, submitted and completed move one operation of its class through the book"
            <| Prop.forAll (Arb.fromGen (Gen.zip anyBook opClass)) (fun (book, op) ->
                let book =
                    { book with
                        Prepared = min book.Prepared (book.SqEntries - 1)
                    }

                let after =
                    book
                    |> RingBook.prepared op
                    |> RingBook.submitted (book.Prepared + 1)
                    |> RingBook.completed op

                Expect.equal
                    { after with
                        Submitted = 0L
                        Completed = 0L
                    }
                    { book with
                        Prepared = 0
                        InFlight = book.InFlight + book.Prepared
                        Submitted = 0L
                        Completed = 0L
                    }
                    "counts back"

                Expect.equal after.Submitted (book.Submitted + int64 book.Prepared + 1L) "submitted counted"
                Expect.equal after.Completed (book.Completed + 1L) "completion counted")

            testPropertyWithConfig quick "submitted moves at most what is prepared, and never a negative count"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 ringSizes (Gen.choose (0, 64)) (Gen.choose (-10, 100))))
                (fun ((sqEntries, cqEntries), preparedCount, count) ->
                    let mutable book = RingBook.create sqEntries cqEntries

                    for _ in 1..preparedCount do
                        book <- RingBook.prepared OpClass.Prompt book

                    let after = RingBook.submitted count book
                    let moved = max 0 (min count preparedCount)
                    Expect.equal after.Prepared (preparedCount - moved) "prepared drops by what the kernel took"
                    Expect.equal after.InFlight moved "in flight grows by the same"
                    Expect.equal after.Submitted (int64 moved) "counted")
        ]

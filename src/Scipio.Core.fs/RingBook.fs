namespace Scipio.Core

/// What the shell may do with an operation it wants to put on a ring.
[<Struct; RequireQualifiedAccess>]
type Admission =
    | Prepare
    | SubmitFirst
    | Backlog

[<Struct; RequireQualifiedAccess>]
type OpClass =
    | Internal
    | Prompt
    | Lingering

[<Struct>]
type RingBook =
    { SqEntries: int
      CqEntries: int
      Prepared: int
      InFlight: int
      Prompt: int
      Lingering: int
      Internal: int
      Submitted: int64
      Completed: int64 }

[<RequireQualifiedAccess>]
module RingBook =
    let create (sqEntries: int) (cqEntries: int) =
        { SqEntries = sqEntries; CqEntries = cqEntries; Prepared = 0; InFlight = 0; Prompt = 0; Lingering = 0
          Internal = 0; Submitted = 0L; Completed = 0L }

    let promptCapacity (book: RingBook) = max 1 (book.CqEntries - book.SqEntries)
    let lingeringCapacity (book: RingBook) = 64 * book.CqEntries

    let admit (cls: OpClass) (book: RingBook) =
        if book.Prepared >= book.SqEntries then Admission.SubmitFirst
        else
            match cls with
            | OpClass.Internal -> Admission.Prepare
            | OpClass.Prompt -> if book.Prompt >= promptCapacity book then Admission.Backlog else Admission.Prepare
            | OpClass.Lingering -> if book.Lingering >= lingeringCapacity book then Admission.Backlog else Admission.Prepare

    let private count (cls: OpClass) (delta: int) (book: RingBook) =
        match cls with
        | OpClass.Internal -> { book with Internal = book.Internal + delta }
        | OpClass.Prompt -> { book with Prompt = book.Prompt + delta }
        | OpClass.Lingering -> { book with Lingering = book.Lingering + delta }

    let prepared (cls: OpClass) (book: RingBook) = count cls 1 { book with Prepared = book.Prepared + 1 }

    let submitted (count: int) (book: RingBook) =
        let count = max 0 (min count book.Prepared)
        { book with Prepared = book.Prepared - count; InFlight = book.InFlight + count; Submitted = book.Submitted + int64 count }

    let completed (cls: OpClass) (book: RingBook) =
        count cls -1 { book with InFlight = book.InFlight - 1; Completed = book.Completed + 1L }

    let isIdle (book: RingBook) = book.Prepared = 0 && book.InFlight = 0
    let userOps (book: RingBook) = book.Prompt + book.Lingering

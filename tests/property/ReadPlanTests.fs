/// ReadPlan: the merge plan of DmaFile.ReadManyAsync, over batches of up to 200 ranges of a file of up to 64 MiB,
/// clustered or scattered, with duplicates, overlaps and zero-length ranges.
module Scipio.Property.Tests.ReadPlanTests

open System
open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

[<Literal>]
let private KiB = 1024

[<Literal>]
let private MiB = 1048576

let private span (offset: int64) (length: int) : FileSpan = { Offset = offset; Length = length }

/// A batch and the limits to plan it under.
type Batch =
    {
        Limits: ReadPlanLimits
        Requests: FileSpan array
    }

/// Limits as a device gives them: alignment 512 or 4096, MaxRequest 4 KiB to 1 MiB, amplification 1.0 to 4.0,
/// MaxMerge from 1 to unbounded.
let private limits =
    gen {
        let! alignment = Gen.elements [ 512; 4096 ]

        let! maxRequest =
            Gen.frequency
                [
                    2, Gen.elements [ 4 * KiB; 64 * KiB; 128 * KiB; 512 * KiB; MiB ]
                    1,
                    Gen.choose (4 * KiB / alignment, MiB / alignment)
                    |> Gen.map (fun k -> k * alignment)
                ]

        let! amplification =
            Gen.frequency
                [
                    2, Gen.elements [ 1.0; 1.25; 2.0; 4.0 ]
                    1, Gen.choose (1000, 4000) |> Gen.map (fun x -> float x / 1000.0)
                ]

        let! maxMerge =
            Gen.frequency [ 1, Gen.constant 1; 2, Gen.choose (2, 16); 2, Gen.constant Int32.MaxValue ]

        return
            {
                Alignment = alignment
                MaxRequest = maxRequest
                MaxAmplification = amplification
                MaxMerge = maxMerge
            }
    }

/// How the next request of a batch is made.
type private Draw =
    | Fresh of FileSpan
    /// A copy of an earlier request (picked modulo how many there are).
    | Copy of pick: int
    /// A request that starts `shift` bytes from an earlier one's start (clamped at 0): overlapping, abutting or near.
    | Near of pick: int * shift: int64 * length: int

let private length =
    Gen.frequency
        [
            1, Gen.constant 0
            4, Gen.choose (1, 4 * KiB)
            2, Gen.choose (1, 64) |> Gen.map (fun k -> k * 512)
            2, Gen.choose (1, 128 * KiB)
            1, Gen.choose (1, 2 * MiB)
        ]

/// 0–200 requests over a file of up to 64 MiB: scattered over it, or clustered around a few places; some offsets
/// aligned; about a third copies of earlier requests or near them.
let private requests =
    gen {
        let! fileSize = Gen.choose (1, 64 * MiB) |> Gen.map int64
        let! count = Gen.frequency [ 1, Gen.choose (0, 5); 3, Gen.choose (0, 200) ]

        let! centres =
            Gen.choose (1, 6)
            |> Gen.bind (fun k -> Gen.arrayOfLength k (Gen.choose64 (0L, fileSize - 1L)))

        let! radius = Gen.elements [ 0L; 4096L; 65536L; int64 MiB ]
        let! granule = Gen.elements [ 1L; 1L; 512L; 4096L ]

        let offset =
            Gen.frequency
                [
                    3, Gen.elements centres |> Gen.bind (fun c -> Gen.choose64 (c, c + radius))
                    1, Gen.choose64 (0L, fileSize - 1L)
                ]
            |> Gen.map (fun o -> o / granule * granule)

        let draw =
            Gen.frequency
                [
                    6, Gen.map2 (fun o l -> Fresh(span o l)) offset length
                    1, Gen.choose (0, 1000) |> Gen.map Copy
                    2,
                    gen {
                        let! pick = Gen.choose (0, 1000)
                        let! shift = Gen.choose64 (-8192L, 16384L)
                        let! l = length
                        return Near(pick, shift, l)
                    }
                ]

        let! draws = Gen.arrayOfLength count draw
        let made = ResizeArray<FileSpan>()

        for d in draws do
            match d with
            | Copy pick when made.Count > 0 -> made.Add made[pick % made.Count]
            | Near(pick, shift, l) when made.Count > 0 ->
                let r = made[pick % made.Count]
                made.Add(span (max 0L (r.Offset + shift)) l)
            | Fresh r -> made.Add r
            | Copy _
            | Near _ -> made.Add(span 0L 4096)

        return made.ToArray()
    }

let private batch =
    Gen.map2 (fun l r -> { Limits = l; Requests = r }) limits requests

/// The requests of `read`, by index.
let private served (plan: ReadPlan) (read: PlannedRead) =
    plan.Order[read.First .. read.First + read.Count - 1]

let private endOf (read: PlannedRead) = read.Offset + int64 read.Length

/// The aligned span of request `i`, as (start, end).
let private blockSpan (b: Batch) (i: int) =
    let r = b.Requests[i]
    let struct (start, length) = ReadPlan.aligned b.Limits.Alignment r.Offset r.Length
    start, start + int64 length

/// The bytes of the alignment blocks the requests touch: the length of the union of their aligned spans.
let private blockBytes (b: Batch) (indices: int array) =
    let spans =
        indices
        |> Array.map (blockSpan b)
        |> Array.filter (fun (s, e) -> e > s)
        |> Array.sort

    let mutable total = 0L
    let mutable reached = Int64.MinValue

    for s, e in spans do
        let s = max s reached

        if e > s then
            total <- total + (e - s)

        reached <- max reached e

    total

let private showRead (r: PlannedRead) =
    $"read {r.Length} at {r.Offset} (Order[{r.First}..+{r.Count}])"

let private showLimits (l: ReadPlanLimits) =
    $"alignment {l.Alignment}, MaxRequest {l.MaxRequest}, MaxAmplification {l.MaxAmplification}, MaxMerge {l.MaxMerge}"

let private showSpans (b: Batch) (indices: int array) =
    indices
    |> Array.map (fun i -> $"#{i} {b.Requests[i].Length}@{b.Requests[i].Offset}")
    |> String.concat ", "

/// Fails with the message `what ()` builds unless `ok`: messages are built only on failure, so that the properties
/// stay fast.
let private check (ok: bool) (what: unit -> string) =
    if not ok then
        failtest (what ())

/// The reads that read something (all but the empty read).
let private deviceReads (plan: ReadPlan) =
    plan.Reads |> Array.filter (fun r -> r.Length > 0)

/// The property of a batch, its plan computed once.
let private forBatches (gen: FsCheck.Gen<Batch>) (property: Batch -> ReadPlan -> unit) =
    Prop.forAll (Arb.fromGen gen) (fun b -> property b (ReadPlan.plan b.Limits b.Requests))

let tests =
    testList
        "ReadPlan"
        [
            testPropertyWithConfig
                quick
                "every request index appears exactly once in Order, and the reads cover Order in turn"
            <| forBatches batch (fun b plan ->
                Expect.equal (Array.sort plan.Order) [| 0 .. b.Requests.Length - 1 |] "a permutation of the indices"
                let mutable next = 0

                for read in plan.Reads do
                    check (read.First = next && read.Count >= 1) (fun () -> $"{showRead read}: expected First {next}")
                    next <- read.First + read.Count

                Expect.equal next b.Requests.Length "the reads serve every request")

            testPropertyWithConfig quick "each request lies within the read that serves it"
            <| forBatches batch (fun b plan ->
                for read in plan.Reads do
                    for i in served plan read do
                        let r = b.Requests[i]

                        check
                            (if r.Length = 0 then
                                 read.Length = 0
                             else
                                 read.Offset <= r.Offset && r.Offset + int64 r.Length <= endOf read)
                            (fun () -> $"{showRead read} serves #{i}: {r.Length} bytes at {r.Offset}"))

            testPropertyWithConfig
                quick
                "every read is aligned, exactly covers its requests, and keeps to MaxRequest (but for one oversized request) and MaxMerge"
            <| forBatches batch (fun b plan ->
                let a = int64 b.Limits.Alignment

                for read in deviceReads plan do
                    let spans = served plan read |> Array.map (blockSpan b)

                    let what () =
                        $"{showRead read} for {showSpans b (served plan read)}; {showLimits b.Limits}"

                    check (read.Offset % a = 0L && int64 read.Length % a = 0L) what
                    check (read.Offset = (spans |> Array.map fst |> Array.min)) what
                    check (endOf read = (spans |> Array.map snd |> Array.max)) what
                    check (read.Count <= b.Limits.MaxMerge) what

                    check
                        (read.Length <= b.Limits.MaxRequest
                         || spans |> Array.exists (fun (s, e) -> s = read.Offset && e = endOf read))
                        what)

            testPropertyWithConfig quick "zero-length requests are served by one empty read, first, and by nothing else"
            <| forBatches batch (fun b plan ->
                let empties = b.Requests |> Array.filter (fun r -> r.Length = 0) |> Array.length
                let emptyReads = plan.Reads |> Array.filter (fun r -> r.Length = 0)

                if empties = 0 then
                    Expect.isEmpty emptyReads "no empty read without empty requests"
                else
                    Expect.equal
                        emptyReads
                        [|
                            {
                                Offset = 0L
                                Length = 0
                                First = 0
                                Count = empties
                            }
                        |]
                        "one empty read"

                    Expect.equal plan.Reads[0] emptyReads[0] "first"

                    for i in served plan plan.Reads[0] do
                        Expect.equal b.Requests[i].Length 0 "only empty requests")

            testPropertyWithConfig
                quick
                "a read is at most MaxAmplification × the bytes of the blocks its requests touch"
            <| forBatches batch (fun b plan ->
                for read in deviceReads plan do
                    let needed = blockBytes b (served plan read)

                    check (float read.Length <= b.Limits.MaxAmplification * float needed) (fun () ->
                        $"{showRead read} needs {needed} bytes of blocks for {showSpans b (served plan read)}; {showLimits b.Limits}"))

            testPropertyWithConfig
                quick
                "device reads come in offset order and overlap only where one read could not serve both"
            <| forBatches batch (fun b plan ->
                for pair in deviceReads plan |> Array.pairwise do
                    let r1, r2 = pair

                    let what () =
                        $"{showRead r1} then {showRead r2}; {showLimits b.Limits}"

                    check (r1.Offset <= r2.Offset) what

                    if r2.Offset < endOf r1 then
                        check
                            (r1.Count = b.Limits.MaxMerge
                             || max (endOf r1) (endOf r2) - r1.Offset > int64 b.Limits.MaxRequest)
                            what)

            testPropertyWithConfig quick "each device read ends because the next request would break a limit"
            <| forBatches batch (fun b plan ->
                for pair in deviceReads plan |> Array.pairwise do
                    let r1, r2 = pair
                    let next = plan.Order[r2.First]
                    let s, e = blockSpan b next
                    let finish = max (endOf r1) e
                    let span = finish - r1.Offset
                    let needed = blockBytes b (Array.append (served plan r1) [| next |])

                    let full = r1.Count >= b.Limits.MaxMerge
                    let tooLong = span > int64 b.Limits.MaxRequest && finish <> endOf r1
                    let tooSparse = float span > b.Limits.MaxAmplification * float needed

                    check (full || tooLong || tooSparse) (fun () ->
                        $"{showRead r1} could have taken #{next} ({s}..{e}) of {showRead r2}; {showLimits b.Limits}"))

            testPropertyWithConfig
                quick
                "MaxAmplification 1.0 and MaxMerge 1: one read per non-empty request, its aligned span"
            <| forBatches
                (batch
                 |> Gen.map (fun b ->
                     { b with
                         Limits =
                             { b.Limits with
                                 MaxAmplification = 1.0
                                 MaxMerge = 1
                             }
                     }))
                (fun b plan ->
                    let reads = deviceReads plan
                    let nonEmpty = b.Requests |> Array.filter (fun r -> r.Length > 0) |> Array.length
                    Expect.equal reads.Length nonEmpty "one read each"

                    for read in reads do
                        let s, e = blockSpan b plan.Order[read.First]
                        Expect.equal (read.Offset, endOf read) (s, e) "the request's aligned span")

            testPropertyWithConfig quick "merging never adds reads: at most one device read per non-empty request"
            <| forBatches batch (fun b plan ->
                let nonEmpty = b.Requests |> Array.filter (fun r -> r.Length > 0) |> Array.length
                Expect.isLessThanOrEqual (deviceReads plan).Length nonEmpty "device reads")

            testPropertyWithConfig
                quick
                "duplicates and zero-length requests add no device read while MaxMerge does not bind"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! b = batch
                        let! copies = Gen.choose (1, 50)
                        let! picks = Gen.arrayOfLength copies (Gen.choose (0, 1000))
                        let! emptyOffsets = Gen.arrayOfLength copies (Gen.choose64 (0L, 64L * int64 MiB))

                        return
                            { b with
                                Limits =
                                    { b.Limits with
                                        MaxMerge = Int32.MaxValue
                                    }
                            },
                            picks,
                            emptyOffsets
                    }
                ))
                (fun (b, picks, emptyOffsets) ->
                    let plan = ReadPlan.plan b.Limits b.Requests

                    let copies =
                        if b.Requests.Length = 0 then
                            [||]
                        else
                            picks |> Array.map (fun p -> b.Requests[p % b.Requests.Length])

                    let more =
                        Array.concat [ b.Requests; copies; emptyOffsets |> Array.map (fun o -> span o 0) ]

                    let plan2 = ReadPlan.plan b.Limits more

                    let place (p: ReadPlan) =
                        deviceReads p |> Array.map (fun r -> r.Offset, r.Length)

                    Expect.equal (place plan2) (place plan) "the same device reads")

            testPropertyWithConfig
                quick
                "requests that lie within another's aligned span add no device read while MaxMerge does not bind"
            <| forBatches
                (batch
                 |> Gen.map (fun b ->
                     { b with
                         Limits =
                             { b.Limits with
                                 MaxMerge = Int32.MaxValue
                             }
                     }))
                (fun b plan ->
                    let spans = Array.init b.Requests.Length (blockSpan b)

                    // Within another: inside a different aligned span, or the same as an earlier one.
                    let nested i =
                        let s, e = spans[i]

                        spans
                        |> Array.indexed
                        |> Array.exists (fun (j, (s2, e2)) ->
                            e2 > s2 && s2 <= s && e <= e2 && (spans[j] <> spans[i] || j < i))

                    let outer =
                        b.Requests
                        |> Array.indexed
                        |> Array.filter (fun (i, _) -> not (nested i))
                        |> Array.map snd

                    let place (p: ReadPlan) =
                        deviceReads p |> Array.map (fun r -> r.Offset, r.Length)

                    Expect.equal (place plan) (place (ReadPlan.plan b.Limits outer)) "the same device reads")

            testPropertyWithConfig
                quick
                "requests within one block each get disjoint reads while MaxMerge does not bind"
            <| forBatches
                (batch
                 |> Gen.map (fun b ->
                     let a = int64 b.Limits.Alignment

                     {
                         Limits =
                             { b.Limits with
                                 MaxMerge = Int32.MaxValue
                             }
                         Requests =
                             b.Requests
                             |> Array.map (fun r -> span r.Offset (int (min (int64 r.Length) (a - r.Offset % a))))
                     }))
                (fun b plan ->
                    for r1, r2 in deviceReads plan |> Array.pairwise do
                        check (endOf r1 <= r2.Offset) (fun () -> $"{showRead r1} overlaps {showRead r2}"))

            testPropertyWithConfig quick "the plan depends on the requests as a multiset, not on their order"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! b = batch
                        let! permutation = Gen.shuffle [| 0 .. b.Requests.Length - 1 |]
                        return b, permutation
                    }
                ))
                (fun (b, permutation) ->
                    let shuffled = permutation |> Array.map (fun i -> b.Requests[i])
                    let plan = ReadPlan.plan b.Limits b.Requests
                    let plan2 = ReadPlan.plan b.Limits shuffled
                    Expect.equal plan2.Reads plan.Reads "the same reads"

                    Expect.equal
                        (plan2.Order |> Array.map (fun i -> shuffled[i]))
                        (plan.Order |> Array.map (fun i -> b.Requests[i]))
                        "serving the same spans in the same order"

                    Expect.equal (ReadPlan.plan b.Limits b.Requests) plan "deterministic")

            testPropertyWithConfig quick "aligned is the smallest aligned span covering the range"
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.zip3
                        (Gen.elements [ 512; 4096; 65536 ])
                        (Gen.choose64 (0L, 1L <<< 50))
                        (Gen.choose (0, 1 <<< 30))
                ))
                (fun (a, offset, length) ->
                    let struct (start, len) = ReadPlan.aligned a offset length
                    let a = int64 a
                    let finish = start + int64 len
                    Expect.equal (start % a, int64 len % a) (0L, 0L) "aligned"
                    Expect.isTrue (start <= offset && offset - start < a) "the offset rounded down"

                    if length = 0 then
                        Expect.equal len 0 "a zero-length range covers nothing"
                    else
                        let e = offset + int64 length
                        Expect.isTrue (finish >= e && finish - e < a) "the end rounded up")

            testCase
                "examples: neighbours merge, a gap within the amplification limit is read through, a wider one is not"
            <| fun () ->
                let limits =
                    {
                        Alignment = 4096
                        MaxRequest = 64 * KiB
                        MaxAmplification = 2.0
                        MaxMerge = 8
                    }

                let requests =
                    [|
                        span 100L 10 // block 0
                        span 5000L 3000 // block 1
                        span 0L 4096 // block 0 again
                        span 12288L 1 // block 3: one block of gap, 4 of 3 needed → 4/3 ≤ 2
                        span 40960L 0 // empty
                        span 65536L 8192 // blocks 16–17: past MaxRequest and 12 blocks of gap → a read of its own
                        span 65536L 8192
                    |] // a duplicate

                let plan = ReadPlan.plan limits requests

                Expect.equal
                    plan.Reads
                    [|
                        {
                            Offset = 0L
                            Length = 0
                            First = 0
                            Count = 1
                        }
                        {
                            Offset = 0L
                            Length = 16384
                            First = 1
                            Count = 4
                        }
                        {
                            Offset = 65536L
                            Length = 8192
                            First = 5
                            Count = 2
                        }
                    |]
                    "reads"

                Expect.equal plan.Order [| 4; 2; 0; 1; 3; 5; 6 |] "order: by aligned span, longest first, then offset"

            testCase "an oversized request gets one read of its aligned span, shared by the requests within it"
            <| fun () ->
                let limits =
                    {
                        Alignment = 512
                        MaxRequest = 4096
                        MaxAmplification = 1.0
                        MaxMerge = 3
                    }

                let requests =
                    [|
                        span 1000L 10
                        span 700L 10_000
                        span 2000L 100
                        span 10_000L 1000
                        span 9000L 2000
                    |]

                let plan = ReadPlan.plan limits requests

                // 700 + 10,000 → 512..10,752 (10,240 bytes). Requests 0 and 2 lie within it; the MaxMerge of 3 leaves
                // request 4 (8,704..11,264) and 3 (9,728..11,264) to a read of their own, overlapping the first.
                Expect.equal
                    plan.Reads
                    [|
                        {
                            Offset = 512L
                            Length = 10240
                            First = 0
                            Count = 3
                        }
                        {
                            Offset = 8704L
                            Length = 2560
                            First = 3
                            Count = 2
                        }
                    |]
                    "reads"

                Expect.equal plan.Order [| 1; 0; 2; 4; 3 |] "order"

            testCase "no requests, no reads"
            <| fun () ->
                let limits =
                    {
                        Alignment = 512
                        MaxRequest = 4096
                        MaxAmplification = 1.0
                        MaxMerge = 1
                    }

                Expect.equal (ReadPlan.plan limits [||]) { Reads = [||]; Order = [||] } "empty plan"

            testCase "limits out of range and negative requests are refused"
            <| fun () ->
                let good =
                    {
                        Alignment = 4096
                        MaxRequest = 128 * KiB
                        MaxAmplification = 1.5
                        MaxMerge = 4
                    }

                for limits, mentions in
                    [
                        { good with Alignment = 256 }, "Alignment"
                        { good with Alignment = 3000 }, "Alignment"
                        { good with MaxRequest = 0 }, "MaxRequest"
                        { good with MaxRequest = 6000 }, "MaxRequest"
                        { good with MaxAmplification = 0.5 }, "MaxAmplification"
                        { good with MaxAmplification = nan }, "MaxAmplification"
                        { good with MaxMerge = 0 }, "MaxMerge"
                    ] do
                    let e = Expect.throwsC (fun () -> ReadPlan.plan limits [| span 0L 1 |] |> ignore) id
                    Expect.isTrue (e :? ArgumentException) $"an ArgumentException: {e}"
                    Expect.stringContains e.Message mentions $"refuses {showLimits limits}"

                for request, mentions in
                    [
                        span (-1L) 10, "negative"
                        span 0L (-1), "negative"
                        span (Int64.MaxValue - 10L) 5, "beyond"
                        span 1L Int32.MaxValue, "longer"
                    ] do
                    let e =
                        Expect.throwsC (fun () -> ReadPlan.plan good [| span 0L 1; request |] |> ignore) id

                    Expect.isTrue (e :? ArgumentException) $"an ArgumentException: {e}"
                    Expect.stringContains e.Message mentions $"refuses {request.Length}@{request.Offset}"
        ]

/// BufferedFile on a real ext4 /tmp: bytes round-trip, EOF reads return 0, a closed file says so, kernel errors
/// arrive as the exceptions the API documents, arguments are checked before anything reaches the kernel, and a
/// failure never spoils the shard.
module Scipio.Integration.Tests.BufferedFileTests

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.IO
open Scipio.Integration.Tests.Helpers

/// Deterministic, position-dependent bytes, so a misplaced or shifted block is caught.
let private pattern (seed: int) (length: int) =
    Array.init length (fun i -> byte ((i * 31 + seed * 7 + (i >>> 8)) &&& 0xFF))

let private mib = 1 <<< 20

let private roundTrip =
    test "bytes written at offsets (1 MiB included) read back; length, EOF and the file on disk agree" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "roundtrip.bin")
            let head = pattern 1 100
            let big = pattern 2 mib
            let tail = pattern 3 10
            let bigAt = 4096L
            let tailAt = bigAt + int64 mib + 500L // leaves a 500-byte hole that must read as zeros
            let expectedLength = tailAt + int64 tail.Length

            let report =
                runShard (fun () ->
                    task {
                        let! file = BufferedFile.CreateAsync path
                        do! file.WriteAtAsync(ReadOnlyMemory head, 0L)
                        do! file.WriteAtAsync(ReadOnlyMemory big, bigAt)
                        do! file.WriteAtAsync(ReadOnlyMemory tail, tailAt)
                        do! file.FlushAsync()
                        let! length = file.GetLengthAsync()

                        let headBack = Array.zeroCreate head.Length
                        let! headRead = file.ReadAtAsync(Memory headBack, 0L)
                        let bigBack = Array.zeroCreate big.Length
                        let! bigRead = file.ReadAtAsync(Memory bigBack, bigAt)
                        let holeBack = Array.create 500 0xFFuy
                        let! holeRead = file.ReadAtAsync(Memory holeBack, bigAt + int64 mib)
                        // Straddles the end: only the last 10 bytes exist.
                        let straddle = Array.zeroCreate 64
                        let! straddleRead = file.ReadAtAsync(Memory straddle, tailAt)
                        let! atEof = file.ReadAtAsync(Memory(Array.zeroCreate 16), expectedLength)

                        let! pastEof =
                            file.ReadAtAsync(Memory(Array.zeroCreate 16), expectedLength + 100_000L)

                        do! file.DisposeAsync()

                        return
                            {|
                                Path = file.Path
                                Length = length
                                HeadRead = headRead
                                HeadOk = headBack = head
                                BigRead = bigRead
                                BigOk = bigBack = big
                                HoleRead = holeRead
                                HoleZero = Array.forall ((=) 0uy) holeBack
                                StraddleRead = straddleRead
                                StraddleOk = straddle[.. tail.Length - 1] = tail
                                AtEof = atEof
                                PastEof = pastEof
                            |}
                    })

            Expect.equal report.Path path "BufferedFile.Path is the full path"
            Expect.equal report.Length expectedLength "GetLengthAsync after the writes"
            Expect.equal report.HeadRead head.Length "bytes read at offset 0"
            Expect.isTrue report.HeadOk "the bytes read at offset 0 should be the ones written there"
            Expect.equal report.BigRead mib "a 1 MiB read of a 1 MiB region should read it all"
            Expect.isTrue report.BigOk "the 1 MiB read back should equal the 1 MiB written"
            Expect.equal report.HoleRead 500 "the hole between writes reads in full"
            Expect.isTrue report.HoleZero "the hole between writes should read as zeros"
            Expect.equal report.StraddleRead tail.Length "a read across the end returns only the bytes before it"
            Expect.isTrue report.StraddleOk "the bytes before the end are the last ones written"
            Expect.equal report.AtEof 0 "a read at the end of the file returns 0"
            Expect.equal report.PastEof 0 "a read past the end of the file returns 0"

            let onDisk = File.ReadAllBytes path
            Expect.equal onDisk.LongLength expectedLength "the file's length as System.IO sees it"
            Expect.isTrue (onDisk[0 .. head.Length - 1] = head) "System.IO reads the head written through the ring"

            Expect.isTrue
                (onDisk[int bigAt .. int bigAt + mib - 1] = big)
                "System.IO reads the 1 MiB written through the ring")
    }

let private disposed =
    test "after DisposeAsync every operation throws ObjectDisposedException; DisposeAsync twice is fine" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "disposed.bin")

            let read, write, flush, length, secondDispose =
                runShard (fun () ->
                    task {
                        let! file = BufferedFile.CreateAsync path
                        do! file.WriteAtAsync(ReadOnlyMemory(pattern 4 10), 0L)
                        do! file.DisposeAsync()

                        let! read =
                            thrownByTask (fun () -> task { return! file.ReadAtAsync(Memory(Array.zeroCreate 4), 0L) })

                        let! write =
                            thrownByTask (fun () -> task { do! file.WriteAtAsync(ReadOnlyMemory [| 1uy |], 0L) })

                        let! flush = thrownByTask (fun () -> task { do! file.FlushAsync() })
                        let! length = thrownByTask (fun () -> task { return! file.GetLengthAsync() })
                        let! secondDispose = thrownByTask (fun () -> task { do! file.DisposeAsync() })
                        return read, write, flush, length, secondDispose
                    })

            expectExn<ObjectDisposedException> "ReadAtAsync after DisposeAsync" read
            |> ignore

            expectExn<ObjectDisposedException> "WriteAtAsync after DisposeAsync" write
            |> ignore

            expectExn<ObjectDisposedException> "FlushAsync after DisposeAsync" flush
            |> ignore

            expectExn<ObjectDisposedException> "GetLengthAsync after DisposeAsync" length
            |> ignore

            Expect.isNone secondDispose "a second DisposeAsync should do nothing"
            Expect.equal (File.ReadAllBytes path) (pattern 4 10) "the write before DisposeAsync reached the file")
    }

let private missingFile =
    test "OpenAsync of a missing file: FileNotFoundException with the full path and ENOENT; the shard works on" {
        withTempDir (fun dir ->
            let missing = Path.Combine(dir, "no-such-file.bin")
            let next = Path.Combine(dir, "next.bin")

            let thrown, nextRead =
                runShard (fun () ->
                    task {
                        let! thrown =
                            thrownByTask (fun () -> task { return! BufferedFile.OpenAsync missing })
                        // The next operation on the shard works.
                        let! file = BufferedFile.CreateAsync next
                        do! file.WriteAtAsync(ReadOnlyMemory(pattern 5 32), 0L)
                        let back = Array.zeroCreate 32
                        let! n = file.ReadAtAsync(Memory back, 0L)
                        do! file.DisposeAsync()
                        return thrown, (n, back)
                    })

            let e = expectExn<FileNotFoundException> "OpenAsync of a missing file" thrown
            Expect.equal e.FileName missing "FileNotFoundException.FileName should be the full path"
            Expect.stringContains e.Message "ENOENT" "the message should name the errno"
            Expect.equal nextRead (32, pattern 5 32) "a file created after the failure round-trips")
    }

let private kernelErrors =
    test "kernel errors of OpenAsync arrive as IOExceptions carrying the errno; the shard works on" {
        withTempDir (fun dir ->
            let existing = Path.Combine(dir, "existing.bin")
            File.WriteAllBytes(existing, [| 1uy |])
            let underFile = Path.Combine(existing, "child.bin") // a path through a regular file

            let exists, isDir, notDir, empty, after =
                runShard (fun () ->
                    task {
                        let! exists =
                            thrownByTask (fun () ->
                                BufferedFile.OpenAsync(existing, FileMode.CreateNew, FileAccess.ReadWrite).AsTask())

                        let! isDir =
                            thrownByTask (fun () ->
                                task { return! BufferedFile.OpenAsync(dir, FileMode.Open, FileAccess.ReadWrite) })

                        let! notDir =
                            thrownByTask (fun () -> task { return! BufferedFile.OpenAsync underFile })

                        let! empty = thrownByTask (fun () -> task { return! BufferedFile.OpenAsync "" })
                        let! file = BufferedFile.OpenAsync existing
                        let! length = file.GetLengthAsync()
                        do! file.DisposeAsync()
                        return exists, isDir, notDir, empty, length
                    })

            let e1 = expectExn<KernelIOException> "CreateNew of an existing file" exists
            Expect.equal e1.Errno 17 "EEXIST"
            Expect.stringContains e1.Message existing "the message names the path"

            let e2 =
                expectExn<UnauthorizedAccessException> "opening a directory for writing (as File.Open)" isDir

            Expect.equal e2.HResult 21 "EISDIR in HResult"

            let e3 =
                expectExn<DirectoryNotFoundException> "a path through a regular file" notDir

            Expect.equal e3.HResult 20 "ENOTDIR in HResult"
            expectExn<ArgumentException> "OpenAsync of an empty path" empty |> ignore
            Expect.equal after 1L "after the failures the existing file opens and reports its length")
    }

let private readOnlyWrite =
    test "writing to a file opened read-only: KernelIOException EBADF (9); the file is unchanged and reads on" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "readonly.bin")
            let original = pattern 6 64
            File.WriteAllBytes(path, original)

            let thrown, readBack =
                runShard (fun () ->
                    task {
                        let! file = BufferedFile.OpenAsync path

                        let! thrown =
                            thrownByTask (fun () -> task { do! file.WriteAtAsync(ReadOnlyMemory(pattern 7 8), 0L) })

                        let back = Array.zeroCreate 64
                        let! n = file.ReadAtAsync(Memory back, 0L)
                        do! file.DisposeAsync()
                        return thrown, (n, back)
                    })

            let e = expectExn<KernelIOException> "WriteAtAsync on a read-only file" thrown
            Expect.isTrue (box e :? IOException) "KernelIOException is an IOException"
            Expect.equal e.Errno 9 "Errno should be EBADF (9)"
            Expect.stringContains e.Message "EBADF" "the message should name the errno"
            Expect.equal readBack (64, original) "after the failed write the file reads back unchanged"
            Expect.equal (File.ReadAllBytes path) original "the file on disk is unchanged")
    }

/// Issue 8 part 6: small writes are a pwrite on the shard's thread (ext4 would hand each ring write to an io-wq
/// worker); longer ones, and every one once the limit is 0, go through the ring. Either way the bytes land, and a
/// kernel error arrives the same.
let private inlineWrites =
    test
        "writes up to InlineWriteLimit are a pwrite on the shard, longer ones and limit 0 go through the ring; same bytes, same errors" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "inline.bin")
            let small = pattern 11 4096
            let large = pattern 12 (BufferedFile.DefaultInlineWriteLimit + 1)
            let again = pattern 13 4096

            let counts, readOnlyErrnos, negative =
                runShard (fun () ->
                    task {
                        let! file = BufferedFile.CreateAsync path
                        let inlined () = Shard.Stats.InlineWrites
                        let ring () = Shard.Stats.Main.Submitted
                        let i0, r0 = inlined (), ring ()
                        do! file.WriteAtAsync(ReadOnlyMemory small, 0L)
                        let i1, r1 = inlined (), ring ()
                        do! file.WriteAtAsync(ReadOnlyMemory large, 4096L)
                        let i2, r2 = inlined (), ring ()
                        file.InlineWriteLimit <- 0
                        do! file.WriteAtAsync(ReadOnlyMemory again, 4096L + int64 large.Length)
                        let i3, r3 = inlined (), ring ()

                        let negative =
                            try
                                file.InlineWriteLimit <- -1
                                None
                            with e ->
                                Some e

                        do! file.DisposeAsync()

                        // A read-only file refuses both kinds of write with EBADF.
                        let! readOnly = BufferedFile.OpenAsync path

                        let errnoOf () =
                            task {
                                let! thrown =
                                    thrownByTask (fun () ->
                                        task { do! readOnly.WriteAtAsync(ReadOnlyMemory small, 0L) })

                                return (expectExn<KernelIOException> "write to a read-only file" thrown).Errno
                            }

                        let! inlineErrno = errnoOf ()
                        readOnly.InlineWriteLimit <- 0
                        let! ringErrno = errnoOf ()
                        do! readOnly.DisposeAsync()

                        return
                            [ i1 - i0, r1 - r0; i2 - i1, r2 - r1; i3 - i2, r3 - r2 ],
                            (inlineErrno, ringErrno),
                            negative
                    })

            Expect.equal (List.map fst counts) [ 1L; 0L; 0L ] "only the 4 KiB write at the default limit is inline"
            Expect.equal (snd counts[0]) 0L "the inline write submitted nothing to the ring"
            Expect.isGreaterThanOrEqual (snd counts[1]) 1L "the write above the limit went through the ring"
            Expect.isGreaterThanOrEqual (snd counts[2]) 1L "with limit 0 the 4 KiB write went through the ring"
            Expect.equal readOnlyErrnos (9, 9) "EBADF both ways"

            Expect.isTrue
                (match negative with
                 | Some(:? ArgumentOutOfRangeException) -> true
                 | _ -> false)
                "a negative limit is refused"

            Expect.equal
                (File.ReadAllBytes path)
                (Array.concat [ small; large; again ])
                "every byte landed where asked")
    }

let private badArguments =
    test "bad modes and offsets are refused with ArgumentException before anything reaches the kernel" {
        withTempDir (fun dir ->
            let appendPath = Path.Combine(dir, "append.bin")
            let createReadPath = Path.Combine(dir, "create-read.bin")
            let path = Path.Combine(dir, "args.bin")

            let append, createRead, createNewRead, truncateRead, negativeRead, negativeWrite, stillWorks =
                runShard (fun () ->
                    task {
                        let! append =
                            thrownByTask (fun () ->
                                task {
                                    return! BufferedFile.OpenAsync(appendPath, FileMode.Append, FileAccess.Write)
                                })

                        let! createRead =
                            thrownByTask (fun () ->
                                BufferedFile.OpenAsync(createReadPath, FileMode.Create, FileAccess.Read).AsTask())

                        let! createNewRead =
                            thrownByTask (fun () ->
                                BufferedFile.OpenAsync(createReadPath, FileMode.CreateNew, FileAccess.Read).AsTask())

                        let! truncateRead =
                            thrownByTask (fun () ->
                                BufferedFile.OpenAsync(createReadPath, FileMode.Truncate, FileAccess.Read).AsTask())

                        let! file = BufferedFile.CreateAsync path

                        let! negativeRead =
                            thrownByTask (fun () ->
                                task { return! file.ReadAtAsync(Memory(Array.zeroCreate 4), -1L) })

                        let! negativeWrite =
                            thrownByTask (fun () -> task { do! file.WriteAtAsync(ReadOnlyMemory [| 1uy |], -1L) })

                        do! file.WriteAtAsync(ReadOnlyMemory [| 1uy; 2uy |], 0L)
                        let! length = file.GetLengthAsync()
                        do! file.DisposeAsync()

                        return
                            append, createRead, createNewRead, truncateRead, negativeRead, negativeWrite, length = 2L
                    })

            expectExn<ArgumentException> "OpenAsync with FileMode.Append" append |> ignore

            expectExn<ArgumentException> "OpenAsync with FileMode.Create and FileAccess.Read" createRead
            |> ignore

            expectExn<ArgumentException> "OpenAsync with FileMode.CreateNew and FileAccess.Read" createNewRead
            |> ignore

            expectExn<ArgumentException> "OpenAsync with FileMode.Truncate and FileAccess.Read" truncateRead
            |> ignore

            expectExn<ArgumentOutOfRangeException> "ReadAtAsync at offset -1" negativeRead
            |> ignore

            expectExn<ArgumentOutOfRangeException> "WriteAtAsync at offset -1" negativeWrite
            |> ignore

            Expect.isFalse (File.Exists appendPath) "a refused Append open must not create the file"
            Expect.isFalse (File.Exists createReadPath) "a refused Create+Read open must not create the file"
            Expect.isTrue stillWorks "after the refusals the file writes and reports its length")
    }

let private canceled =
    test "a canceled token: OperationCanceledException, and nothing was written" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "canceled.bin")

            let write, read, flush, length, lengthAfter =
                runShard (fun () ->
                    task {
                        use cts = new CancellationTokenSource()
                        cts.Cancel()
                        let! file = BufferedFile.CreateAsync path

                        let! write =
                            thrownByTask (fun () ->
                                task { do! file.WriteAtAsync(ReadOnlyMemory(pattern 8 4096), 0L, cts.Token) })

                        let! read =
                            thrownByTask (fun () ->
                                task { return! file.ReadAtAsync(Memory(Array.zeroCreate 16), 0L, cts.Token) })

                        let! flush = thrownByTask (fun () -> task { do! file.FlushAsync cts.Token })
                        let! length = thrownByTask (fun () -> task { return! file.GetLengthAsync cts.Token })

                        let! lengthAfter = file.GetLengthAsync()
                        do! file.DisposeAsync()
                        return write, read, flush, length, lengthAfter
                    })

            expectExn<OperationCanceledException> "WriteAtAsync with a canceled token" write
            |> ignore

            expectExn<OperationCanceledException> "ReadAtAsync with a canceled token" read
            |> ignore

            expectExn<OperationCanceledException> "FlushAsync with a canceled token" flush
            |> ignore

            expectExn<OperationCanceledException> "GetLengthAsync with a canceled token" length
            |> ignore

            Expect.equal lengthAfter 0L "the canceled write must not have written anything (GetLengthAsync)"

            Expect.equal
                (File.ReadAllBytes path).Length
                0
                "the canceled write must not have written anything (on disk)")
    }

/// Regression (a bug this suite found, now fixed): OpenAsync ignores a token that is already canceled. BufferedFile.OpenAsync does not check
/// IsCancellationRequested before submitting (ReadAtAsync and the others do, in Begin); registering on a canceled
/// token runs ShardOperation.OnCancelRequested at once, and ShardReactor.Cancel returns because the operation is not
/// InFlight yet, so the openat is then submitted and succeeds: the file is opened, and with FileMode.Create an
/// existing file is truncated.
let private canceledOpen =
    testCase
        "OpenAsync/CreateAsync with a canceled token: OperationCanceledException, the file neither opened nor truncated"
    <| fun () ->
        withTempDir (fun dir ->
            let existing = Path.Combine(dir, "existing.bin")
            let fresh = Path.Combine(dir, "fresh.bin")
            let original = pattern 9 1000
            File.WriteAllBytes(existing, original)

            let openThrown, createThrown, freshThrown =
                runShard (fun () ->
                    task {
                        use cts = new CancellationTokenSource()
                        cts.Cancel()
                        // Dispose whatever a buggy open returns, so no descriptor is left behind.
                        let attempt (f: unit -> ValueTask<BufferedFile>) =
                            thrownByTask (fun () ->
                                task {
                                    let! file = f ()
                                    do! file.DisposeAsync()
                                })

                        let! openThrown = attempt (fun () -> BufferedFile.OpenAsync(existing, cts.Token))
                        let! createThrown = attempt (fun () -> BufferedFile.CreateAsync(existing, cts.Token))
                        let! freshThrown = attempt (fun () -> BufferedFile.CreateAsync(fresh, cts.Token))
                        return openThrown, createThrown, freshThrown
                    })

            // Every symptom at once, so the report shows the whole bug.
            let problems =
                [
                    for what, thrown in
                        [
                            "OpenAsync of an existing file", openThrown
                            "CreateAsync of an existing file", createThrown
                            "CreateAsync of a new file", freshThrown
                        ] do
                        match thrown with
                        | Some(:? OperationCanceledException) -> ()
                        | Some e -> $"%s{what} with a canceled token threw %s{e.GetType().Name}: %s{e.Message}"
                        | None -> $"%s{what} with a canceled token succeeded"

                    let length = FileInfo(existing).Length

                    if File.ReadAllBytes existing <> original then
                        $"the existing file was changed (now %d{length} bytes, was %d{original.Length})"

                    if File.Exists fresh then
                        "the new file was created"
                ]

            if not problems.IsEmpty then
                failtestf "expected OperationCanceledException and no effect on disk: %s" (String.concat "; " problems))

let private otherShard =
    test "a file used from a shard other than its own: InvalidOperationException naming both shards" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "owned.bin")

            let thrown =
                runShard (fun () ->
                    task {
                        let! file = BufferedFile.CreateAsync path

                        let other =
                            Shard.Start(
                                Func<Task<exn option>>(fun () ->
                                    thrownByTask (fun () ->
                                        task { return! file.ReadAtAsync(Memory(Array.zeroCreate 4), 0L) }))
                            )

                        let! thrown = other.Completion
                        do! file.DisposeAsync()
                        return thrown
                    })

            let e = expectExn<InvalidOperationException> "ReadAtAsync from another shard" thrown
            Expect.stringContains e.Message "belongs to shard" "the message says the file belongs to another shard")
    }

let private smallRing =
    test
        "with RingEntries = 2, more concurrent writes than the CQ has room for all complete (the backlog holds the rest)" {
        requireIoUring "a ring's completion-queue room and backlog"

        withTempDir (fun dir ->
            let path = Path.Combine(dir, "small-ring.bin")
            let block = 512
            let writes = 1100

            let backlogged, length =
                runShardWith (ShardOptions(RingEntries = 2)) (fun () ->
                    task {
                        let! file = BufferedFile.CreateAsync path
                        file.InlineWriteLimit <- 0 // through the ring, whatever their size

                        // A 2-entry SQ gets a 1024-entry CQ, of which 1022 may hold prompt operations: the writes
                        // are all started before any is awaited, so the rest must wait in the backlog.
                        let writers =
                            Array.init writes (fun i ->
                                file.WriteAtAsync(ReadOnlyMemory(pattern i block), int64 (i * block)).AsTask())

                        do! Task.WhenAll writers
                        let! length = file.GetLengthAsync()
                        do! file.DisposeAsync()
                        return Shard.Stats.Main.Backlogged, length
                    })

            Expect.equal length (int64 (writes * block)) "every write landed"
            Expect.isGreaterThan backlogged 0L "past the CQ's room for prompt operations, writes wait in the backlog"
            let onDisk = File.ReadAllBytes path

            for i in 0 .. writes - 1 do
                if onDisk[i * block .. (i + 1) * block - 1] <> pattern i block then
                    failtestf "block %d on disk is not what was written there" i)
    }

let private lengths =
    test "SetLengthAsync and PreallocateAsync change the length through the ring" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "length.bin")

            let lengths =
                runShard (fun () ->
                    task {
                        let! file = BufferedFile.CreateAsync path
                        do! file.WriteAtAsync(ReadOnlyMemory(pattern 1 1000), 0L)
                        do! file.SetLengthAsync 10L
                        let! a = file.GetLengthAsync()
                        do! file.PreallocateAsync(0L, 65536L)
                        let! b = file.GetLengthAsync()
                        do! file.DisposeAsync()
                        return a, b
                    })

            Expect.equal lengths (10L, 65536L) "ftruncate cut it to 10 bytes; fallocate grew it to 64 KiB"
            let expected = pattern 1 1000
            Expect.equal (File.ReadAllBytes(path)[0..9]) expected[0..9] "the first bytes kept")
    }

let tests =
    testSequenced
    <| testList
        "BufferedFile"
        [
            lengths
            roundTrip
            disposed
            missingFile
            kernelErrors
            readOnlyWrite
            inlineWrites
            badArguments
            canceled
            canceledOpen
            otherShard
            smallRing
        ]

/// O_DIRECT files on the real kernel: this machine's ext4 (a virtio disk that does not poll: the main ring) and
/// tmpfs (the poll ring refuses with EOPNOTSUPP: the fallback), aligned zero-copy I/O, any-range reads, lengths,
/// durability across close and reopen, errors, allocation and descriptor hygiene.
module Scipio.Integration.Tests.DmaFileTests

open System
open System.IO
open System.Threading.Tasks
open Expecto
open FsCheck
open Scipio
open Scipio.IO
open Scipio.Integration.Tests.Helpers

/// Random bytes for a file of `length`.
let private randomBytes (seed: int) (length: int) =
    let bytes = Array.zeroCreate<byte> length
    Random(seed).NextBytes bytes
    bytes

let private fdCount () =
    Directory.GetFiles("/proc/self/fd").Length

let tests =
    testSequenced
    <| testList
        "DmaFile"
        [
            test "aligned zero-copy writes and reads round-trip, and the data survives close and reopen" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "data.bin")

                    let alignment, readBack =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.CreateAsync path
                                let a = file.Alignment
                                use buffer = file.AllocateBuffer(4 * a)

                                for block in 0..7 do
                                    buffer.Span.Fill(byte (block + 1))
                                    do! file.WriteAtAsync(buffer, int64 (block * 4 * a))

                                do! file.FlushAsync()
                                do! file.DisposeAsync()
                                let! again = DmaFile.OpenAsync path
                                use back = again.AllocateBuffer(4 * a)
                                let! n = again.ReadAtAsync(back, int64 (3 * 4 * a))
                                let bytes = back.Span.Slice(0, n).ToArray()
                                do! again.DisposeAsync()
                                return a, bytes
                            })

                    Expect.isTrue
                        (alignment > 0 && (alignment &&& (alignment - 1)) = 0)
                        $"the alignment is a power of two: {alignment}"

                    Expect.equal readBack.Length (4 * alignment) "a whole aligned block back"
                    Expect.all readBack (fun b -> b = 4uy) "the fourth write's bytes, after close and reopen"
                    Expect.equal (FileInfo(path).Length) (int64 (32 * alignment)) "every write landed")
            }

            testPropertyWithConfig
                { FsCheckConfig.defaultConfig with
                    maxTest = 60
                }
                "ReadAtAsync(offset, length) returns exactly the bytes asked for, any offset and length, short at the end"
            <| fun (offsets: (uint16 * uint16) list) ->
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "random.bin")
                    let content = randomBytes 7 (3 * 4096 + 1234) // not a multiple of any alignment
                    File.WriteAllBytes(path, content)

                    let ranges =
                        offsets
                        |> List.map (fun (o, l) -> int64 (int o % (content.Length + 100)), int l % 9000)

                    let results =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.OpenAsync path
                                let results = ResizeArray()

                                for offset, length in ranges do
                                    use! buffer = file.ReadAtAsync(offset, length)
                                    results.Add(buffer.Span.ToArray())

                                do! file.DisposeAsync()
                                return results.ToArray()
                            })

                    for (offset, length), got in List.zip ranges (List.ofArray results) do
                        let available = max 0 (min length (content.Length - int offset))

                        let expected =
                            if available = 0 then
                                [||]
                            else
                                content[int offset .. int offset + available - 1]

                        Expect.equal got expected $"bytes at {offset}, length {length}")

            testPropertyWithConfig
                { FsCheckConfig.defaultConfig with
                    maxTest = 60
                }
                "ReadManyAsync returns what the ranges hold, in the order asked, merged or not"
            <| fun (raw: (uint32 * uint16) list) (amplification: bool) (inFlight: byte) ->
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "many.bin")
                    let content = randomBytes 11 ((1 <<< 20) + 777)
                    File.WriteAllBytes(path, content)
                    // Clustered offsets (merges happen) with duplicates, overlaps, empty ranges and ranges past the end.
                    let ranges =
                        raw
                        |> List.map (fun (o, l) ->
                            FileRange(int64 (o % uint32 (content.Length + 5000)), int (l % 20000us)))
                        |> fun rs -> rs @ List.truncate 3 rs

                    let options =
                        ReadManyOptions(
                            MaxReadAmplification = (if amplification then 4.0 else 1.0),
                            MaxInFlight = 1 + int inFlight % 8
                        )

                    let results =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.OpenAsync path
                                let got = ResizeArray()
                                let e = file.ReadManyAsync(ranges, options).GetAsyncEnumerator()

                                while! e.MoveNextAsync() do
                                    got.Add(e.Current.Range, e.Current.Buffer.Span.ToArray())
                                    e.Current.Buffer.Dispose()

                                do! e.DisposeAsync()
                                do! file.DisposeAsync()
                                return got.ToArray()
                            })

                    Expect.equal
                        (results |> Array.map fst |> List.ofArray)
                        ranges
                        "one result per range, in the order asked"

                    for range, bytes in results do
                        let available = max 0 (min range.Length (content.Length - int range.Offset))

                        let expected =
                            if available = 0 then
                                ReadOnlySpan<byte>.Empty
                            else
                                ReadOnlySpan(content, int range.Offset, available)
                        // A span compare: Expecto's structural equality on large arrays takes seconds.
                        if not (ReadOnlySpan<byte>(bytes).SequenceEqual expected) then
                            failtestf
                                "the bytes of %A: %d read, %d expected, or different"
                                range
                                bytes.Length
                                available)

            test "unaligned zero-copy I/O is refused, naming the alignment; a disposed buffer cannot be used" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "unaligned.bin")

                    let alignment, atOffset, disposed =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.CreateAsync path
                                use buffer = file.AllocateBuffer file.Alignment
                                let atOffset = thrownBy (fun () -> file.ReadAtAsync(buffer, 1L))
                                let gone = file.AllocateBuffer 1
                                gone.Dispose()
                                let disposed = thrownBy (fun () -> gone.Span.Length)
                                do! file.DisposeAsync()
                                return file.Alignment, atOffset, disposed
                            })

                    let e = expectExn<ArgumentException> "an unaligned offset" atOffset
                    Expect.stringContains e.Message (string alignment) "the message names the alignment"
                    expectExn<ObjectDisposedException> "a disposed DmaBuffer" disposed |> ignore)
            }

            test "SetLengthAsync and PreallocateAsync change the length through the ring; GetLengthAsync reads it" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "length.bin")

                    let lengths =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.CreateAsync path
                                do! file.SetLengthAsync 12345L
                                let! a = file.GetLengthAsync()
                                do! file.PreallocateAsync(0L, 1L <<< 20)
                                let! b = file.GetLengthAsync()
                                do! file.SetLengthAsync 100L
                                let! c = file.GetLengthAsync()
                                do! file.DisposeAsync()
                                return a, b, c
                            })

                    Expect.equal lengths (12345L, 1L <<< 20, 100L) "ftruncate, fallocate, ftruncate"
                    Expect.equal (FileInfo(path).Length) 100L "as seen from outside")
            }

            test
                "on ext4 the reads go to the main ring (the virtio disk does not poll); on tmpfs the poll ring's EOPNOTSUPP falls back" {
                requireIoUring "the poll ring's routing"

                let readTwice (path: string) =
                    runShard (fun () ->
                        task {
                            let! file = DmaFile.OpenAsync path
                            use buffer = file.AllocateBuffer file.Alignment
                            let! first = file.ReadAtAsync(buffer, 0L)
                            let! second = file.ReadAtAsync(buffer, 0L)
                            let stats = Shard.Stats
                            do! file.DisposeAsync()
                            return first + second, stats
                        })

                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "ext4.bin")
                    File.WriteAllBytes(path, randomBytes 1 8192)
                    let n, stats = readTwice path
                    Expect.isGreaterThan n 0 "the reads read"

                    Expect.equal
                        stats.Poll.Submitted
                        0L
                        "nothing went to the poll ring: sysfs says the disk does not poll"

                    Expect.isGreaterThanOrEqual stats.PollFallbacks 1L "the device was found not to poll")

                if Directory.Exists "/dev/shm" then
                    let path = Path.Combine("/dev/shm", $"scipio-dma-{Guid.NewGuid():N}.bin")
                    File.WriteAllBytes(path, randomBytes 2 8192)

                    try
                        let n, stats = readTwice path
                        Expect.isGreaterThan n 0 "the reads read"

                        Expect.isGreaterThanOrEqual
                            stats.PollFallbacks
                            1L
                            "the poll ring refused (EOPNOTSUPP) and the device fell back"
                    finally
                        File.Delete path
                else
                    printfn "SKIPPED (tmpfs part): no /dev/shm here"
            }

            test "errors: a missing file, a directory" {
                withTempDir (fun dir ->
                    let missing, directory =
                        runShard (fun () ->
                            task {
                                let! missing =
                                    thrownByTask (fun () -> DmaFile.OpenAsync(Path.Combine(dir, "nope")).AsTask())

                                let! directory = thrownByTask (fun () -> DmaFile.OpenAsync(dir).AsTask())
                                return missing, directory
                            })

                    let e = expectExn<FileNotFoundException> "a missing file" missing
                    Expect.stringContains e.Message "nope" "named"
                    expectExn<UnauthorizedAccessException> "a directory" directory |> ignore)
            }

            test "zero-copy reads allocate nothing in steady state" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "alloc.bin")
                    File.WriteAllBytes(path, randomBytes 3 (64 * 1024))

                    let bytes =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.OpenAsync path
                                let buffer = file.AllocateBuffer 4096
                                let mutable before = 0L
                                let mutable measured = 0L
                                let mutable pass = 0
                                let mutable i = 0

                                while pass < 2 do
                                    before <- GC.GetAllocatedBytesForCurrentThread()
                                    i <- 0

                                    while i < (if pass = 0 then 2000 else 20000) do
                                        let! _ = file.ReadAtAsync(buffer, int64 ((i % 16) * 4096))
                                        i <- i + 1

                                    measured <- GC.GetAllocatedBytesForCurrentThread() - before
                                    pass <- pass + 1

                                buffer.Dispose()
                                do! file.DisposeAsync()
                                return measured
                            })

                    Expect.isLessThan (float bytes / 20000.0) 0.5 $"{bytes} B over 20,000 reads")
            }

            test "10,000 open and close cycles leave no descriptor behind" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "cycle.bin")
                    File.WriteAllBytes(path, randomBytes 4 4096)

                    let cycles n =
                        runShard (fun () ->
                            task {
                                for _ in 1..n do
                                    let! file = DmaFile.OpenAsync path
                                    do! file.DisposeAsync()

                                return ()
                            })
                    // One cycle first: the runtime maps the assemblies the path needs (two descriptors each) once.
                    cycles 1
                    let before = fdCount ()
                    cycles 10_000

                    Expect.isLessThanOrEqual (fdCount ()) before "open fds after the cycles")
            }
        ]

/// DmaStreamReader and DmaStreamWriter on this machine's ext4: byte-exact round trips of a large file written in
/// uneven chunks with an unaligned length, read-ahead and write-behind under several buffer shapes, System.IO
/// consumers (CopyToAsync, StreamReader, GZipStream), start positions, flush-then-write, options and disposal.
module Scipio.Integration.Tests.DmaStreamTests

open System
open System.IO
open System.IO.Compression
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.IO
open Scipio.Integration.Tests.Helpers

let private randomBytes (seed: int) (length: int) =
    let bytes = Array.zeroCreate<byte> length
    Random(seed).NextBytes bytes
    bytes

let private options (bufferSize: int) (inFlight: int) (position: int64) =
    DmaStreamOptions(BufferSize = bufferSize, InFlight = inFlight, Position = position)

/// Writes `content` through `writer` in chunks of 1 to `maxChunk` bytes (seeded).
let private writeInChunks (writer: DmaStreamWriter) (content: byte array) (seed: int) (maxChunk: int) =
    task {
        let random = Random seed
        let mutable at = 0

        while at < content.Length do
            let n = min (content.Length - at) (random.Next(1, maxChunk + 1))
            do! writer.WriteAsync(ReadOnlyMemory<byte>(content, at, n))
            at <- at + n
    }

/// Reads `reader` to its end with ReadAsync into buffers of 1 to `maxChunk` bytes (seeded).
let private readInChunks (reader: DmaStreamReader) (seed: int) (maxChunk: int) =
    task {
        let random = Random seed
        let into = new MemoryStream()
        let buffer = Array.zeroCreate<byte> maxChunk
        let mutable go = true

        while go do
            let! n = reader.ReadAsync(Memory<byte>(buffer, 0, random.Next(1, maxChunk + 1)))

            if n = 0 then go <- false else into.Write(buffer, 0, n)

        return into.ToArray()
    }

/// Compares without printing 64 MiB arrays on failure: the first differing offset.
let private expectSameBytes (actual: byte array) (expected: byte array) (what: string) =
    Expect.equal actual.Length expected.Length $"{what}: the length"

    if not (actual.AsSpan().SequenceEqual(ReadOnlySpan<byte>(expected))) then
        let at = actual.AsSpan().CommonPrefixLength(ReadOnlySpan<byte>(expected))
        failtestf "%s: the bytes differ from offset %d on" what at

let tests =
    testSequenced
    <| testList
        "DmaStream"
        [
            test
                "a 64 MiB file written in uneven chunks with an unaligned length is byte-exact, on disk and read back with CopyToAsync" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "big.bin")
                    let content = randomBytes 42 (64 * 1024 * 1024 - 1234) // not a multiple of 4096 (nor of 512)

                    let length, position, copied =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.CreateAsync path
                                let writer = new DmaStreamWriter(file)
                                do! writeInChunks writer content 1 (300 * 1024)
                                do! writer.FlushAsync()
                                let length, position = writer.Length, writer.Position
                                do! writer.DisposeAsync()
                                do! file.DisposeAsync()

                                let! file = DmaFile.OpenAsync path
                                let reader = new DmaStreamReader(file)
                                let into = new MemoryStream()
                                do! reader.CopyToAsync into
                                let! zero = reader.ReadAsync(Memory<byte>(Array.zeroCreate 10))
                                Expect.equal zero 0 "a read after the end returns 0"
                                Expect.equal reader.Position (int64 content.Length) "the reader's Position is the end"
                                do! reader.DisposeAsync()
                                do! file.DisposeAsync()
                                return length, position, into.ToArray()
                            })

                    Expect.equal length (int64 content.Length) "the writer's Length"
                    Expect.equal position (int64 content.Length) "the writer's Position"
                    expectSameBytes (File.ReadAllBytes path) content "the file on disk"
                    expectSameBytes copied content "CopyToAsync from a DmaStreamReader")
            }

            test "read-ahead and write-behind are exact under small buffers, 1 to 5 in flight and reads of any size" {
                withTempDir (fun dir ->
                    let shapes = [ 4096, 1; 4096, 3; 8192, 2; 12288, 5; 65536, 4 ]

                    for bufferSize, inFlight in shapes do
                        for length in [ 0; 1; 4095; 4096; 4097; 3 * bufferSize; 3 * bufferSize + 100; 200_000 + 3 ] do
                            let path = Path.Combine(dir, $"shape-{bufferSize}-{inFlight}-{length}.bin")
                            let content = randomBytes length length

                            let readBack =
                                runShard (fun () ->
                                    task {
                                        let! file = DmaFile.CreateAsync path
                                        let writer = new DmaStreamWriter(file, options bufferSize inFlight 0L)
                                        do! writeInChunks writer content length 9000
                                        do! writer.DisposeAsync()
                                        let reader = new DmaStreamReader(file, options bufferSize inFlight 0L)
                                        let! back = readInChunks reader length 20000
                                        do! reader.DisposeAsync()
                                        do! file.DisposeAsync()
                                        return back
                                    })

                            let what = $"buffer {bufferSize}, {inFlight} in flight, {length} bytes"
                            expectSameBytes (File.ReadAllBytes path) content $"{what}: on disk"
                            expectSameBytes readBack content $"{what}: read back")
            }

            test "a StreamReader over a DmaStreamReader reads a text file's lines" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "lines.txt")

                    let lines =
                        [| for i in 1..20000 -> $"line {i}: " + String('x', i % 97) + " é ü 漢字" |]

                    File.WriteAllLines(path, lines)

                    let read =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.OpenAsync path
                                let dma = new DmaStreamReader(file, options 16384 2 0L)
                                let text = new StreamReader(dma, Text.Encoding.UTF8, false, 4096, leaveOpen = true)
                                let read = ResizeArray()
                                let mutable go = true

                                while go do
                                    let! line = text.ReadLineAsync()

                                    if isNull line then go <- false else read.Add line

                                do! dma.DisposeAsync()
                                do! file.DisposeAsync()
                                return read.ToArray()
                            })

                    Expect.equal read.Length lines.Length "every line"
                    Expect.sequenceEqual read lines "the lines, in order")
            }

            test "a GZipStream round trip through a DmaStreamWriter and a DmaStreamReader" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "data.gz")
                    // compressible: random words from a small vocabulary
                    let random = Random 5
                    let words = [| "alpha"; "beta"; "gamma"; "delta"; "epsilon"; "\n" |]

                    let content =
                        Text.Encoding.ASCII.GetBytes(
                            String.Join(" ", Array.init 400_000 (fun _ -> words[random.Next words.Length]))
                        )

                    let back =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.CreateAsync path
                                let writer = new DmaStreamWriter(file)
                                let gzip = new GZipStream(writer, CompressionLevel.Fastest, leaveOpen = true)
                                let mutable at = 0

                                while at < content.Length do
                                    let n = min 10_000 (content.Length - at)
                                    do! gzip.WriteAsync(ReadOnlyMemory<byte>(content, at, n))
                                    at <- at + n

                                do! gzip.DisposeAsync()
                                do! writer.DisposeAsync()
                                do! file.DisposeAsync()

                                let! file = DmaFile.OpenAsync path
                                let reader = new DmaStreamReader(file)
                                let gunzip = new GZipStream(reader, CompressionMode.Decompress, leaveOpen = true)
                                let into = new MemoryStream()
                                do! gunzip.CopyToAsync into
                                do! gunzip.DisposeAsync()
                                do! reader.DisposeAsync()
                                do! file.DisposeAsync()
                                return into.ToArray()
                            })

                    Expect.isLessThan (FileInfo(path).Length) (int64 content.Length / 2L) "the file is compressed"
                    use plain = new GZipStream(File.OpenRead path, CompressionMode.Decompress)
                    let viaFileStream = new MemoryStream()
                    plain.CopyTo viaFileStream
                    expectSameBytes (viaFileStream.ToArray()) content "what FileStream + GZipStream read from the file"
                    expectSameBytes back content "what DmaStreamReader + GZipStream read")
            }

            test
                "the start Position is honored: a reader from an unaligned offset, a writer from one keeps the bytes before it" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "positions.bin")
                    let content = randomBytes 9 300_000
                    File.WriteAllBytes(path, content)
                    let appended = randomBytes 10 50_001

                    let fromOffsets, past, writerEnd =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.OpenAsync(path, FileMode.Open, FileAccess.ReadWrite)
                                let results = ResizeArray()

                                for position in [ 0L; 1L; 511L; 4097L; 70_000L; 131_073L; 299_999L; 300_000L ] do
                                    let reader = new DmaStreamReader(file, options 4096 2 position)

                                    Expect.equal
                                        reader.Position
                                        position
                                        "the reader's Position starts at the start offset"

                                    let! back = readInChunks reader (int position) 7000
                                    do! reader.DisposeAsync()
                                    results.Add(position, back)

                                let reader = new DmaStreamReader(file, DmaStreamOptions(Position = 1_000_000L))
                                let! past = reader.ReadAsync(Memory<byte>(Array.zeroCreate 100))
                                do! reader.DisposeAsync()

                                // overwrite from an unaligned offset: the bytes before it in its block are kept
                                let writer = new DmaStreamWriter(file, options 8192 2 123_457L)
                                do! writeInChunks writer appended 3 5000
                                let writerEnd = writer.Length
                                do! writer.DisposeAsync()
                                do! file.DisposeAsync()
                                return results.ToArray(), past, writerEnd
                            })

                    for position, back in fromOffsets do
                        expectSameBytes back content[int position ..] $"read from {position}"

                    Expect.equal past 0 "a reader past the end reads 0"

                    Expect.equal
                        writerEnd
                        (123_457L + int64 appended.Length)
                        "the writer's Length: its start plus what it wrote"

                    expectSameBytes
                        (File.ReadAllBytes path)
                        (Array.append content[..123_456] appended)
                        "the file: the bytes before the writer's start, then its bytes, then its end")
            }

            test "after FlushAsync, more writes and DisposeAsync leave the file exact; each flush sets the exact length" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "flushes.bin")
                    let content = randomBytes 11 1_000_003
                    let cuts = [ 5000; 5001; 8192; 100_000; 100_001; 600_000; content.Length ]

                    let lengths =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.CreateAsync path
                                let writer = new DmaStreamWriter(file, options 65536 2 0L)
                                let lengths = ResizeArray()
                                let mutable at = 0

                                for cut in cuts do
                                    do! writer.WriteAsync(ReadOnlyMemory<byte>(content, at, cut - at))
                                    at <- cut
                                    do! writer.FlushAsync()
                                    // from outside the ring: what the kernel holds after the flush
                                    let onDisk = File.ReadAllBytes path

                                    lengths.Add(
                                        cut,
                                        onDisk.Length,
                                        onDisk.AsSpan().SequenceEqual(ReadOnlySpan<byte>(content, 0, cut))
                                    )

                                do! writer.WriteAsync(ReadOnlyMemory<byte>(content, 0, 777))
                                do! writer.DisposeAsync()
                                do! file.DisposeAsync()
                                return lengths.ToArray()
                            })

                    for cut, length, same in lengths do
                        Expect.equal length cut $"the length after a flush at {cut}"
                        Expect.isTrue same $"the bytes after a flush at {cut}"

                    expectSameBytes
                        (File.ReadAllBytes path)
                        (Array.append content content[..776])
                        "after more writes and DisposeAsync")
            }

            test "DmaStreamOptions: defaults, setters validate, the buffer is rounded up to the file's alignment" {
                let defaults = DmaStreamOptions()
                Expect.equal defaults.BufferSize (128 * 1024) "default BufferSize"
                Expect.equal defaults.InFlight 4 "default InFlight"
                Expect.equal defaults.Position 0L "default Position"

                for set, what in
                    [
                        (fun () -> DmaStreamOptions(BufferSize = 4095) |> ignore), "BufferSize 4095"
                        (fun () -> DmaStreamOptions(BufferSize = 64 * 1024 * 1024 + 1) |> ignore),
                        "BufferSize 64 MiB + 1"
                        (fun () -> DmaStreamOptions(InFlight = 0) |> ignore), "InFlight 0"
                        (fun () -> DmaStreamOptions(InFlight = 65) |> ignore), "InFlight 65"
                        (fun () -> DmaStreamOptions(Position = -1L) |> ignore), "Position -1"
                    ] do
                    expectExn<ArgumentOutOfRangeException> what (thrownBy set) |> ignore

                let edges = DmaStreamOptions(BufferSize = 4096, InFlight = 64)
                edges.BufferSize <- 64 * 1024 * 1024
                edges.InFlight <- 1
                Expect.equal (edges.BufferSize, edges.InFlight) (64 * 1024 * 1024, 1) "the edges are accepted"

                withTempDir (fun dir ->
                    let alignment, readerSize, writerSize, offShard =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.CreateAsync(Path.Combine(dir, "align.bin"))
                                let reader = new DmaStreamReader(file, DmaStreamOptions(BufferSize = 5000))
                                let writer = new DmaStreamWriter(file, DmaStreamOptions(BufferSize = 5000))
                                let sizes = reader.BufferSize, writer.BufferSize
                                do! reader.DisposeAsync()
                                do! writer.DisposeAsync()
                                let! offShard = Task.Run(fun () -> thrownBy (fun () -> new DmaStreamReader(file)))
                                do! file.DisposeAsync()
                                return file.Alignment, fst sizes, snd sizes, offShard
                            })

                    for size in [ readerSize; writerSize ] do
                        Expect.equal (size % alignment) 0 "a multiple of the alignment"

                        Expect.isTrue
                            (size >= 5000 && size < 5000 + alignment)
                            $"5000 rounded up to {alignment}: {size}"

                    expectExn<InvalidOperationException> "a stream made off a shard" offShard
                    |> ignore)
            }

            test
                "a disposed stream throws ObjectDisposedException; synchronous reads, writes and a lossy Dispose say what to use; one call at a time" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "disposed.bin")

                    let thrown =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.CreateAsync path
                                let writer = new DmaStreamWriter(file)
                                do! writer.WriteAsync(ReadOnlyMemory<byte>(Array.create 100 1uy))
                                let syncWrite = thrownBy (fun () -> writer.Write(Array.zeroCreate 10, 0, 10))
                                let syncFlush = thrownBy (fun () -> writer.Flush())
                                do! writer.DisposeAsync()
                                do! writer.DisposeAsync() // twice: nothing

                                let! writeAfter =
                                    thrownByTask (fun () ->
                                        task { do! writer.WriteAsync(ReadOnlyMemory<byte>(Array.zeroCreate 1)) })

                                let! flushAfter = thrownByTask (fun () -> task { do! writer.FlushAsync() })

                                let reader = new DmaStreamReader(file)
                                let syncRead = thrownBy (fun () -> reader.Read(Array.zeroCreate 10, 0, 10))
                                let! n = reader.ReadAsync(Memory<byte>(Array.zeroCreate 1000))
                                do! reader.DisposeAsync()

                                let! readAfter =
                                    thrownByTask (fun () ->
                                        task { return! reader.ReadAsync(Memory<byte>(Array.zeroCreate 1)) })

                                // one operation at a time: a second call, or a dispose, while one is pending is refused
                                let busyReader = new DmaStreamReader(file)
                                let pendingRead = busyReader.ReadAsync(Memory<byte>(Array.zeroCreate 10)).AsTask()

                                let secondRead =
                                    thrownBy (fun () -> busyReader.ReadAsync(Memory<byte>(Array.zeroCreate 10)))

                                let! disposeWhileReading =
                                    thrownByTask (fun () -> task { do! busyReader.DisposeAsync() })

                                let! _ = pendingRead
                                do! busyReader.DisposeAsync()
                                let busyWriter = new DmaStreamWriter(file, DmaStreamOptions(Position = 100L))
                                do! busyWriter.WriteAsync(ReadOnlyMemory<byte>(Array.create 10 3uy))
                                let pendingFlush = busyWriter.FlushAsync()

                                let writeWhileFlushing =
                                    thrownBy (fun () ->
                                        busyWriter.WriteAsync(ReadOnlyMemory<byte>(Array.zeroCreate 1)))

                                do! pendingFlush
                                do! busyWriter.DisposeAsync()

                                let busy =
                                    [
                                        secondRead, "a second ReadAsync"
                                        disposeWhileReading, "DisposeAsync during a read"
                                        writeWhileFlushing, "WriteAsync during FlushAsync"
                                    ]

                                let lossy = new DmaStreamWriter(file)
                                do! lossy.WriteAsync(ReadOnlyMemory<byte>(Array.create 10 2uy))
                                let syncDispose = thrownBy (fun () -> lossy.Dispose())

                                // a synchronous Dispose with nothing unflushed is fine, for both
                                let clean = new DmaStreamWriter(file)
                                clean.Dispose()
                                let cleanReader = new DmaStreamReader(file)
                                let! _ = cleanReader.ReadAsync(Memory<byte>(Array.zeroCreate 10)) // read-ahead in flight
                                cleanReader.Dispose()
                                do! file.DisposeAsync()

                                return
                                    syncWrite,
                                    syncFlush,
                                    writeAfter,
                                    flushAfter,
                                    syncRead,
                                    n,
                                    readAfter,
                                    syncDispose,
                                    busy
                            })

                    let syncWrite, syncFlush, writeAfter, flushAfter, syncRead, n, readAfter, syncDispose, busy =
                        thrown

                    for thrown, what in busy do
                        expectExn<InvalidOperationException> what thrown |> ignore

                    let e = expectExn<NotSupportedException> "a synchronous Write" syncWrite
                    Expect.stringContains e.Message "WriteAsync" "the message says what to use"

                    expectExn<NotSupportedException> "a synchronous Flush with bytes unflushed" syncFlush
                    |> ignore

                    expectExn<ObjectDisposedException> "WriteAsync after DisposeAsync" writeAfter
                    |> ignore

                    expectExn<ObjectDisposedException> "FlushAsync after DisposeAsync" flushAfter
                    |> ignore

                    let e = expectExn<NotSupportedException> "a synchronous Read" syncRead
                    Expect.stringContains e.Message "ReadAsync" "the message says what to use"
                    Expect.equal n 100 "the reader read what the writer wrote"

                    expectExn<ObjectDisposedException> "ReadAsync after DisposeAsync" readAfter
                    |> ignore

                    let e =
                        expectExn<InvalidOperationException> "a synchronous Dispose with bytes unflushed" syncDispose

                    Expect.stringContains e.Message "DisposeAsync" "the message says what to use")
            }
        ]

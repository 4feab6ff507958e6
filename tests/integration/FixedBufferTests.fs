/// Registered buffers on the real kernel: a DmaBuffer from a shard's pool is installed in a table registered with
/// the shard's rings and its I/O goes out as READ_FIXED / WRITE_FIXED; a shard whose table the kernel refused, or
/// whose table is full, does plain READ / WRITE with the same results; a pooled block keeps its index; a freed
/// block's index serves the next one; a buffer disposed on another thread goes back to its shard.
module Scipio.Integration.Tests.FixedBufferTests

open System
open System.IO
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.IO
open Scipio.Ring
open Scipio.Runtime
open Scipio.Integration.Tests.Helpers

let private randomBytes (seed: int) (length: int) =
    let bytes = Array.zeroCreate<byte> length
    Random(seed).NextBytes bytes
    bytes

/// The calling shard's table of registered buffers.
let private table () : FixedBuffers =
    match (ShardExecutor.Require "the test").Backend.FixedBuffers with
    | null -> failtest "the io_uring backend always has a table object"
    | t -> t

/// Runs `f` with FixedBuffers.TableSize set to `size` for the shards it starts, then restores it.
let private withTableSize (size: int) (f: unit -> 'T) : 'T =
    let saved = FixedBuffers.TableSize
    FixedBuffers.TableSize <- size

    try
        f ()
    finally
        FixedBuffers.TableSize <- saved

/// Writes buffers of several sizes (each its own random bytes) with WriteAtAsync, reads them back with fresh
/// buffers and with ReadAtAsync(offset, length); returns whether every byte came back, and the shard's stats after.
let private roundTrip (path: string) =
    runShard (fun () ->
        task {
            let! file = DmaFile.CreateAsync path
            let sizes = [ 4096; 3 * 4096; 64 * 1024; 1 <<< 20 ]
            let mutable offset = 0L
            let mutable ok = true

            for i, size in List.indexed sizes do
                let content = randomBytes (100 + i) size
                use buffer = file.AllocateBuffer size
                content.AsSpan().CopyTo buffer.Span
                do! file.WriteAtAsync(buffer, offset)
                use back = file.AllocateBuffer size
                let! n = file.ReadAtAsync(back, offset)
                ok <- ok && n = size && back.Span.SequenceEqual(ReadOnlySpan content)
                // Any range: the buffer the read allocates itself is a pooled, registered one too.
                use! part = file.ReadAtAsync(offset + 100L, size - 200)
                ok <- ok && part.Span.SequenceEqual(ReadOnlySpan(content, 100, size - 200))
                offset <- offset + int64 size

            do! file.DisposeAsync()
            return ok, Shard.Stats
        })

let tests =
    testSequenced
    <| testList
        "registered buffers"
        [
            test "a registered buffer round-trips byte-exact through WRITE_FIXED and READ_FIXED (ext4: the main ring)" {
                requireIoUring "registered buffers (READ_FIXED / WRITE_FIXED)"

                withTempDir (fun dir ->
                    let ok, stats = roundTrip (Path.Combine(dir, "fixed.bin"))
                    Expect.isTrue ok "every byte written came back"
                    Expect.isGreaterThan stats.RegisteredBuffers 0 "the pool's blocks are registered"
                    Expect.equal stats.BufferRegistrationFailures 0L "no block failed to register"

                    Expect.equal
                        stats.FixedBufferIo
                        12L
                        "every read and write (4 sizes × write, read, any-range read) went fixed")
            }

            test
                "on tmpfs the poll ring refuses a READ_FIXED (EOPNOTSUPP) and the main ring takes it: the index is good on every ring" {
                requireIoUring "registered buffers (READ_FIXED / WRITE_FIXED)"

                if Directory.Exists "/dev/shm" then
                    let path = Path.Combine("/dev/shm", $"scipio-fixed-{Guid.NewGuid():N}.bin")

                    try
                        let ok, stats = roundTrip path
                        Expect.isTrue ok "every byte written came back"

                        Expect.isGreaterThanOrEqual
                            stats.PollFallbacks
                            1L
                            "the poll ring refused and the operation went again"

                        Expect.equal stats.FixedBufferIo 12L "all of it as fixed I/O"
                    finally
                        File.Delete path
                else
                    printfn "SKIPPED: no /dev/shm here"
            }

            test
                "a shard whose table the kernel refused reads and writes the same with plain READ / WRITE, and counts it" {
                requireIoUring "registered buffers (READ_FIXED / WRITE_FIXED)"

                withTempDir (fun dir ->
                    let errno, (ok, stats) =
                        withTableSize 0 (fun () ->
                            // A table of 0 entries: io_uring_register answers EINVAL, as it would an old kernel or a limit.
                            let errno = runShard (fun () -> task { return table().TableErrno })
                            errno, roundTrip (Path.Combine(dir, "plain.bin")))

                    Expect.equal errno 22 "the kernel refused the table (EINVAL)"
                    Expect.isTrue ok "every byte written came back"
                    Expect.equal stats.RegisteredBuffers 0 "nothing registered"
                    Expect.equal stats.FixedBufferIo 0L "no fixed I/O"

                    Expect.isGreaterThanOrEqual
                        stats.BufferRegistrationFailures
                        1L
                        "the blocks that went unregistered are counted")
            }

            test "a full table leaves the next blocks unregistered; their I/O goes plain, the registered ones' fixed" {
                requireIoUring "registered buffers (READ_FIXED / WRITE_FIXED)"

                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "full.bin")

                    let ok, indices, stats =
                        withTableSize 2 (fun () ->
                            runShard (fun () ->
                                task {
                                    let! file = DmaFile.CreateAsync path
                                    let buffers = [ for _ in 1..3 -> file.AllocateBuffer 4096 ]
                                    let mutable ok = true

                                    for i, buffer in List.indexed buffers do
                                        buffer.Span.Fill(byte (i + 1))
                                        do! file.WriteAtAsync(buffer, int64 (i * 4096))

                                    for i, buffer in List.indexed buffers do
                                        buffer.Span.Clear()
                                        let! n = file.ReadAtAsync(buffer, int64 (i * 4096))
                                        ok <- ok && n = 4096 && buffer.Span.IndexOfAnyExcept(byte (i + 1)) = -1

                                    let indices = buffers |> List.map (fun b -> b.Block.FixedIndex)
                                    let stats = Shard.Stats

                                    for b in buffers do
                                        b.Dispose()

                                    do! file.DisposeAsync()
                                    return ok, indices, stats
                                }))

                    Expect.isTrue ok "every block read back what was written to it"
                    Expect.equal indices [ 0; 1; -1 ] "two entries, two registered blocks; the third has none"
                    Expect.equal stats.RegisteredBuffers 2 "the table is full"
                    Expect.equal stats.BufferRegistrationFailures 1L "the third block counted"
                    Expect.equal stats.FixedBufferIo 4L "a write and a read each for the two registered blocks")
            }

            test
                "a disposed buffer's block is rented again with its index (no new registration); a freed block's index serves the next" {
                requireIoUring "registered buffers (READ_FIXED / WRITE_FIXED)"

                let reused, again, registrationsAfterReuse, freedIndex, nextIndex, registeredBefore, registeredAfterFree =
                    runShard (fun () ->
                        task {
                            let t = table ()
                            let first = DmaBufferPool.Rent 4096
                            let index = first.FixedIndex
                            let registrations = t.Registrations
                            DmaBufferPool.Return first
                            let second = DmaBufferPool.Rent 4096
                            let reused = Object.ReferenceEquals(first, second) && second.FixedIndex = index
                            let registrationsAfterReuse = t.Registrations - registrations
                            DmaBufferPool.Return second

                            // 33 blocks of one size: the pool keeps 32, and frees (and unregisters) the last one given back.
                            let blocks = [ for _ in 1..33 -> DmaBufferPool.Rent 8192 ]
                            let registeredBefore = t.Registered
                            let freedIndex = (List.last blocks).FixedIndex

                            for b in blocks do
                                DmaBufferPool.Return b

                            let registeredAfterFree = t.Registered
                            let next = DmaBufferPool.Rent(16 * 1024) // a new size: a new block
                            let nextIndex = next.FixedIndex
                            DmaBufferPool.Return next

                            return
                                reused,
                                index,
                                registrationsAfterReuse,
                                freedIndex,
                                nextIndex,
                                registeredBefore,
                                registeredAfterFree
                        })

                Expect.isTrue reused "the same block, with the same index"
                Expect.isGreaterThanOrEqual again 0 "the block was registered"
                Expect.equal registrationsAfterReuse 0L "renting it again registered nothing"

                Expect.equal
                    registeredAfterFree
                    (registeredBefore - 1)
                    "the block the pool did not keep was unregistered"

                Expect.equal nextIndex freedIndex "its index went to the next new block"
            }

            test
                "a buffer disposed on another thread goes back to its shard's pool, registered; after the shard stops it is freed" {
                requireIoUring "registered buffers (READ_FIXED / WRITE_FIXED)"

                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "elsewhere.bin")
                    File.WriteAllBytes(path, randomBytes 5 8192)

                    let sameBlock, registrations, escaped =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.OpenAsync path
                                let t = table ()
                                let buffer = file.AllocateBuffer 4096
                                let block = buffer.Block
                                let before = t.Registrations
                                do! Task.Run(fun () -> buffer.Dispose()) // a ThreadPool thread: no shard, cannot unregister
                                use again = file.AllocateBuffer 4096

                                let sameBlock =
                                    Object.ReferenceEquals(again.Block, block) && again.Block.FixedIndex >= 0

                                let! n = file.ReadAtAsync(again, 4096L)
                                let registrations = t.Registrations - before
                                let escaped = file.AllocateBuffer 4096 // outlives the shard
                                do! file.DisposeAsync()
                                return sameBlock && n = 4096, registrations, escaped
                            })

                    Expect.isTrue sameBlock "the block came back to its shard and was rented again, registered"
                    Expect.equal registrations 0L "no new registration"
                    escaped.Dispose() // the shard is gone: freed here, nothing to unregister

                    expectExn<ObjectDisposedException> "use after dispose" (thrownBy (fun () -> escaped.Span.Length))
                    |> ignore)
            }

            test "fixed reads and writes allocate nothing in steady state" {
                requireIoUring "registered buffers (READ_FIXED / WRITE_FIXED)"

                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "alloc.bin")
                    File.WriteAllBytes(path, randomBytes 3 (64 * 1024))

                    let bytes, fixedIo =
                        runShard (fun () ->
                            task {
                                let! file = DmaFile.OpenAsync(path, FileMode.Open, FileAccess.ReadWrite)
                                let buffer = file.AllocateBuffer 4096
                                let mutable before = 0L
                                let mutable measured = 0L
                                let mutable pass = 0
                                let mutable i = 0
                                let fixedBefore = Shard.Stats.FixedBufferIo

                                while pass < 2 do
                                    before <- GC.GetAllocatedBytesForCurrentThread()
                                    i <- 0

                                    while i < (if pass = 0 then 2000 else 10000) do
                                        let! _ = file.ReadAtAsync(buffer, int64 ((i % 16) * 4096))
                                        do! file.WriteAtAsync(buffer, int64 ((i % 16) * 4096))
                                        i <- i + 1

                                    measured <- GC.GetAllocatedBytesForCurrentThread() - before
                                    pass <- pass + 1

                                let fixedIo = Shard.Stats.FixedBufferIo - fixedBefore
                                buffer.Dispose()
                                do! file.DisposeAsync()
                                return measured, fixedIo
                            })

                    Expect.equal fixedIo 24000L "every read and write went fixed"
                    Expect.isLessThan (float bytes / 20000.0) 0.5 $"{bytes} B over 10,000 reads and 10,000 writes")
            }
        ]

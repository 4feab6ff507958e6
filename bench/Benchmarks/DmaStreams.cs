using Scipio.IO;

namespace Scipio.Bench.Benchmarks;

/// <summary>Sequential streams, per MiB: writing with <see cref="DmaStreamWriter"/> (O_DIRECT, write-behind, made
/// durable by the flush at the end of each round) against FileStream with FileOptions.WriteThrough and against a
/// buffered FileStream flushed to disk; reading with <see cref="DmaStreamReader"/> (O_DIRECT, read-ahead: from the
/// device every time) against a plain FileStream (from the page cache once the file is in it). Every side writes or
/// reads in 64 KiB calls, as a .NET user's copy loop does. The files live in a temporary directory that the suite
/// deletes at the end.</summary>
internal static class DmaStreams
{
    private const int Mib = 1 << 20;
    private const int Chunk = 64 << 10;
    private const long ReadFileSize = 64L * Mib;

    private static readonly byte[] s_source = MakeSource();
    private static readonly byte[] s_sink = new byte[Chunk];
    private static string? s_directory;
    private static DmaFile? s_writeFile, s_readFile;

    private static string Directory_ => s_directory ??= Directory.CreateTempSubdirectory("scipio-bench-dma-").FullName;
    private static string WritePath => Path.Combine(Directory_, "write.bin");
    private static string FileStreamWritePath => Path.Combine(Directory_, "write-filestream.bin");
    private static string ReadPath => Path.Combine(Directory_, "read-64m.bin");

    public static IEnumerable<Benchmark> All()
    {
        yield return new Benchmark(
            "dma-stream-write",
            "write 1 MiB sequentially in 64 KiB calls, durable at the end of each round (a round starts from an empty file)",
            1,
            new Side("DmaStreamWriter (128 KiB × 4 in flight) + DisposeAsync", Runner.Shard, DmaWrite),
            [
                new(new Side("FileStream, FileOptions.WriteThrough", Runner.ThreadPool, n => FileStreamWrite(n, writeThrough: true)),
                    "the durable sequential writer .NET offers: O_SYNC, each write on the device before it returns"),
                new(new Side("FileStream (buffered) + Flush(flushToDisk: true)", Runner.ThreadPool, n => FileStreamWrite(n, writeThrough: false)),
                    "the other way to durable: write through the page cache, fsync at the end"),
            ],
            Target.None)
        {
            Setup = SetupWriteAsync,
        };

        yield return new Benchmark(
            "dma-stream-read",
            "read 1 MiB of a 64 MiB file sequentially in 64 KiB calls (from the start again at the end)",
            1,
            new Side("DmaStreamReader (128 KiB × 4 ahead), from the device", Runner.Shard, DmaRead),
            [
                new(new Side("FileStream.ReadAsync, page cache", Runner.ThreadPool, FileStreamRead),
                    "the plain sequential reader a .NET user has (FileOptions.Asynchronous | SequentialScan)"),
            ],
            Target.None)
        {
            Setup = SetupReadAsync,
        };
    }

    private static byte[] MakeSource()
    {
        var bytes = new byte[Mib];
        new Random(7).NextBytes(bytes);
        return bytes;
    }

    private static async ValueTask SetupWriteAsync() => s_writeFile ??= await DmaFile.CreateAsync(WritePath);

    private static async ValueTask SetupReadAsync()
    {
        if (s_readFile is not null) return;
        string path = ReadPath;
        await Task.Run(() =>
        {
            using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite, 0);
            for (long written = 0; written < ReadFileSize; written += Mib) stream.Write(s_source);
            stream.Flush(flushToDisk: true);
        });
        s_readFile = await DmaFile.OpenAsync(path);
    }

    // ---- write ----

    private static async ValueTask DmaWrite(long n)
    {
        var file = s_writeFile!;
        await file.SetLengthAsync(0);
        var writer = new DmaStreamWriter(file);
        for (long i = 0; i < n; i++)
            for (int at = 0; at < Mib; at += Chunk)
                await writer.WriteAsync(s_source.AsMemory(at, Chunk));
        await writer.DisposeAsync();
    }

    private static async ValueTask FileStreamWrite(long n, bool writeThrough)
    {
        var options = FileOptions.Asynchronous | FileOptions.SequentialScan | (writeThrough ? FileOptions.WriteThrough : 0);
        await using var stream = new FileStream(FileStreamWritePath, FileMode.Create, FileAccess.Write, FileShare.None, writeThrough ? 0 : 4096, options);
        for (long i = 0; i < n; i++)
            for (int at = 0; at < Mib; at += Chunk)
                await stream.WriteAsync(s_source.AsMemory(at, Chunk));
        if (!writeThrough) stream.Flush(flushToDisk: true);
    }

    // ---- read ----

    private static async ValueTask DmaRead(long n)
    {
        var file = s_readFile!;
        long left = n * Mib;
        while (left > 0)
        {
            var reader = new DmaStreamReader(file);
            while (left > 0)
            {
                int read = await reader.ReadAsync(s_sink);
                if (read == 0) break;
                left -= read;
            }
            await reader.DisposeAsync();
        }
    }

    private static async ValueTask FileStreamRead(long n)
    {
        long left = n * Mib;
        while (left > 0)
        {
            await using var stream = new FileStream(ReadPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 0,
                FileOptions.Asynchronous | FileOptions.SequentialScan);
            while (left > 0)
            {
                int read = await stream.ReadAsync(s_sink);
                if (read == 0) break;
                left -= read;
            }
        }
    }

    /// <summary>Closes the files (on the shard) and deletes the directory.</summary>
    public static async ValueTask DisposeAsync()
    {
        if (s_writeFile is { } w) await w.DisposeAsync();
        if (s_readFile is { } r) await r.DisposeAsync();
        s_writeFile = s_readFile = null;
        if (s_directory is { } d && Directory.Exists(d)) Directory.Delete(d, recursive: true);
        s_directory = null;
    }
}

using System.IO.Compression;
using System.Text;
using Scipio;
using Scipio.IO;

namespace Snippets;

// docs/files.md. Each method runs on a shard; `dir` is a directory of the reader's.
public static class Files
{
    public static async Task<long> Buffered(string dir)
    {
        string path = Path.Combine(dir, "app.log");
        byte[] record = "one record\n"u8.ToArray();
        // <snippet:files-buffered>
        await using BufferedFile log = await BufferedFile.OpenAsync(path, FileMode.OpenOrCreate, FileAccess.ReadWrite);
        long end = await log.GetLengthAsync();
        await log.WriteAtAsync(record, end); // positional: there is no file position (and no FileMode.Append)
        await log.FlushAsync();              // durable: fdatasync, through the ring
        // </snippet>
        return await log.GetLengthAsync();
    }

    public static async Task<string> DmaZeroCopy(string dir)
    {
        string path = Path.Combine(dir, "data.bin");
        // <snippet:files-dma-write-read>
        await using DmaFile file = await DmaFile.CreateAsync(path);

        // A buffer from the shard's pool: page-aligned, its length rounded up to file.Alignment.
        using (DmaBuffer block = file.AllocateBuffer(64 * 1024))
        {
            block.Span.Fill((byte)'x');
            Encoding.ASCII.GetBytes("hello", block.Span);
            await file.WriteAtAsync(block, offset: 0);         // offset and length aligned, or ArgumentException
        }
        await file.FlushAsync();                                // fdatasync: the data is on the device

        // Zero-copy read: the device writes straight into the buffer.
        using (DmaBuffer block = file.AllocateBuffer(file.Alignment))
        {
            int read = await file.ReadAtAsync(block, offset: 0);
            Console.WriteLine($"{read} bytes, starting \"{Encoding.ASCII.GetString(block.Span[..5])}\"");
        }

        // Any offset and length: the read is aligned for you, and the buffer holds exactly the bytes asked for.
        using DmaBuffer word = await file.ReadAtAsync(offset: 1, length: 4);
        string text = Encoding.ASCII.GetString(word.Span);      // "ello"
        // </snippet>
        return text;
    }

    public static async Task<int> ReadMany(string dir)
    {
        string path = Path.Combine(dir, "data.bin");
        await using DmaFile file = await DmaFile.OpenAsync(path);
        int total = 0;
        // <snippet:files-read-many>
        // Four ranges: the second and third share a 4 KiB block, so they become one read.
        FileRange[] wanted = [new(0, 100), new(4096, 512), new(4200, 64), new(32768, 4096)];
        var options = new ReadManyOptions { MaxReadAmplification = 1.5, MaxInFlight = 32 };
        await foreach (DmaReadResult result in file.ReadManyAsync(wanted, options))
        {
            using DmaBuffer bytes = result.Buffer;             // exactly the range's bytes, in the order asked
            Console.WriteLine($"{result.Range.Offset}+{result.Range.Length}: {bytes.Length} bytes");
            total += bytes.Length;
        }
        // </snippet>
        return total;
    }

    public static async Task<int> Streams(string dir)
    {
        string path = Path.Combine(dir, "events.log.gz");
        // <snippet:files-dma-stream-write>
        await using (DmaFile file = await DmaFile.CreateAsync(path))
        await using (var writer = new DmaStreamWriter(file, new DmaStreamOptions { BufferSize = 1 << 20, InFlight = 4 }))
        await using (var gzip = new GZipStream(writer, CompressionLevel.Fastest))
        await using (var text = new StreamWriter(gzip, leaveOpen: true)) // leaveOpen: see below
        {
            for (int i = 0; i < 100_000; i++)
                await text.WriteLineAsync($"event {i}");
        } // then, disposed in turn: the gzip footer is written, and the writer flushes (durable, exact length)
        // </snippet>

        int lines = 0;
        // <snippet:files-dma-stream-read>
        await using (DmaFile file = await DmaFile.OpenAsync(path))
        await using (var reader = new DmaStreamReader(file))          // 4 reads of 128 KiB ahead, by default
        await using (var gzip = new GZipStream(reader, CompressionMode.Decompress))
        using (var text = new StreamReader(gzip, leaveOpen: true))
        {
            while (await text.ReadLineAsync() is string line)
                lines++;
        }
        // </snippet>
        return lines;
    }

    // <snippet:files-save-atomically>
    // Replaces a file so that, after a crash, it holds the old contents or the new ones, never a mix or nothing.
    static async Task SaveAtomicallyAsync(string path, ReadOnlyMemory<byte> contents)
    {
        string temporary = path + ".tmp";
        await using (BufferedFile file = await BufferedFile.CreateAsync(temporary))
        {
            await file.WriteAtAsync(contents, offset: 0);
            await file.FlushAsync();                        // 1. the new data is on the disk
        }
        await FileSystem.RenameAsync(temporary, path);      // 2. atomic: readers see the old file or the new one
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        await FileSystem.SyncDirectoryAsync(directory);     // 3. the rename itself is on the disk
    }
    // </snippet>

    public static Task SaveAtomically(string dir) =>
        SaveAtomicallyAsync(Path.Combine(dir, "settings.json"), "{\"answer\": 42}"u8.ToArray());

    public static async Task<string> Metadata(string dir)
    {
        // <snippet:files-file-system>
        string archive = Path.Combine(dir, "archive");
        await FileSystem.CreateDirectoryAsync(archive);                   // one level; an existing path is an error
        await FileSystem.RenameAsync(Path.Combine(dir, "settings.json"),
                                     Path.Combine(archive, "settings.json"), replace: false); // EEXIST if taken
        FileStatus status = await FileSystem.GetInfoAsync(Path.Combine(archive, "settings.json"));
        Console.WriteLine($"{status.Kind}, {status.Length} bytes, written {status.LastWriteTime:u}");
        await FileSystem.DeleteAsync(Path.Combine(archive, "settings.json"));
        await FileSystem.DeleteDirectoryAsync(archive);                   // empty directories only
        await FileSystem.SyncDirectoryAsync(dir);
        // </snippet>
        return status.ToString();
    }

    public static async Task InlineWrites(string path)
    {
        // <snippet:files-inline-write-limit>
        await using BufferedFile file = await BufferedFile.OpenAsync(path, FileMode.OpenOrCreate, FileAccess.Write);
        file.InlineWriteLimit = 0; // every write through the ring: never holds the shard, costs a hand-off to io-wq
        // </snippet>
    }
}

using Scipio;
using Scipio.IO;

namespace Snippets;

// docs/getting-started.md: a file.
public static class GettingStartedFile
{
    public static void AFile()
    {
        // <snippet:a-file>
        string path = Path.Combine(Path.GetTempPath(), "scipio-hello.txt");

        Shard.Run(async () =>
        {
            // Open, write, flush, read, close: each one goes through the shard's io_uring.
            await using (BufferedFile file = await BufferedFile.CreateAsync(path))
            {
                await file.WriteAtAsync("hello, io_uring\n"u8.ToArray(), offset: 0);
                await file.FlushAsync(); // fdatasync: on the disk, not only in the page cache
            }

            await using (BufferedFile file = await BufferedFile.OpenAsync(path))
            {
                var buffer = new byte[await file.GetLengthAsync()];
                int read = await file.ReadAtAsync(buffer, offset: 0);
                Console.Write(System.Text.Encoding.UTF8.GetString(buffer, 0, read));
            }

            await FileSystem.DeleteAsync(path);
        });
        // </snippet>
    }
}

using Scipio;

namespace Snippets;

// docs/troubleshooting.md.
public static class Troubleshooting
{
    public static void RequireIoUring()
    {
        // <snippet:ts-require-io-uring>
        try
        {
            Shard.Run(ServeAsync, new ShardOptions { Backend = ShardBackend.IoUring }); // no fallback
        }
        catch (IoUringUnavailableException e)
        {
            Console.Error.WriteLine($"cannot start: {e.Message} (errno {e.Errno})");
        }
        // </snippet>
    }

    public static void WhichBackend()
    {
        // <snippet:ts-which-backend>
        if (Shard.Stats.Backend == ShardBackend.Epoll)
            Console.Error.WriteLine("io_uring is blocked here: running on the epoll backend");
        // </snippet>
    }

    private static Task ServeAsync() => Task.CompletedTask;
}

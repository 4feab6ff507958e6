using Scipio.Ring;
using Scipio.Ring.Epoll;

namespace Scipio.Runtime;

/// <summary>Creates a shard's backend as <see cref="ShardOptions.Backend"/> says; for <see cref="ShardBackend.Auto"/>,
/// io_uring unless this process cannot use it, and then epoll with a notice on standard error (once per process).</summary>
internal static class BackendChoice
{
    /// <summary>The environment variable that overrides the default of <see cref="ShardOptions.Backend"/>:
    /// <c>auto</c>, <c>io_uring</c> or <c>epoll</c> (to try the epoll backend, or force it, without a rebuild).</summary>
    public const string EnvironmentVariable = "SCIPIO_BACKEND";

    private static int s_noticeWritten;

    /// <summary>Lets the next fallback write its notice again (tests).</summary>
    internal static void ResetNotice() => Volatile.Write(ref s_noticeWritten, 0);

    /// <summary>The default backend: <see cref="EnvironmentVariable"/> if set, else Auto. An unknown value throws,
    /// naming the variable and the values it takes.</summary>
    public static ShardBackend Default()
    {
        string? value = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return value?.Trim().ToLowerInvariant() switch
        {
            null or "" or "auto" => ShardBackend.Auto,
            "io_uring" or "iouring" => ShardBackend.IoUring,
            "epoll" => ShardBackend.Epoll,
            _ => throw new InvalidOperationException(
                $"{EnvironmentVariable}='{value}' is not a backend: use auto, io_uring or epoll (or unset it)."),
        };
    }

    public static (IShardBackend Backend, ShardBackend Kind) Create(ShardBackend wanted, int shardId, int ringEntries, OperationTable operations)
    {
        if (wanted == ShardBackend.Epoll) return (new EpollBackend(shardId, operations), ShardBackend.Epoll);
        try
        {
            return (new IoUringBackend(ringEntries, Interop.Cpus.AllowedAtStart, operations), ShardBackend.IoUring);
        }
        catch (IoUringUnavailableException e) when (wanted == ShardBackend.Auto)
        {
            if (Interlocked.Exchange(ref s_noticeWritten, 1) == 0)
                Console.Error.WriteLine($"Scipio: running on the epoll backend: {e.Message} (ShardOptions.Backend = IoUring makes this an error; Epoll chooses epoll without trying.)");
            return (new EpollBackend(shardId, operations), ShardBackend.Epoll);
        }
    }
}

using Scipio.Interop;

namespace Scipio.Ring.Epoll;

/// <summary>One operation the epoll backend hands to a helper thread: a copy of its SQE (the shard may re-prepare
/// the operation's own meanwhile), and, once the helper ran it, the result. Pooled by the backend, on the shard.</summary>
internal sealed class BlockingCall
{
    public IoOperation Op = null!;
    public ulong UserData;
    public IoUringSqe Sqe;
    public bool LatencySensitive;
    public int Result;
    private int _canceled;

    /// <summary>The shard canceled it: if no helper has started it, it ends with ECANCELED without running.</summary>
    public void Cancel() => Volatile.Write(ref _canceled, 1);

    /// <summary>On a helper thread: the syscall, unless canceled before it started.</summary>
    public void Run() => Result = Volatile.Read(ref _canceled) != 0 ? -Errno.ECANCELED : PlainSyscalls.Run(Sqe);

    public void Reset()
    {
        Op = null!;
        Sqe = default;
        _canceled = 0;
    }
}

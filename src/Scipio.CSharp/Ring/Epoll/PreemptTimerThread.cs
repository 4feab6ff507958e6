using System.Runtime.CompilerServices;
using Scipio.Interop;

namespace Scipio.Ring.Epoll;

/// <summary>The epoll backend's preemption timer: a thread blocked reading a one-shot timerfd. When the timer fires
/// it bumps the word <c>NeedPreempt</c> compares (so user code still only reads memory) and a count of firings the
/// shard takes at its next reap. Arming it is one timerfd_settime from the shard.</summary>
internal sealed unsafe class PreemptTimerThread : IDisposable
{
    private readonly int _timerFd;
    private readonly uint* _produced, _fired;
    private readonly Thread _thread;
    private volatile bool _stopping;

    public PreemptTimerThread(int shardId, uint* produced, uint* fired)
    {
        _produced = produced;
        _fired = fired;
        _timerFd = EpollCalls.CreateTimer();
        _thread = new Thread(Run) { IsBackground = true, Name = $"scipio-preempt-{shardId}" };
        _thread.UnsafeStart();
    }

    /// <summary>Fires once, <paramref name="afterNs"/> from now (replacing any earlier arming).</summary>
    public void Arm(long afterNs) => EpollCalls.ArmTimer(_timerFd, afterNs);

    private void Run()
    {
        Cpus.PinCurrentThread(Cpus.AllowedAtStart);
        while (true)
        {
            if (!EpollCalls.ReadCounter(_timerFd))
            {
                if (Libc.LastErrno == Errno.EINTR) continue;
                return;
            }
            if (_stopping) return;
            Interlocked.Increment(ref Unsafe.AsRef<int>(_fired));
            Interlocked.Increment(ref Unsafe.AsRef<int>(_produced));
        }
    }

    public void Dispose()
    {
        _stopping = true;
        Arm(1); // wakes the thread, which sees the flag
        _thread.Join();
        Libc.Close(_timerFd);
    }
}

using System.Runtime.CompilerServices;
using Scipio.Interop;

namespace Scipio.Ring.Epoll;

/// <summary>The epoll backend's preemption timer: a thread blocked reading a one-shot timerfd. When the timer fires
/// it bumps, in one atomic add, the count <c>NeedPreempt</c> compares (the low half of a 64-bit word, so user code
/// still only reads memory) and the count of firings the shard takes at its next reap (the high half). One add, so
/// the shard can never acknowledge the signal of a firing it has not seen (the core would then believe the timer
/// still armed, and a run could go on for ever), nor see a firing whose signal is still to come.</summary>
internal sealed unsafe class PreemptTimerThread : IDisposable
{
    private readonly int _timerFd;
    private readonly long* _signal;
    private readonly Thread _thread;
    private volatile bool _stopping;

    /// <summary>One firing adds this: 1 to the signal (low half) and 1 to the firings (high half).</summary>
    public const long Firing = (1L << 32) + 1;

    public PreemptTimerThread(int shardId, long* signal)
    {
        _signal = signal;
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
            Interlocked.Add(ref *_signal, Firing);
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

using System.Runtime.InteropServices;

namespace Scipio.Interop;

/// <summary>struct epoll_event on x86-64 and arm64 alike as .NET lays it out packed: 4 bytes of events, 8 of data
/// (x86-64's is packed; arm64's is not, but there data is 8-aligned at offset 8 — see <see cref="EpollCalls.Packed"/>).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
internal struct EpollEvent
{
    public uint Events;
    public ulong Data;
}

/// <summary>epoll, timerfd and the eventfd read: what the epoll backend waits with.</summary>
internal static unsafe partial class EpollCalls
{
    private const string Lib = "libc";
    public const uint In = 0x001, Out = 0x004, Err = 0x008, Hup = 0x010, RdHup = 0x2000, EdgeTriggered = 1u << 31;
    public const int CtlAdd = 1, CtlDel = 2, CtlMod = 3;
    private const int EpollCloexec = 0x80000;
    private const int ClockMonotonic = 1, TfdCloexec = 0x80000;

    /// <summary>The kernel's struct epoll_event is packed on x86-64 (12 bytes) and naturally aligned elsewhere (16).</summary>
    public static bool Packed => RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.X86;

    public static int Create()
    {
        int fd = EpollCreate1(EpollCloexec);
        if (fd < 0) throw Errno.ToException(Libc.LastErrno, "epoll_create1 for the shard's epoll backend");
        return fd;
    }

    /// <summary>Adds, modifies or removes <paramref name="fd"/>'s interest; data is the fd itself. 0 or an errno.</summary>
    public static int Control(int epollFd, int operation, int fd, uint events)
    {
        if (Packed)
        {
            var e = new EpollEvent { Events = events, Data = (ulong)fd };
            return EpollCtl(epollFd, operation, fd, &e) == 0 ? 0 : Libc.LastErrno;
        }
        var aligned = stackalloc ulong[2];
        aligned[0] = events;
        aligned[1] = (ulong)fd;
        return EpollCtl(epollFd, operation, fd, aligned) == 0 ? 0 : Libc.LastErrno;
    }

    /// <summary>Waits up to <paramref name="timeoutNs"/> (negative: for ever; 0: not at all) and writes up to
    /// <paramref name="into"/>'s length of events as (events, fd) pairs. Returns how many, 0 on a timeout or a
    /// signal. Nanosecond timeouts need epoll_pwait2 (Linux 5.11, glibc 2.35); without it they round up to ms.</summary>
    public static int Wait(int epollFd, (uint Events, int Fd)[] into, long timeoutNs)
    {
        int max = into.Length;
        int size = Packed ? 12 : 16;
        byte* buffer = stackalloc byte[max * size];
        int n;
        if (timeoutNs < 0) n = EpollWait(epollFd, buffer, max, -1);
        else if (timeoutNs == 0) n = EpollWait(epollFd, buffer, max, 0);
        else
        {
            var ts = new KernelTimespec { Sec = timeoutNs / 1_000_000_000, Nsec = timeoutNs % 1_000_000_000 };
            n = -1;
            if (s_pwait2)
            {
                try
                {
                    n = EpollPwait2(epollFd, buffer, max, &ts, 0);
                    if (n < 0 && Libc.LastErrno == Errno.ENOSYS) s_pwait2 = false;
                }
                catch (EntryPointNotFoundException)
                {
                    s_pwait2 = false;
                }
            }
            // epoll_wait counts milliseconds: round up, so a timer is never woken for early.
            if (!s_pwait2) n = EpollWait(epollFd, buffer, max, (int)Math.Min(int.MaxValue, (timeoutNs + 999_999) / 1_000_000));
        }
        if (n <= 0) return 0; // EINTR: as a timeout; the loop looks again
        for (int i = 0; i < n; i++)
        {
            byte* e = buffer + i * size;
            into[i] = (*(uint*)e, (int)*(ulong*)(e + (Packed ? 4 : 8)));
        }
        return n;
    }

    private static bool s_pwait2 = true;

    /// <summary>A CLOCK_MONOTONIC timerfd (blocking reads).</summary>
    public static int CreateTimer()
    {
        int fd = TimerfdCreate(ClockMonotonic, TfdCloexec);
        if (fd < 0) throw Errno.ToException(Libc.LastErrno, "timerfd_create for the shard's preemption timer");
        return fd;
    }

    /// <summary>Arms the timerfd to fire once, <paramref name="afterNs"/> from now (at least 1 ns: 0 would disarm).</summary>
    public static void ArmTimer(int timerFd, long afterNs)
    {
        afterNs = Math.Max(1, afterNs);
        // struct itimerspec { it_interval; it_value; }: a one-shot timer has no interval.
        var spec = stackalloc long[4];
        spec[0] = 0;
        spec[1] = 0;
        spec[2] = afterNs / 1_000_000_000;
        spec[3] = afterNs % 1_000_000_000;
        TimerfdSettime(timerFd, 0, spec, null);
    }

    /// <summary>Blocks until the timerfd or eventfd can be read, then reads its 8-byte count: false when it failed
    /// (closed, or non-blocking and nothing there).</summary>
    public static bool ReadCounter(int fd)
    {
        ulong value;
        return Read(fd, &value, 8) == 8;
    }

    [LibraryImport(Lib, EntryPoint = "epoll_create1", SetLastError = true)]
    private static partial int EpollCreate1(int flags);

    [LibraryImport(Lib, EntryPoint = "epoll_ctl", SetLastError = true)]
    private static partial int EpollCtl(int epollFd, int operation, int fd, void* e);

    [LibraryImport(Lib, EntryPoint = "epoll_wait", SetLastError = true)]
    private static partial int EpollWait(int epollFd, void* events, int max, int timeoutMs);

    [LibraryImport(Lib, EntryPoint = "epoll_pwait2", SetLastError = true)]
    private static partial int EpollPwait2(int epollFd, void* events, int max, KernelTimespec* timeout, nint sigmask);

    [LibraryImport(Lib, EntryPoint = "timerfd_create", SetLastError = true)]
    private static partial int TimerfdCreate(int clock, int flags);

    [LibraryImport(Lib, EntryPoint = "timerfd_settime", SetLastError = true)]
    private static partial int TimerfdSettime(int fd, int flags, long* newValue, long* oldValue);

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    private static partial nint Read(int fd, void* buffer, nuint count);
}

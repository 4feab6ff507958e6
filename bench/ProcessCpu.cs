using System.Runtime.InteropServices;

namespace Scipio.Bench;

/// <summary>CPU time the whole process has used (user + system, every thread: the shard, ThreadPool workers, and
/// the kernel's io_uring workers, which run as threads of the process), from getrusage(RUSAGE_SELF).</summary>
internal static class ProcessCpu
{
    private const int RusageSelf = 0;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeVal
    {
        public long Seconds;
        public long Microseconds;

        public readonly long Nanoseconds => Seconds * 1_000_000_000 + Microseconds * 1000;
    }

    /// <summary>struct rusage on 64-bit Linux: the two times, then 14 longs this class does not read.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 144)]
    private struct RUsage
    {
        public TimeVal User;
        public TimeVal System;
    }

    // DllImport rather than LibraryImport: the source generator needs unsafe code, and the struct is blittable.
    [DllImport("libc", EntryPoint = "getrusage")]
    private static extern int GetRUsage(int who, out RUsage usage);

    /// <summary>Nanoseconds of CPU the process has used so far (microsecond resolution).</summary>
    public static long Nanoseconds
    {
        get
        {
            if (GetRUsage(RusageSelf, out var usage) != 0) return 0;
            return usage.User.Nanoseconds + usage.System.Nanoseconds;
        }
    }
}

namespace Scipio.Interop;

/// <summary>CPU affinity: the CPUs the process may use, pinning the calling thread, and where it runs.</summary>
internal static unsafe class Cpus
{
    /// <summary>Words of a cpu_set_t: 1024 CPUs, glibc's CPU_SETSIZE.</summary>
    public const int MaskWords = 16;

    /// <summary>Writes the cpu_set_t of <paramref name="cpus"/> into <paramref name="mask"/> (MaskWords words).</summary>
    public static void FillMask(ulong* mask, int[] cpus)
    {
        new Span<ulong>(mask, MaskWords).Clear();
        foreach (int c in cpus) mask[c / 64] |= 1ul << (c % 64);
    }

    /// <summary>The CPUs the process was allowed at start: the main thread's mask (read through the process id,
    /// which names the main thread). Shards never pin the main thread, so this stays the process's own set.</summary>
    public static int[] AllowedAtStart { get; } = Read(Environment.ProcessId);

    private static int[] Read(int tid)
    {
        ulong* mask = stackalloc ulong[MaskWords];
        if (Libc.SchedGetAffinity(tid, MaskWords * sizeof(ulong), mask) != 0)
            return Enumerable.Range(0, Environment.ProcessorCount).ToArray();
        var cpus = new List<int>();
        for (int w = 0; w < MaskWords; w++)
            for (int b = 0; b < 64; b++)
                if ((mask[w] & (1ul << b)) != 0) cpus.Add(w * 64 + b);
        return [.. cpus];
    }

    /// <summary>Pins the calling thread to <paramref name="cpus"/>.</summary>
    public static void PinCurrentThread(int[] cpus)
    {
        ulong* mask = stackalloc ulong[MaskWords];
        FillMask(mask, cpus);
        if (Libc.SchedSetAffinity(0, MaskWords * sizeof(ulong), mask) != 0)
            throw Errno.ToException(Libc.LastErrno, $"sched_setaffinity to CPUs {string.Join(",", cpus)}");
    }

    /// <summary>The CPU the calling thread is running on at this instant.</summary>
    public static int Current() => Libc.SchedGetCpu();
}

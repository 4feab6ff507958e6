using Scipio.Core;

namespace Scipio.Interop;

/// <summary>The machine's CPU topology as sysfs describes it: which CPUs are online, and each one's core, package and
/// NUMA node. Where a file is missing or unreadable (containers, unusual kernels), a CPU counts as its own core in
/// package 0 on node 0, so a pool can always be placed.</summary>
internal static class Topology
{
    /// <summary>Where sysfs keeps the CPU and node directories.</summary>
    public const string SysfsRoot = "/sys/devices/system";

    /// <summary>The highest CPU number a cpulist may name: far above the kernel's own limit (NR_CPUS, at most 8192),
    /// low enough that a corrupt range cannot exhaust memory.</summary>
    public const int MaxCpu = 65535;

    /// <summary>The online CPUs of this machine and where each sits.</summary>
    public static CpuInfo[] Read() => Read(SysfsRoot, Cpus.AllowedAtStart);

    /// <summary>The online CPUs under <paramref name="root"/> (a directory laid out like /sys/devices/system) and
    /// where each sits. Without a readable <c>cpu/online</c>, the online CPUs are taken to be
    /// <paramref name="fallbackOnline"/>.</summary>
    public static CpuInfo[] Read(string root, int[] fallbackOnline)
    {
        var online = TryParseCpuList(ReadText(Path.Combine(root, "cpu", "online"))) ?? fallbackOnline;
        var nodeOf = NodesFromNodeDirectory(root);
        var cpus = new CpuInfo[online.Length];
        for (int i = 0; i < online.Length; i++)
        {
            int cpu = online[i];
            string dir = Path.Combine(root, "cpu", $"cpu{cpu}");
            int core = ReadId(Path.Combine(dir, "topology", "core_id")) ?? cpu;
            int package = ReadId(Path.Combine(dir, "topology", "physical_package_id")) ?? 0;
            int node = nodeOf.TryGetValue(cpu, out int n) ? n : NodeFromCpuDirectory(dir) ?? 0;
            cpus[i] = new CpuInfo(cpu, core, package, node);
        }
        return cpus;
    }

    /// <summary>Parses a cpulist as the kernel writes it ("0-3,8,10-11"; empty for none) into sorted, distinct CPU
    /// numbers. Also takes the kernel's strided form "0-7:2" (every second CPU from 0 to 7).</summary>
    /// <exception cref="FormatException">The text is not a cpulist.</exception>
    public static int[] ParseCpuList(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var cpus = new SortedSet<int>();
        foreach (string raw in text.Split(','))
        {
            string part = raw.Trim();
            if (part.Length == 0)
            {
                if (text.Trim().Length == 0) continue;
                throw Malformed(text);
            }
            int stride = 1;
            int colon = part.IndexOf(':');
            if (colon >= 0)
            {
                stride = ParseNumber(part[(colon + 1)..], text);
                if (stride < 1) throw Malformed(text);
                part = part[..colon];
            }
            int dash = part.IndexOf('-');
            int first = ParseNumber(dash < 0 ? part : part[..dash], text);
            int last = dash < 0 ? first : ParseNumber(part[(dash + 1)..], text);
            if (last < first || last > MaxCpu || (colon >= 0 && dash < 0)) throw Malformed(text);
            for (int c = first; c <= last; c += stride) cpus.Add(c);
        }
        return [.. cpus];
    }

    /// <summary>The cpulist in <paramref name="text"/>, or null when there is none or it does not parse.</summary>
    private static int[]? TryParseCpuList(string? text)
    {
        if (text is null) return null;
        try
        {
            return ParseCpuList(text);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static int ParseNumber(string text, string whole) =>
        int.TryParse(text.AsSpan().Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n)
            ? n
            : throw Malformed(whole);

    private static FormatException Malformed(string text) =>
        new($"'{text.Trim()}' is not a CPU list: CPU numbers from 0 to {MaxCpu} and ranges of them, separated by commas, such as \"0-3,8,10-11\".");

    /// <summary>The node of each CPU listed under <c>node/nodeM/cpulist</c>; empty where there is no node directory.</summary>
    private static Dictionary<int, int> NodesFromNodeDirectory(string root)
    {
        var nodeOf = new Dictionary<int, int>();
        string nodes = Path.Combine(root, "node");
        if (!Directory.Exists(nodes)) return nodeOf;
        try
        {
            foreach (string dir in Directory.EnumerateDirectories(nodes, "node*"))
            {
                if (NodeNumber(Path.GetFileName(dir)) is not int node) continue;
                foreach (int cpu in TryParseCpuList(ReadText(Path.Combine(dir, "cpulist"))) ?? [])
                    nodeOf.TryAdd(cpu, node);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A directory that vanished or cannot be listed: the CPUs it would have named fall back below.
        }
        return nodeOf;
    }

    /// <summary>The node named by a <c>nodeM</c> entry in a CPU's directory, if there is one.</summary>
    private static int? NodeFromCpuDirectory(string cpuDirectory)
    {
        try
        {
            if (!Directory.Exists(cpuDirectory)) return null;
            foreach (string entry in Directory.EnumerateFileSystemEntries(cpuDirectory, "node*"))
                if (NodeNumber(Path.GetFileName(entry)) is int node) return node;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }

    /// <summary>M for a name "nodeM"; null for anything else.</summary>
    private static int? NodeNumber(string name) =>
        name.StartsWith("node", StringComparison.Ordinal)
        && int.TryParse(name.AsSpan(4), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int node)
            ? node
            : null;

    /// <summary>A non-negative id from a one-number sysfs file; null when missing, unreadable or negative (some
    /// platforms write -1 for "unknown").</summary>
    private static int? ReadId(string path) =>
        int.TryParse(ReadText(path)?.Trim(), System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out int id)
        && id >= 0
            ? id
            : null;

    private static string? ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

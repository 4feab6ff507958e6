using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Scipio.Runtime;

namespace Scipio.IO;

/// <summary>What a disk can do: random 4 KiB read and write IOPS, large sequential read and write bandwidth, and the
/// unloaded latency of a 4 KiB read. Measured once with <see cref="MeasureAsync"/> (a short calibration, like
/// Seastar's iotune), saved with <see cref="Save"/> and loaded with <see cref="Load"/>, or given by hand with the
/// constructor.</summary>
/// <remarks>A model describes the device under one directory's file system as O_DIRECT I/O from a shard sees it
/// (<see cref="DmaFile"/>): the page cache is not involved, but caches below the file system (a hypervisor's, the
/// device's own) are, as they are for the application's I/O. Without a model, I/O goes straight to the rings.</remarks>
public sealed class DiskModel
{
    /// <summary>The version of the JSON format <see cref="Save"/> writes and <see cref="Load"/> reads.</summary>
    private const int FormatVersion = 1;

    private const int RandomBlock = 4096;
    private const int SequentialBlock = 1 << 20;
    private const int RandomDepth = 64;
    private const int SequentialDepth = 8;
    private const int LatencySamples = 1 << 16;

    /// <summary>How long each measuring phase runs (the QD1 latency phase half of it, filling the scratch file at most
    /// twice it): 2 s, so a calibration takes 10 to 13 s. Tests lower it.</summary>
    internal static TimeSpan PhaseDuration { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The largest the scratch file gets: 256 MiB, fewer where filling it takes longer than twice
    /// <see cref="PhaseDuration"/>. Tests lower it.</summary>
    internal static long ScratchFileSize { get; set; } = 256L << 20;

    /// <summary>A model given by hand.</summary>
    /// <param name="readIops">Random 4 KiB reads per second, many in flight.</param>
    /// <param name="writeIops">Random 4 KiB writes per second, many in flight.</param>
    /// <param name="readBandwidth">Large sequential reads, bytes per second.</param>
    /// <param name="writeBandwidth">Large sequential writes, bytes per second.</param>
    /// <param name="readLatency">How long one 4 KiB random read takes on an idle device (one in flight).</param>
    /// <exception cref="ArgumentOutOfRangeException">A figure is not positive, or not finite; the exception's
    /// ParamName names it.</exception>
    public DiskModel(double readIops, double writeIops, double readBandwidth, double writeBandwidth, TimeSpan readLatency)
        : this(readIops, writeIops, readBandwidth, writeBandwidth, readLatency, null, null, null)
    {
    }

    internal DiskModel(double readIops, double writeIops, double readBandwidth, double writeBandwidth, TimeSpan readLatency,
        string? directory, string? device, DateTimeOffset? measuredAt)
    {
        ReadIops = Positive(readIops, nameof(readIops));
        WriteIops = Positive(writeIops, nameof(writeIops));
        ReadBandwidth = Positive(readBandwidth, nameof(readBandwidth));
        WriteBandwidth = Positive(writeBandwidth, nameof(writeBandwidth));
        if (readLatency <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(readLatency), readLatency, "readLatency must be positive.");
        ReadLatency = readLatency;
        Directory = directory;
        Device = device;
        MeasuredAt = measuredAt;
    }

    private static double Positive(double value, string name) =>
        double.IsFinite(value) && value > 0
            ? value
            : throw new ArgumentOutOfRangeException(name, value, $"{name} must be a positive, finite number.");

    /// <summary>Random 4 KiB reads per second with many (64) in flight.</summary>
    public double ReadIops { get; }

    /// <summary>Random 4 KiB writes per second with many (64) in flight.</summary>
    public double WriteIops { get; }

    /// <summary>Sequential reads in bytes per second: 1 MiB requests, 8 in flight.</summary>
    public double ReadBandwidth { get; }

    /// <summary>Sequential writes in bytes per second: 1 MiB requests, 8 in flight.</summary>
    public double WriteBandwidth { get; }

    /// <summary>The median time of one random 4 KiB read with nothing else in flight.</summary>
    public TimeSpan ReadLatency { get; }

    /// <summary>The directory the model was measured in; null for a model given by hand.</summary>
    public string? Directory { get; }

    /// <summary>The block device under <see cref="Directory"/> as the kernel names it, with its numbers
    /// (<c>"vda (254:0)"</c>); null for a model given by hand.</summary>
    public string? Device { get; }

    /// <summary>When the model was measured; null for a model given by hand.</summary>
    public DateTimeOffset? MeasuredAt { get; }

    /// <summary>Measures the disk under <paramref name="directory"/>: makes a scratch file there (up to 256 MiB, filled
    /// once so reads hit real blocks), then with O_DIRECT from a shard runs 4 KiB random reads one at a time for 1 s
    /// (<see cref="ReadLatency"/>, the median), 4 KiB random reads and writes 64 in flight for 2 s each
    /// (<see cref="ReadIops"/>, <see cref="WriteIops"/>), and 1 MiB sequential reads and writes 8 in flight for 2 s
    /// each (<see cref="ReadBandwidth"/>, <see cref="WriteBandwidth"/>); then removes the file. 9 s of measuring plus
    /// filling the file, which stops after 4 s on a slow disk: about 10 s where the disk is fast, 13 s at most (and
    /// the few requests in flight at each phase's end).</summary>
    /// <remarks>On a shard it runs there, sharing the shard with whatever else runs on it (run it on a quiet one);
    /// off a shard it starts a temporary shard and awaits it. The scratch file is removed however the calibration
    /// ends: finished, failed or canceled. Other I/O on the same device meanwhile skews the figures.</remarks>
    /// <exception cref="ArgumentException"><paramref name="directory"/> is null or empty.</exception>
    /// <exception cref="DirectoryNotFoundException"><paramref name="directory"/> does not exist.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled.</exception>
    /// <exception cref="KernelIOException">The file system refuses O_DIRECT, is full, or another kernel error.</exception>
    public static Task<DiskModel> MeasureAsync(string directory, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string full = System.IO.Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(full))
            return Task.FromException<DiskModel>(new DirectoryNotFoundException($"DiskModel.MeasureAsync: the directory '{full}' does not exist."));
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<DiskModel>(cancellationToken);
        TimeSpan phase = PhaseDuration;
        long size = ScratchFileSize;
        if (Shard.IsOnShard) return MeasureOnShardAsync(full, phase, size, cancellationToken);
        return Shard.Start(() => MeasureOnShardAsync(full, phase, size, cancellationToken),
            new ShardOptions { Name = "scipio-diskmodel" }).Completion;
    }

    private static async Task<DiskModel> MeasureOnShardAsync(string directory, TimeSpan phase, long size, CancellationToken ct)
    {
        string path = System.IO.Path.Combine(directory, $".scipio-diskmodel-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
        DmaFile? file = null;
        try
        {
            var measuredAt = DateTimeOffset.UtcNow;
            file = await DmaFile.CreateAsync(path, ct);
            int block = Math.Max(RandomBlock, file.Alignment);
            size = Math.Max(SequentialBlock, size / SequentialBlock * SequentialBlock);
            await file.PreallocateAsync(0, size, ct);

            // Fill the file once (unwritten extents read as zeros without touching the disk), for at most two phases.
            var (filled, _) = await Sequential(file, write: true, 0, size, 2 * phase, ct, untilEnd: true);
            long region = Math.Max(SequentialBlock, filled / SequentialBlock * SequentialBlock);

            var latency = await MedianLatency(file, block, region, phase / 2, ct);
            double readIops = await RandomIops(file, write: false, block, region, phase, ct);
            double writeIops = await RandomIops(file, write: true, block, region, phase, ct);
            var (readBytes, readTime) = await Sequential(file, write: false, 0, region, phase, ct, untilEnd: false);
            var (writeBytes, writeTime) = await Sequential(file, write: true, 0, region, phase, ct, untilEnd: false);
            string device = await DeviceOf(directory, ct);
            return new DiskModel(readIops, writeIops, readBytes / readTime.TotalSeconds, writeBytes / writeTime.TotalSeconds,
                latency, directory, device, measuredAt);
        }
        finally
        {
            if (file is not null) await file.DisposeAsync();
            try { File.Delete(path); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Runs <paramref name="depth"/> workers until <paramref name="phase"/> has passed (each finishes the
    /// request it has in flight then); the first failure cancels the others and is thrown once all have stopped.
    /// Returns the time from the start to the last completion.</summary>
    private static async Task<TimeSpan> Run(int depth, TimeSpan phase, CancellationToken ct, Func<long, CancellationToken, Task> worker)
    {
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(ct);
        long start = Stopwatch.GetTimestamp();
        long deadline = start + (long)(phase.TotalSeconds * Stopwatch.Frequency);
        var workers = new Task[depth];
        for (int w = 0; w < depth; w++)
        {
            workers[w] = Shard.Spawn(async () =>
            {
                try { await worker(deadline, failed.Token); }
                catch
                {
                    failed.Cancel();
                    throw;
                }
            });
        }
        try { await Task.WhenAll(workers); }
        catch
        {
            ct.ThrowIfCancellationRequested();
            // The first real failure, not the cancellations it caused.
            throw workers.Select(t => t.Exception?.InnerException).FirstOrDefault(e => e is not OperationCanceledException)
                ?? workers.First(t => t.IsFaulted || t.IsCanceled).Exception?.InnerException
                ?? new OperationCanceledException(ct);
        }
        return Stopwatch.GetElapsedTime(start);
    }

    private static async Task<TimeSpan> MedianLatency(DmaFile file, int block, long region, TimeSpan phase, CancellationToken ct)
    {
        var samples = new long[LatencySamples];
        int count = 0;
        var random = new Random(11);
        await Run(1, phase, ct, async (deadline, token) =>
        {
            using var buffer = file.AllocateBuffer(block);
            while (count < samples.Length && (count == 0 || Stopwatch.GetTimestamp() < deadline))
            {
                long offset = random.NextInt64(region / block) * block;
                long before = Stopwatch.GetTimestamp();
                await file.ReadAtAsync(buffer, offset, token);
                samples[count++] = Stopwatch.GetTimestamp() - before;
            }
        });
        Array.Sort(samples, 0, count);
        long median = samples[count / 2];
        return TimeSpan.FromTicks(Math.Max(1, (long)(median * (double)TimeSpan.TicksPerSecond / Stopwatch.Frequency)));
    }

    private static async Task<double> RandomIops(DmaFile file, bool write, int block, long region, TimeSpan phase, CancellationToken ct)
    {
        long done = 0;
        var random = new Random(write ? 13 : 12);
        var elapsed = await Run(RandomDepth, phase, ct, async (deadline, token) =>
        {
            using var buffer = file.AllocateBuffer(block);
            if (write) buffer.Span.Fill(0x5A);
            do
            {
                long offset = random.NextInt64(region / block) * block;
                if (write) await file.WriteAtAsync(buffer, offset, token);
                else await file.ReadAtAsync(buffer, offset, token);
                done++;
            }
            while (Stopwatch.GetTimestamp() < deadline);
        });
        return done / elapsed.TotalSeconds;
    }

    /// <summary>1 MiB requests in order from <paramref name="from"/>, wrapping at <paramref name="end"/> (or stopping
    /// there when <paramref name="untilEnd"/>), <see cref="SequentialDepth"/> in flight, for at most
    /// <paramref name="phase"/>: the bytes done and the time taken.</summary>
    private static async Task<(long Bytes, TimeSpan Time)> Sequential(DmaFile file, bool write, long from, long end,
        TimeSpan phase, CancellationToken ct, bool untilEnd)
    {
        long next = from, bytes = 0;
        var elapsed = await Run(SequentialDepth, phase, ct, async (deadline, token) =>
        {
            using var buffer = file.AllocateBuffer(SequentialBlock);
            if (write) buffer.Span.Fill(0xA5);
            do
            {
                if (next >= end)
                {
                    if (untilEnd) return;
                    next = 0;
                }
                long offset = next;
                next += SequentialBlock;
                if (write) await file.WriteAtAsync(buffer, offset, token);
                else await file.ReadAtAsync(buffer, offset, token);
                bytes += SequentialBlock;
            }
            while (Stopwatch.GetTimestamp() < deadline);
        });
        // Filling: every request below `next` was issued and all have finished by now, so that prefix is written.
        return (untilEnd ? next - from : bytes, elapsed);
    }

    /// <summary>The block device under <paramref name="directory"/>: its kernel name from sysfs and its numbers.</summary>
    private static async Task<string> DeviceOf(string directory, CancellationToken ct)
    {
        var info = await FileSystem.GetInfoAsync(directory, ct);
        string numbers = $"{info.DeviceMajor}:{info.DeviceMinor}";
        try
        {
            foreach (var line in File.ReadLines($"/sys/dev/block/{numbers}/uevent"))
                if (line.StartsWith("DEVNAME=", StringComparison.Ordinal)) return $"{line["DEVNAME=".Length..]} ({numbers})";
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return numbers;
    }

    /// <summary>Writes the model to <paramref name="path"/> as JSON (replacing the file): a <c>version</c>, the five
    /// figures (<c>readIops</c>, <c>writeIops</c>, <c>readBandwidth</c>, <c>writeBandwidth</c> in bytes/s,
    /// <c>readLatencyNs</c>) and, for a measured model, <c>directory</c>, <c>device</c> and <c>measuredAt</c> (UTC,
    /// ISO 8601).</summary>
    /// <exception cref="ArgumentException"><paramref name="path"/> is null or empty.</exception>
    /// <exception cref="IOException">The file cannot be written.</exception>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("version", FormatVersion);
            json.WriteNumber("readIops", ReadIops);
            json.WriteNumber("writeIops", WriteIops);
            json.WriteNumber("readBandwidth", ReadBandwidth);
            json.WriteNumber("writeBandwidth", WriteBandwidth);
            json.WriteNumber("readLatencyNs", ReadLatency.Ticks * 100);
            if (Directory is not null) json.WriteString("directory", Directory);
            if (Device is not null) json.WriteString("device", Device);
            if (MeasuredAt is { } at)
                json.WriteString("measuredAt", at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture));
            json.WriteEndObject();
        }
        File.WriteAllBytes(path, output.WrittenSpan.ToArray());
    }

    /// <summary>Reads a model that <see cref="Save"/> wrote (or one written by hand in the same format).</summary>
    /// <exception cref="ArgumentException"><paramref name="path"/> is null or empty.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not JSON, has another version, or a figure is missing or
    /// not a positive finite number; the message names the file and the field.</exception>
    public static DiskModel Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes = File.ReadAllBytes(path);
        JsonDocument document;
        try { document = JsonDocument.Parse(bytes); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not a DiskModel: it is not valid JSON ({e.Message})", e); }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"'{path}' is not a DiskModel: it is not a JSON object.");
            double version = Number(root, "version", path);
            if (version != FormatVersion)
                throw new InvalidDataException($"'{path}': 'version' is {version}; this Scipio reads version {FormatVersion}.");
            double readIops = Figure(root, "readIops", path);
            double writeIops = Figure(root, "writeIops", path);
            double readBandwidth = Figure(root, "readBandwidth", path);
            double writeBandwidth = Figure(root, "writeBandwidth", path);
            double latencyNs = Figure(root, "readLatencyNs", path);
            if (latencyNs < 50 || latencyNs / 100 >= TimeSpan.MaxValue.Ticks)
                throw new InvalidDataException($"'{path}': the field 'readLatencyNs' must be from 100 ns to TimeSpan.MaxValue; got {latencyNs.ToString(CultureInfo.InvariantCulture)}.");
            var latency = TimeSpan.FromTicks((long)Math.Round(latencyNs / 100));
            string? directory = Text(root, "directory", path);
            string? device = Text(root, "device", path);
            DateTimeOffset? measuredAt = null;
            if (Text(root, "measuredAt", path) is { } at)
            {
                if (!DateTimeOffset.TryParse(at, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out var parsed))
                    throw new InvalidDataException($"'{path}': 'measuredAt' is not a date and time: '{at}'.");
                measuredAt = parsed;
            }
            return new DiskModel(readIops, writeIops, readBandwidth, writeBandwidth, latency, directory, device, measuredAt);
        }
    }

    private static double Number(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var value))
            throw new InvalidDataException($"'{path}': the field '{name}' is missing.");
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double number))
            throw new InvalidDataException($"'{path}': the field '{name}' must be a number; got {value.GetRawText()}.");
        return number;
    }

    private static double Figure(JsonElement root, string name, string path)
    {
        double number = Number(root, name, path);
        if (!double.IsFinite(number) || number <= 0)
            throw new InvalidDataException($"'{path}': the field '{name}' must be a positive, finite number; got {number.ToString(CultureInfo.InvariantCulture)}.");
        return number;
    }

    private static string? Text(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"'{path}': the field '{name}' must be a string; got {value.GetRawText()}.");
        return value.GetString();
    }

    /// <summary>The model as the core's I/O scheduler takes it (whole numbers, latency in ns).</summary>
    internal Core.DeviceModel ToCore() => new(
        (long)Math.Ceiling(ReadIops), (long)Math.Ceiling(WriteIops),
        (long)Math.Ceiling(ReadBandwidth), (long)Math.Ceiling(WriteBandwidth),
        Math.Max(1, ReadLatency.Ticks * 100));

    /// <inheritdoc/>
    public override string ToString() => FormattableString.Invariant(
        $"DiskModel: read {ReadIops:F0} IOPS, write {WriteIops:F0} IOPS (4 KiB random); read {ReadBandwidth / (1 << 20):F1} MiB/s, write {WriteBandwidth / (1 << 20):F1} MiB/s (sequential); 4 KiB read latency {ReadLatency.TotalMicroseconds:F1} µs{(Device is null ? "" : $"; {Device}, '{Directory}'")}");
}

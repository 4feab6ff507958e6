using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using Scipio.IO;

namespace Scipio.Bench.Benchmarks;

/// <summary>4 KiB O_DIRECT reads at random 4 KiB-aligned offsets of a 1 GiB file on this machine's disk, at 1, 32
/// and 128 in flight: <see cref="DmaFile"/> on the shard (registered buffers: READ_FIXED) against
/// <c>RandomAccess.ReadAsync</c> on an O_DIRECT handle with the ThreadPool's default settings, and against itself
/// with registered buffers off (plain READ); and, printed after the table, fio with io_uring at the same depths.</summary>
internal sealed class DirectReads : IAsyncDisposable
{
    private const int BlockSize = 4096;
    private const long FileSize = 1L << 30;
    private const int OffsetMask = (1 << 16) - 1;
    private static readonly int[] s_depths = [1, 32, 128];

    private readonly long[] _offsets = new long[OffsetMask + 1];
    private string? _path;
    private DmaFile? _file;
    private SafeFileHandle? _handle;
    private Scipio.Interop.AlignedMemory[]? _poolBuffers; // page-aligned, for the baseline's O_DIRECT reads

    public DirectReads()
    {
        var random = new Random(20241201);
        for (int i = 0; i < _offsets.Length; i++) _offsets[i] = random.NextInt64(FileSize / BlockSize) * BlockSize;
    }

    public IEnumerable<Benchmark> All()
    {
        foreach (int depth in s_depths)
        {
            yield return new Benchmark(
                $"dma-read-4k-qd{depth}",
                $"an O_DIRECT 4 KiB read at a random offset of a 1 GiB file on the disk, {depth} in flight (ns/op is 1e9 ÷ IOPS)",
                depth,
                new Side("DmaFile.ReadAtAsync(DmaBuffer, offset)", Runner.Shard, n => ScipioRound(n, depth)),
                [new(new Side("RandomAccess.ReadAsync, O_DIRECT handle", Runner.ThreadPool, n => PoolRound(n, depth)),
                    "what a .NET user has for direct I/O: RandomAccess on a handle opened with O_DIRECT, the same number of reads in flight, on the ThreadPool with its default settings"),
                 new(new Side("DmaFile, plain READ (registered buffers off)", Runner.Shard, n => PlainRound(n, depth)),
                    "the A/B of registered buffers: the Scipio side's code and buffers, but the reads go as IORING_OP_READ rather than READ_FIXED, so the kernel pins and unpins each buffer's page per read"),
                 new(new Side("DmaFile on the epoll backend", Runner.ThreadPool, n => EpollRound(n, depth)),
                    "the same code on a shard (CPU 0) with ShardBackend.Epoll, where io_uring is blocked: each read is a pread on one of the shard's helper threads, its result back through an eventfd; CPU and bytes counted process-wide")],
                Target.Faster(1.7)) // 0 B per read is asserted by the integration suite; a round here holds few, slow reads
            {
                Setup = EnsureCreatedAsync,
            };
        }
    }

    private async ValueTask EnsureCreatedAsync()
    {
        if (_file is not null) return;
        _path = Path.Combine(Path.GetTempPath(), $"scipio-bench-direct-{Environment.ProcessId}.bin");
        string path = _path;
        await Task.Run(() =>
        {
            var chunk = new byte[4 << 20];
            var random = new Random(7);
            using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite, 0);
            for (long written = 0; written < FileSize; written += chunk.Length)
            {
                random.NextBytes(chunk);
                stream.Write(chunk);
            }
            stream.Flush(flushToDisk: true);
            return true;
        });
        _file = await DmaFile.OpenAsync(path);
        int fd = Open(path, 0x4000 /* O_DIRECT */);
        _handle = new SafeFileHandle(fd, ownsHandle: true);
        _poolBuffers = Enumerable.Range(0, s_depths.Max()).Select(_ => new Scipio.Interop.AlignedMemory(BlockSize)).ToArray();
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open(string path, int flags);

    private async ValueTask ScipioRound(long n, int depth)
    {
        var file = _file!;
        var workers = new Task[depth];
        long perWorker = n / depth;
        for (int w = 0; w < depth; w++)
        {
            int worker = w;
            workers[w] = Shard.Spawn(async () =>
            {
                using var buffer = file.AllocateBuffer(BlockSize);
                for (long i = 0; i < perWorker; i++)
                {
                    int read = await file.ReadAtAsync(buffer, _offsets[(worker * perWorker + i) & OffsetMask]);
                    if (read != BlockSize) throw new InvalidOperationException($"short read: {read}");
                }
            });
        }
        await Task.WhenAll(workers);
    }

    /// <summary>The Scipio side with registered buffers switched off: the same buffers (registered all the same),
    /// sent as plain READ.</summary>
    private async ValueTask PlainRound(long n, int depth)
    {
        bool saved = Scipio.Ring.FixedBuffers.UseForIo;
        Scipio.Ring.FixedBuffers.UseForIo = false;
        try { await ScipioRound(n, depth); }
        finally { Scipio.Ring.FixedBuffers.UseForIo = saved; }
    }

    private async ValueTask PoolRound(long n, int depth)
    {
        var handle = _handle!;
        var workers = new Task[depth];
        long perWorker = n / depth;
        for (int w = 0; w < depth; w++)
        {
            var buffer = _poolBuffers![w].Memory;
            int worker = w;
            workers[w] = Task.Run(async () =>
            {
                for (long i = 0; i < perWorker; i++)
                {
                    int read = await RandomAccess.ReadAsync(handle, buffer, _offsets[(worker * perWorker + i) & OffsetMask]);
                    if (read != BlockSize) throw new InvalidOperationException($"short read: {read}");
                }
            });
        }
        await Task.WhenAll(workers);
    }

    private ShardPool? _epollPool;
    private DmaFile? _epollFile; // opened on the epoll shard, which owns it

    /// <summary>The Scipio side on a one-shard pool with the epoll backend, on CPU 0 like the benchmark's shard
    /// (parked meanwhile).</summary>
    private ValueTask EpollRound(long n, int depth)
    {
        _epollPool ??= ShardPool.Start(new ShardPoolOptions
        {
            Shards = 1,
            Placement = PoolPlacement.MaxSpread([0]),
            PerShard = new ShardOptions { Backend = ShardBackend.Epoll },
        });
        return new ValueTask(_epollPool.SubmitTo(0, async () =>
        {
            _epollFile ??= await DmaFile.OpenAsync(_path!);
            var file = _epollFile;
            var workers = new Task[depth];
            long perWorker = n / depth;
            for (int w = 0; w < depth; w++)
            {
                int worker = w;
                workers[w] = Shard.Spawn(async () =>
                {
                    using var buffer = file.AllocateBuffer(BlockSize);
                    for (long i = 0; i < perWorker; i++)
                    {
                        int read = await file.ReadAtAsync(buffer, _offsets[(worker * perWorker + i) & OffsetMask]);
                        if (read != BlockSize) throw new InvalidOperationException($"short read: {read}");
                    }
                });
            }
            await Task.WhenAll(workers);
            return 0;
        }));
    }

    /// <summary>fio with io_uring on the same file at each depth, when installed: IOPS and CPU µs per I/O.</summary>
    public void ReportFio(TextWriter output)
    {
        if (_path is null) return;
        output.WriteLine("### fio (io_uring, O_DIRECT, 4 KiB random reads, the same 1 GiB file, 5 s each)");
        output.WriteLine();
        if (!File.Exists("/usr/bin/fio") && !File.Exists("/usr/local/bin/fio"))
        {
            output.WriteLine("fio is not installed: `apt-get install fio` to see it beside Scipio.");
            return;
        }
        output.WriteLine("| in flight | IOPS | CPU µs per I/O |");
        output.WriteLine("|---:|---:|---:|");
        foreach (int depth in s_depths)
        {
            var info = new ProcessStartInfo("fio", $"--name=scipio --filename={_path} --ioengine=io_uring --direct=1 --rw=randread --bs=4k --iodepth={depth} --runtime=5 --time_based --output-format=json")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var fio = Process.Start(info)!;
            string json = fio.StandardOutput.ReadToEnd();
            fio.WaitForExit();
            using var doc = JsonDocument.Parse(json);
            var job = doc.RootElement.GetProperty("jobs")[0];
            double iops = job.GetProperty("read").GetProperty("iops").GetDouble();
            double cpuPercent = job.GetProperty("usr_cpu").GetDouble() + job.GetProperty("sys_cpu").GetDouble();
            double cpuUsPerIo = cpuPercent / 100.0 * 1e6 / iops;
            output.WriteLine($"| {depth} | {iops:N0} | {cpuUsPerIo:0.00} |");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_file is not null) await _file.DisposeAsync();
        if (_epollPool is not null)
        {
            if (_epollFile is { } epollFile) await _epollPool.SubmitTo(0, async () => { await epollFile.DisposeAsync(); return 0; });
            await _epollPool.DisposeAsync();
        }
        _handle?.Dispose();
        if (_poolBuffers is not null) foreach (var b in _poolBuffers) b.Free();
        if (_path is not null) File.Delete(_path);
    }
}

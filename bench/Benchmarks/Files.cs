using Microsoft.Win32.SafeHandles;
using Scipio.IO;

namespace Scipio.Bench.Benchmarks;

/// <summary>4 KiB reads and writes at random 4 KiB-aligned offsets of a 64 MiB file that is in the page cache, at
/// queue depth 1 (one loop awaiting each operation) and 16 (16 such loops at once). Every side uses the same
/// offsets, and checks every result.</summary>
internal sealed class Files : IAsyncDisposable
{
    private const int BlockSize = 4096;
    private const long FileSize = 64L << 20;
    private const int Depth = 16;
    private const int OffsetMask = (1 << 16) - 1;

    private readonly long[] _offsets = new long[OffsetMask + 1];
    private readonly Memory<byte>[] _buffers = new Memory<byte>[Depth];
    private string? _directory;
    private string? _path;
    private BufferedFile? _file;
    private SafeFileHandle? _asyncHandle, _syncHandle;

    // Steady-state allocation of a Scipio round: from the first completion (all workers started) to the first
    // worker's last operation (none finished yet).
    private long _opsDone, _steadyStartBytes, _steadyStartOps, _steadyEndBytes, _steadyEndOps;
    private bool _steadyEnded;

    public Files()
    {
        var random = new Random(20240917);
        for (int i = 0; i < _offsets.Length; i++) _offsets[i] = random.NextInt64(FileSize / BlockSize) * BlockSize;
        for (int w = 0; w < Depth; w++)
        {
            var buffer = new byte[BlockSize];
            random.NextBytes(buffer);
            _buffers[w] = buffer;
        }
    }

    public IEnumerable<Benchmark> All()
    {
        const string WhyAsync = "RandomAccess.ReadAsync/WriteAsync on a SafeFileHandle opened with " +
            "FileOptions.Asynchronous: .NET's async file API (on Linux each call is a pread/pwrite run on the ThreadPool)";
        const string WhySync = "RandomAccess.Read/Write called synchronously on pool threads: the fastest a .NET " +
            "user gets from a page-cache-hot file (a bare pread/pwrite, no continuation)";
        const string WhyRing = "the same writes submitted to the ring: ext4 cannot write to the page cache without " +
            "blocking, so io_uring hands each to an io-wq worker (the default, pwrite on the shard, is the side above)";
        string qd16Note = $"; QD16: {Depth} loops spawned on the shard vs {Depth} loops started with Task.Run " +
            "(the ThreadPool may use every CPU, the shard one)";

        foreach (bool write in new[] { false, true })
        {
            string verb = write ? "write" : "read";
            foreach (int depth in new[] { 1, Depth })
            {
                bool qd = depth > 1;
                yield return new Benchmark(
                    $"file-{verb}-4k-qd{depth}",
                    $"{verb} 4 KiB at a random offset of a 64 MiB page-cache-hot file, queue depth {depth}{(qd ? qd16Note : "")}",
                    depth,
                    new Side($"BufferedFile.{(write ? "WriteAtAsync" : "ReadAtAsync")}", Runner.Shard,
                        n => ScipioRound(n, write, depth, BufferedFile.DefaultInlineWriteLimit))
                    {
                        SteadyBytesPerOp = SteadyBytesPerOp,
                    },
                    [
                        .. write ? new Baseline[] { new(new Side("BufferedFile.WriteAtAsync through the ring (InlineWriteLimit = 0)", Runner.Shard,
                            n => ScipioRound(n, write, depth, inlineWriteLimit: 0)), WhyRing) } : [],
                        new(new Side($"RandomAccess.{(write ? "WriteAsync" : "ReadAsync")}", Runner.ThreadPool,
                            qd ? n => PoolAtDepth(n, write, async: true) : n => new ValueTask(AsyncWorker(0, n, write))), WhyAsync),
                        new(new Side($"RandomAccess.{(write ? "Write" : "Read")} (sync, pool thread{(qd ? "s" : "")})", Runner.ThreadPool,
                            qd ? n => PoolAtDepth(n, write, async: false) : n => SyncWorker(0, n, write)), WhySync),
                    ],
                    Target.ZeroAlloc)
                {
                    Setup = EnsureCreatedAsync,
                };
            }
        }
    }

    /// <summary>Creates the file (off the shard), makes sure it is in the page cache, opens it both ways.</summary>
    private async ValueTask EnsureCreatedAsync()
    {
        if (_file is not null) return;
        _directory = Path.Combine(Path.GetTempPath(), $"scipio-bench-{Environment.ProcessId}");
        _path = Path.Combine(_directory, "random-64m.bin");
        string path = _path, directory = _directory;
        await Task.Run(() =>
        {
            Directory.CreateDirectory(directory);
            var chunk = new byte[1 << 20];
            var random = new Random(42);
            using (var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite, 0))
            {
                for (long written = 0; written < FileSize; written += chunk.Length)
                {
                    random.NextBytes(chunk);
                    stream.Write(chunk);
                }
                stream.Flush(flushToDisk: true); // clean pages: writeback does not run during the first rounds
            }
            using var check = File.OpenHandle(path);
            for (long offset = 0; offset < FileSize; offset += chunk.Length) RandomAccess.Read(check, chunk, offset);
            return true;
        });
        _asyncHandle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, FileOptions.Asynchronous);
        _syncHandle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        _file = await BufferedFile.OpenAsync(path, FileMode.Open, FileAccess.ReadWrite);
    }

    // ---- Scipio ----

    private async ValueTask ScipioRound(long n, bool write, int depth, int inlineWriteLimit)
    {
        _file!.InlineWriteLimit = inlineWriteLimit;
        _opsDone = 0;
        _steadyStartOps = -1;
        _steadyEnded = false;
        if (depth == 1)
        {
            await ScipioWorker(0, n, write);
            return;
        }
        long perWorker = n / depth;
        var workers = new Task[depth];
        for (int w = 0; w < depth; w++)
        {
            int worker = w;
            workers[w] = Shard.Spawn(() => ScipioWorker(worker, perWorker, write));
        }
        foreach (var worker in workers) await worker;
    }

    private async Task ScipioWorker(int worker, long n, bool write)
    {
        var file = _file!;
        var buffer = _buffers[worker];
        int next = worker * 4099;
        for (long i = 0; i < n; i++)
        {
            long offset = _offsets[next++ & OffsetMask];
            if (write) await file.WriteAtAsync(buffer, offset);
            else Check(await file.ReadAtAsync(buffer, offset));
            TrackSteady(i == n - 1);
        }
    }

    private void TrackSteady(bool lastOfWorker)
    {
        _opsDone++;
        if (_steadyStartOps < 0)
        {
            _steadyStartBytes = GC.GetAllocatedBytesForCurrentThread();
            _steadyStartOps = _opsDone;
        }
        else if (lastOfWorker && !_steadyEnded)
        {
            _steadyEndBytes = GC.GetAllocatedBytesForCurrentThread();
            _steadyEndOps = _opsDone;
            _steadyEnded = true;
        }
    }

    private double SteadyBytesPerOp() =>
        _steadyEnded && _steadyEndOps > _steadyStartOps
            ? (double)(_steadyEndBytes - _steadyStartBytes) / (_steadyEndOps - _steadyStartOps)
            : double.NaN;

    // ---- ThreadPool ----

    private async ValueTask PoolAtDepth(long n, bool write, bool async)
    {
        long perWorker = n / Depth;
        var workers = new Task[Depth];
        for (int w = 0; w < Depth; w++)
        {
            int worker = w;
            workers[w] = async
                ? Task.Run(() => AsyncWorker(worker, perWorker, write))
                : Task.Run(() => SyncWorker(worker, perWorker, write).AsTask());
        }
        await Task.WhenAll(workers);
    }

    private async Task AsyncWorker(int worker, long n, bool write)
    {
        var handle = _asyncHandle!;
        var buffer = _buffers[worker];
        int next = worker * 4099;
        for (long i = 0; i < n; i++)
        {
            long offset = _offsets[next++ & OffsetMask];
            if (write) await RandomAccess.WriteAsync(handle, buffer, offset);
            else Check(await RandomAccess.ReadAsync(handle, buffer, offset));
        }
    }

    private ValueTask SyncWorker(int worker, long n, bool write)
    {
        var handle = _syncHandle!;
        var buffer = _buffers[worker].Span;
        int next = worker * 4099;
        for (long i = 0; i < n; i++)
        {
            long offset = _offsets[next++ & OffsetMask];
            if (write) RandomAccess.Write(handle, buffer, offset);
            else Check(RandomAccess.Read(handle, buffer, offset));
        }
        return default;
    }

    private static void Check(int read)
    {
        if (read != BlockSize) throw new InvalidOperationException($"Read {read} bytes instead of {BlockSize}.");
    }

    /// <summary>Closes everything (on the shard) and deletes the file.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_file is not null) await _file.DisposeAsync();
        _asyncHandle?.Dispose();
        _syncHandle?.Dispose();
        if (_directory is not null && Directory.Exists(_directory)) Directory.Delete(_directory, recursive: true);
    }
}

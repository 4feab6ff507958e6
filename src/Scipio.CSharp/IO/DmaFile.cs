using Scipio.Interop;
using Scipio.Ring;
using Scipio.Runtime;

namespace Scipio.IO;

/// <summary>A file opened with O_DIRECT: reads and writes go between the device and <see cref="DmaBuffer"/>s,
/// bypassing the page cache — what storage engines (logs, B-trees, caches) want. Every operation goes through the
/// shard's ring: to the poll ring where the device completes by polling (NVMe), to the main ring otherwise. A
/// <see cref="DmaBuffer"/> from this shard's pool is registered with its rings, so its reads and writes go as
/// IORING_OP_READ_FIXED / WRITE_FIXED (no page pinning per I/O); any other buffer as plain READ / WRITE.</summary>
/// <remarks>O_DIRECT needs offsets, lengths and buffer addresses aligned to <see cref="Alignment"/> (the device's
/// logical block size). The zero-copy <see cref="ReadAtAsync(DmaBuffer, long, CancellationToken)"/> and
/// <see cref="WriteAtAsync"/> check that and throw <see cref="ArgumentException"/> naming it;
/// <see cref="ReadAtAsync(long, int, CancellationToken)"/> takes any offset and length and aligns for you. A file
/// belongs to the shard that opened it. The descriptor is owned by a SafeHandle: a file never disposed is closed by
/// the finalizer.</remarks>
public sealed class DmaFile : IAsyncDisposable
{
    private readonly RingFile _file;
    private readonly ulong _device;
    private readonly FixedBuffers? _fixed; // the owning shard's registered buffers

    private DmaFile(RingFile file, int alignment, ulong device)
    {
        _file = file;
        Alignment = alignment;
        _device = device;
        _fixed = file.Owner.Backend.FixedBuffers;
    }

    /// <summary>The file's full path.</summary>
    public string Path => _file.Path;

    /// <summary>The alignment O_DIRECT needs here, in bytes: the file system's <c>stx_dio_offset_align</c> where the
    /// kernel reports it (6.1+), else the device's logical block size from sysfs, else 512.</summary>
    public int Alignment { get; }

    /// <summary>Opens an existing file for reading.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static ValueTask<DmaFile> OpenAsync(string path, CancellationToken cancellationToken = default) =>
        OpenAsync(path, FileMode.Open, FileAccess.Read, cancellationToken);

    /// <summary>Creates a file for reading and writing, truncating it if it exists.</summary>
    public static ValueTask<DmaFile> CreateAsync(string path, CancellationToken cancellationToken = default) =>
        OpenAsync(path, FileMode.Create, FileAccess.ReadWrite, cancellationToken);

    /// <summary>Opens or creates a file with O_DIRECT as <paramref name="mode"/> and <paramref name="access"/> say.</summary>
    /// <exception cref="ArgumentException">The path is empty, or the mode and access contradict each other, or the
    /// mode is Append.</exception>
    /// <exception cref="FileNotFoundException">Mode Open or Truncate and the file does not exist.</exception>
    /// <exception cref="UnauthorizedAccessException">The path is a directory, or permission is denied.</exception>
    /// <exception cref="KernelIOException">Another kernel error, such as EINVAL from a file system without O_DIRECT.</exception>
    public static async ValueTask<DmaFile> OpenAsync(string path, FileMode mode, FileAccess access, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = System.IO.Path.GetFullPath(path);
        int flags = OpenFlags.For(mode, access) | Libc.ODirect;
        var executor = ShardExecutor.Require("DmaFile.OpenAsync");
        cancellationToken.ThrowIfCancellationRequested();
        FileDescriptor handle;
        long dio;
        try { (handle, dio) = await RingFile.OpenAsync(executor, full, flags, PathOperation.StatxField.DioAlign, cancellationToken); }
        catch (KernelIOException e) when (e.Errno is Errno.EISDIR or Errno.EINVAL)
        {
            // O_DIRECT on a directory is EINVAL on ext4 and EISDIR for writing; EINVAL otherwise means the file system
            // cannot do O_DIRECT at all. Telling them apart is worth a stat on this error path.
            if (Directory.Exists(full)) throw RingFile.IsDirectory(full, "DmaFile", e);
            throw new KernelIOException($"open (O_DIRECT) '{full}' failed: EINVAL (22). The file system refuses O_DIRECT here; use BufferedFile, or put the file on a file system that supports direct I/O (ext4, XFS).", Errno.EINVAL);
        }
        try
        {
            ulong device = Files.DeviceKey(handle.Fd);
            int alignment = (int)(uint)dio is > 0 and var a ? a : LogicalBlockSize(device);
            return new DmaFile(new RingFile(executor, handle, full, "DmaFile"), alignment, device);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static int LogicalBlockSize(ulong device)
    {
        uint major = (uint)(device >> 32), minor = (uint)device;
        foreach (var path in new[] { $"/sys/dev/block/{major}:{minor}/queue/logical_block_size", $"/sys/dev/block/{major}:{minor}/../queue/logical_block_size" })
        {
            try { if (int.TryParse(File.ReadAllText(path).Trim(), out int size) && size > 0) return size; }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return 512;
    }

    /// <summary>A buffer for this file's I/O: <paramref name="length"/> rounded up to <see cref="Alignment"/>,
    /// page aligned, from the shard's pool.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is not 1 byte to 1 GiB.</exception>
    public DmaBuffer AllocateBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, 1 << 30);
        int aligned = AlignUp(length);
        return new DmaBuffer(DmaBufferPool.Rent(aligned), 0, aligned);
    }

    /// <summary>Reads into <paramref name="buffer"/> at <paramref name="offset"/>, zero-copy; returns the bytes read
    /// (fewer at the end of the file, 0 at or past it).</summary>
    /// <exception cref="ArgumentException">The offset, the buffer's length or its address is not aligned to
    /// <see cref="Alignment"/>.</exception>
    /// <exception cref="ObjectDisposedException">The file or the buffer was disposed.</exception>
    public ValueTask<int> ReadAtAsync(DmaBuffer buffer, long offset, CancellationToken cancellationToken = default)
    {
        var op = Begin("read (O_DIRECT)", buffer, offset, cancellationToken);
        if (op is null) return ValueTask.FromCanceled<int>(cancellationToken);
        int index = FixedIndex(buffer);
        if (index >= 0) op.PrepareReadFixed(_file.Fd.Fd, buffer.Address, buffer.Length, offset, index);
        else op.PrepareRead(_file.Fd.Fd, buffer.Address, buffer.Length, offset);
        _file.Owner.SubmitDirect(op, write: false, buffer.Length);
        return new ValueTask<int>(op, op.Version);
    }

    /// <summary>Writes all of <paramref name="buffer"/> at <paramref name="offset"/>, zero-copy.</summary>
    /// <exception cref="ArgumentException">The offset, the buffer's length or its address is not aligned to
    /// <see cref="Alignment"/>.</exception>
    /// <exception cref="ObjectDisposedException">The file or the buffer was disposed.</exception>
    public ValueTask WriteAtAsync(DmaBuffer buffer, long offset, CancellationToken cancellationToken = default)
    {
        var op = Begin("write (O_DIRECT)", buffer, offset, cancellationToken);
        if (op is null) return ValueTask.FromCanceled(cancellationToken);
        int index = FixedIndex(buffer);
        if (index >= 0) op.PrepareWriteFixed(_file.Fd.Fd, buffer.Address, buffer.Length, offset, index);
        else op.PrepareWrite(_file.Fd.Fd, buffer.Memory, offset);
        _file.Owner.SubmitDirect(op, write: true, buffer.Length);
        return new ValueTask(op, op.Version);
    }

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="offset"/>, any offset and length: the read
    /// is aligned for you and the returned buffer holds exactly the bytes asked for — fewer only at the end of the
    /// file. Dispose the buffer when done with it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The offset is negative, or the length negative or over 1 GiB.</exception>
    public async ValueTask<DmaBuffer> ReadAtAsync(long offset, int length, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, 1 << 30);
        _file.CheckUsable("read (O_DIRECT)");
        long start = offset / Alignment * Alignment;
        int skip = (int)(offset - start);
        int span = AlignUp(skip + Math.Max(length, 1));
        var block = DmaBufferPool.Rent(span);
        var whole = new DmaBuffer(block, 0, span);
        int read;
        try { read = await ReadAtAsync(whole, start, cancellationToken); }
        catch
        {
            whole.Dispose();
            throw;
        }
        return new DmaBuffer(block, skip, Math.Clamp(read - skip, 0, length));
    }

    /// <summary>Reads many ranges, merging adjacent, overlapping and duplicate ones into fewer aligned reads (up to
    /// the device's largest request and a read-amplification limit, a plan the core makes), with up to
    /// <see cref="ReadManyOptions.MaxInFlight"/> reads in flight. Results come in the order of
    /// <paramref name="ranges"/>, each a buffer of exactly its bytes (shorter only at the end of the file).</summary>
    /// <remarks>A range served alone gets the read's own buffer (no copy); ranges that share a read get copies of
    /// their bytes. Stopping the enumeration early waits for the reads in flight (the kernel owns their buffers until
    /// then) and releases everything not yet handed out; buffers already handed out are yours to dispose.</remarks>
    /// <exception cref="ArgumentOutOfRangeException">A range has a negative offset or length.</exception>
    public async IAsyncEnumerable<DmaReadResult> ReadManyAsync(
        IEnumerable<FileRange> ranges,
        ReadManyOptions? options = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        options ??= new ReadManyOptions();
        _file.CheckUsable("ReadManyAsync");
        var input = ranges.ToArray();
        var spans = new Core.FileSpan[input.Length];
        for (int i = 0; i < input.Length; i++)
        {
            if (input[i].Offset < 0 || input[i].Length < 0)
                throw new ArgumentOutOfRangeException(nameof(ranges), input[i], "A range's offset and length cannot be negative.");
            spans[i] = new Core.FileSpan(input[i].Offset, input[i].Length);
        }
        int maxRequest = Math.Max(Alignment, (options.MaxMergedSize ?? MaxDeviceRequest()) / Alignment * Alignment);
        var plan = Core.ReadPlanModule.plan(new Core.ReadPlanLimits(Alignment, maxRequest, options.MaxReadAmplification, 1024), spans);
        var results = new DmaBuffer?[input.Length];
        var inFlight = new Queue<(int Read, AlignedMemory Block, ValueTask<int> Pending)>();
        int issued = 0, next = 0;
        try
        {
            while (next < input.Length)
            {
                while (issued < plan.Reads.Length && inFlight.Count < options.MaxInFlight)
                {
                    var read = plan.Reads[issued];
                    var block = DmaBufferPool.Rent(Math.Max(read.Length, 1));
                    inFlight.Enqueue((issued, block, read.Length == 0
                        ? ValueTask.FromResult(0)
                        : ReadAtAsync(new DmaBuffer(block, 0, read.Length), read.Offset, cancellationToken)));
                    issued++;
                }
                if (results[next] is null)
                {
                    var (r, block, pending) = inFlight.Dequeue();
                    int bytes;
                    try { bytes = await pending; }
                    catch
                    {
                        DmaBufferPool.Return(block);
                        throw;
                    }
                    Distribute(plan, plan.Reads[r], block, bytes, input, results);
                    continue;
                }
                var result = results[next]!;
                results[next] = null;
                yield return new DmaReadResult(input[next++], result);
            }
        }
        finally
        {
            while (inFlight.Count > 0)
            {
                var (_, block, pending) = inFlight.Dequeue();
                try { await pending; } catch (Exception) { /* its error has nobody to go to now */ }
                DmaBufferPool.Return(block);
            }
            foreach (var left in results) left?.Dispose();
        }
    }

    /// <summary>Hands the bytes of a finished read to the ranges it served: the read's own buffer to a lone range,
    /// copies to ranges that share it (then the read's buffer goes back to the pool).</summary>
    private static void Distribute(Core.ReadPlan plan, Core.PlannedRead read, AlignedMemory block, int bytes, FileRange[] input, DmaBuffer?[] results)
    {
        for (int k = read.First; k < read.First + read.Count; k++)
        {
            int index = plan.Order[k];
            var range = input[index];
            int skip = (int)(range.Offset - read.Offset);
            int available = range.Length == 0 ? 0 : Math.Clamp(bytes - skip, 0, range.Length);
            if (read.Count == 1)
            {
                results[index] = new DmaBuffer(block, Math.Max(skip, 0), available);
                return;
            }
            var copy = DmaBufferPool.Rent(Math.Max(available, 1));
            block.GetSpan().Slice(Math.Max(skip, 0), available).CopyTo(copy.GetSpan());
            results[index] = new DmaBuffer(copy, 0, available);
        }
        DmaBufferPool.Return(block);
    }

    /// <summary>The device's largest request (sysfs max_sectors_kb), else 128 KiB.</summary>
    private int MaxDeviceRequest()
    {
        uint major = (uint)(_device >> 32), minor = (uint)_device;
        foreach (var path in new[] { $"/sys/dev/block/{major}:{minor}/queue/max_sectors_kb", $"/sys/dev/block/{major}:{minor}/../queue/max_sectors_kb" })
        {
            try { if (int.TryParse(File.ReadAllText(path).Trim(), out int kb) && kb > 0) return (int)Math.Min(kb * 1024L, 64 << 20); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return 128 << 10;
    }

    /// <summary>Makes written data durable: fdatasync through the ring.</summary>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
        => _file.FlushAsync(cancellationToken);

    /// <summary>The file's length in bytes (statx through the ring).</summary>
    public ValueTask<long> GetLengthAsync(CancellationToken cancellationToken = default)
        => _file.GetLengthAsync(cancellationToken);

    /// <summary>Sets the file's length: through the ring (IORING_OP_FTRUNCATE) where the kernel has it (6.9+), else on
    /// a helper thread.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative.</exception>
    public ValueTask SetLengthAsync(long length, CancellationToken cancellationToken = default)
        => _file.SetLengthAsync(length, cancellationToken);

    /// <summary>Reserves <paramref name="length"/> bytes of disk at <paramref name="offset"/> (fallocate through the
    /// ring): later writes there do not fail for lack of space, and the file grows to cover the range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The offset is negative or the length not positive.</exception>
    public ValueTask PreallocateAsync(long offset, long length, CancellationToken cancellationToken = default)
        => _file.PreallocateAsync(offset, length, cancellationToken);

    /// <summary>Cancels the file's pending operations and closes it through the ring. Later calls throw
    /// <see cref="ObjectDisposedException"/>; disposing twice does nothing.</summary>
    public ValueTask DisposeAsync() => _file.CloseAsync();

    private ReadWriteOperation? Begin(string what, DmaBuffer buffer, long offset, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (offset % Alignment != 0 || buffer.Length % Alignment != 0 || buffer.Address % Alignment != 0)
            throw new ArgumentException(
                $"O_DIRECT needs offsets, lengths and buffers aligned to {Alignment} bytes on this file; got offset {offset}, length {buffer.Length}. " +
                "Use AllocateBuffer for buffers, or ReadAtAsync(offset, length) for any range.", nameof(offset));
        var op = _file.Rent(what, ct);
        op?.SetDirect(_device);
        return op;
    }

    /// <summary>The buffer's index among the registered buffers of this file's shard, or -1 (plain READ / WRITE): a
    /// buffer from another shard, or one that could not be registered.</summary>
    private int FixedIndex(DmaBuffer buffer) => _fixed is { } table ? table.IndexFor(buffer.Block) : -1;

    private int AlignUp(int length) => (int)((length + (long)Alignment - 1) / Alignment * Alignment);

    /// <inheritdoc/>
    public override string ToString() => $"DmaFile '{Path}' (alignment {Alignment})";
}

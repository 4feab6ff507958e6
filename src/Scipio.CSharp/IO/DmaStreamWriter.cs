using System.Runtime.CompilerServices;
using Scipio.Runtime;

namespace Scipio.IO;

/// <summary>A <see cref="Stream"/> that writes a <see cref="DmaFile"/> sequentially with write-behind: each write is
/// copied into an aligned buffer of <see cref="DmaStreamOptions.BufferSize"/>, and each full buffer is submitted at
/// once while the caller goes on filling the next — up to <see cref="DmaStreamOptions.InFlight"/> writes in flight.
/// <see cref="FlushAsync(CancellationToken)"/> makes everything written so far durable.</summary>
/// <remarks>
/// <para><b>Asynchronous only, and shard-bound.</b> Use <see cref="WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>,
/// <see cref="FlushAsync(CancellationToken)"/> and <see cref="DisposeAsync"/> (<c>await using</c>): synchronous writes
/// and flushes would block the shard, so they throw <see cref="NotSupportedException"/>. The stream belongs to the
/// shard its file belongs to. One operation at a time: another call while one is pending throws
/// <see cref="InvalidOperationException"/>.</para>
/// <para><b>What a flush guarantees.</b> When <see cref="FlushAsync(CancellationToken)"/> returns, every byte written
/// before it is on the device (fdatasync) and the file's length is exactly <see cref="Length"/>: the writes in flight
/// are awaited, the partial buffer is written, the length is set and the file is synced. Until then written bytes
/// may be in the buffer or in flight, and a crash may lose them. A write that fails surfaces from a later
/// <see cref="WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/> or from the flush; the stream then refuses to go
/// on.</para>
/// <para><b>Alignment.</b> O_DIRECT writes whole blocks of <see cref="DmaFile.Alignment"/>. A tail that is not a
/// whole block is written as one, padded with zeros, and the file's length is then set exactly with
/// <see cref="DmaFile.SetLengthAsync"/>. The tail stays in the buffer: when more bytes arrive, its block is written
/// again with them. A start <see cref="DmaStreamOptions.Position"/> that is not aligned is handled by reading the
/// bytes of its block before it first (the file must then be open for reading as well).</para>
/// <para><b>The file ends where the stream ends.</b> The stream writes from its start position on; the first flush
/// sets the file's length to <see cref="Length"/>, cutting whatever the file held past it.</para>
/// <para><b>Not seekable.</b> <see cref="CanSeek"/> is false; <see cref="Position"/> and <see cref="Length"/> are
/// both the file offset just past the last byte written.</para>
/// </remarks>
public sealed class DmaStreamWriter : Stream
{
    private sealed class Slot(DmaBuffer buffer)
    {
        public readonly DmaBuffer Buffer = buffer;
        public ValueTask Pending;
        public bool InFlight;
    }

    private readonly DmaFile _file;
    private readonly int _bufferSize;
    private readonly int _inFlight;
    private readonly int _alignment;
    private Slot[]? _slots;
    private int _current;       // the slot being filled; the next ones in ring order are the oldest in flight
    private int _fill;          // bytes in the current slot, from _bufferOffset
    private long _bufferOffset; // the file offset of the current slot's first byte (aligned)
    private long _position;
    private bool _dirty;        // bytes written since the last flush
    private bool _lengthSet;    // a flush has set the file's length: from then on the file ends at the last flush
    private bool _busy;
    private bool _disposed;
    private Exception? _failure;

    /// <summary>A writer of <paramref name="file"/> from <see cref="DmaStreamOptions.Position"/> (default 0) on.
    /// Nothing is written until the first buffer fills or the first flush.</summary>
    /// <param name="file">The file, open for writing; it must stay open while the writer is used. The writer does
    /// not dispose it.</param>
    /// <param name="options">Buffer size, write-behind depth and start offset; null for the defaults.</param>
    /// <exception cref="ArgumentNullException"><paramref name="file"/> is null.</exception>
    /// <exception cref="InvalidOperationException">Called off a shard.</exception>
    public DmaStreamWriter(DmaFile file, DmaStreamOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        ShardExecutor.Require("new DmaStreamWriter()");
        options ??= new DmaStreamOptions();
        _file = file;
        _alignment = file.Alignment;
        _bufferSize = (int)((options.BufferSize + (long)_alignment - 1) / _alignment * _alignment);
        _inFlight = options.InFlight;
        _position = options.Position;
    }

    /// <summary>The file written.</summary>
    public DmaFile File => _file;

    /// <summary>The bytes of each write: <see cref="DmaStreamOptions.BufferSize"/> rounded up to the file's
    /// <see cref="DmaFile.Alignment"/>.</summary>
    public int BufferSize => _bufferSize;

    /// <summary>False.</summary>
    public override bool CanRead => false;

    /// <summary>False: the writer writes forward only.</summary>
    public override bool CanSeek => false;

    /// <summary>True until the writer is disposed.</summary>
    public override bool CanWrite => !_disposed;

    /// <summary>The length the file has after the next flush: the file offset just past the last byte written (the
    /// start <see cref="DmaStreamOptions.Position"/> plus the bytes written).</summary>
    public override long Length => _position;

    /// <summary>The file offset the next byte written goes to. Setting it is not supported.</summary>
    /// <exception cref="NotSupportedException">On set.</exception>
    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException("DmaStreamWriter does not seek; start a new writer with DmaStreamOptions.Position instead.");
    }

    /// <summary>Copies <paramref name="buffer"/> into the write-behind buffers, submitting each that fills; returns
    /// at once unless it must wait for a buffer (all <see cref="DmaStreamOptions.InFlight"/> writes in flight) or,
    /// the first time from an unaligned start position, for the read of the bytes before it. The bytes are durable
    /// only after <see cref="FlushAsync(CancellationToken)"/>.</summary>
    /// <exception cref="ObjectDisposedException">The writer was disposed.</exception>
    /// <exception cref="InvalidOperationException">Another call on this writer is still pending.</exception>
    /// <exception cref="IOException">A write failed (a <see cref="KernelIOException"/> with the
    /// errno), now or earlier: the file misses data and the writer cannot go on.</exception>
    /// <remarks>The token is observed when the call starts; writes already submitted are not canceled by it.</remarks>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Check();
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
        if (buffer.IsEmpty) return default;
        if (_slots is { } slots && _fill + buffer.Length < _bufferSize)
        {
            buffer.Span.CopyTo(slots[_current].Buffer.Span.Slice(_fill));
            _fill += buffer.Length;
            _position += buffer.Length;
            _dirty = true;
            return default;
        }
        return WriteSlowAsync(buffer);
    }

    /// <inheritdoc cref="WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteSlowAsync(ReadOnlyMemory<byte> buffer)
    {
        _busy = true;
        try
        {
            if (_slots is null) await StartAsync();
            var slots = _slots!;
            while (!buffer.IsEmpty)
            {
                int n = Math.Min(buffer.Length, _bufferSize - _fill);
                buffer.Span.Slice(0, n).CopyTo(slots[_current].Buffer.Span.Slice(_fill));
                buffer = buffer.Slice(n);
                _fill += n;
                _position += n;
                _dirty = true;
                if (_fill == _bufferSize) await SubmitCurrentAsync(slots);
            }
        }
        finally { _busy = false; }
    }

    /// <summary>Returns when every byte written so far is durable and the file's length is exactly
    /// <see cref="Length"/>: waits for the writes in flight, writes the partial buffer (its last block padded with
    /// zeros), sets the length where the last block is partial (and on the first flush), then fdatasync. Does nothing
    /// when nothing was written since the last flush.</summary>
    /// <exception cref="ObjectDisposedException">The writer was disposed.</exception>
    /// <exception cref="InvalidOperationException">Another call on this writer is still pending.</exception>
    /// <exception cref="IOException">A write, the length change or the sync failed, now or earlier.</exception>
    /// <remarks>The token is observed when the call starts.</remarks>
    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        Check();
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled(cancellationToken);
        if (!_dirty) return Task.CompletedTask;
        return FlushCoreAsync().AsTask();
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FlushCoreAsync()
    {
        _busy = true;
        try
        {
            if (_slots is null) await StartAsync();
            var slots = _slots!;
            for (int i = 1; i <= slots.Length; i++) await CompleteAsync(slots[(_current + i) % slots.Length]);
            if (_fill > 0)
            {
                int padded = (int)((_fill + (long)_alignment - 1) / _alignment * _alignment);
                var current = slots[_current].Buffer;
                current.Span.Slice(_fill, padded - _fill).Clear(); // no stale pool bytes past the end, even briefly
                try
                {
                    if (padded == _bufferSize) await _file.WriteAtAsync(current, _bufferOffset);
                    else
                    {
                        // O_DIRECT needs a buffer of exactly the padded length: the tail's copy (the current buffer
                        // keeps the tail, to be written again whole when more bytes arrive).
                        using var tail = _file.AllocateBuffer(padded);
                        current.Span.Slice(0, padded).CopyTo(tail.Span);
                        await _file.WriteAtAsync(tail, _bufferOffset);
                    }
                }
                catch (Exception e)
                {
                    _failure = e;
                    throw;
                }
            }
            try
            {
                if (_position % _alignment != 0 || !_lengthSet)
                {
                    await _file.SetLengthAsync(_position);
                    _lengthSet = true;
                }
                await _file.FlushAsync();
            }
            catch (Exception e)
            {
                _failure = e;
                throw;
            }
            _dirty = false;
        }
        finally { _busy = false; }
    }

    /// <summary>Flushes (<see cref="FlushAsync(CancellationToken)"/>: the data and the exact length made durable),
    /// then gives the buffers back to the shard's pool. The file stays open. The buffers are given back also when
    /// the flush fails, and its exception is then thrown. Later calls throw <see cref="ObjectDisposedException"/>;
    /// disposing twice does nothing.</summary>
    /// <exception cref="InvalidOperationException">A call on this writer is still pending.</exception>
    public override async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        if (_busy) throw new InvalidOperationException("A call on this DmaStreamWriter is still pending: await it before disposing.");
        try
        {
            if (_dirty && _failure is null) await FlushCoreAsync();
        }
        finally
        {
            _disposed = true;
            if (_slots is { } slots)
            {
                _slots = null;
                foreach (var slot in slots)
                {
                    if (slot.InFlight)
                    {
                        slot.InFlight = false;
                        try { await slot.Pending; }
                        catch (Exception) { } // after a failure: the failure was thrown already
                    }
                    slot.Buffer.Dispose();
                }
            }
            GC.SuppressFinalize(this);
        }
    }

    /// <summary>Disposes synchronously, which cannot flush: each buffer goes back to the pool when its write in
    /// flight completes. Use <see cref="DisposeAsync"/> (<c>await using</c>).</summary>
    /// <exception cref="InvalidOperationException">Bytes written since the last flush are lost: say which, and what
    /// to use instead; or a call on this writer is still pending.</exception>
    protected override void Dispose(bool disposing)
    {
        if (!disposing || _disposed) return;
        if (_busy) throw new InvalidOperationException("A call on this DmaStreamWriter is still pending: await it before disposing.");
        _disposed = true;
        if (_slots is { } slots)
        {
            _slots = null;
            foreach (var slot in slots)
            {
                if (slot.InFlight)
                {
                    slot.InFlight = false;
                    _ = ReleaseWhenDone(slot.Pending, slot.Buffer);
                }
                else slot.Buffer.Dispose();
            }
        }
        if (_dirty && _failure is null)
            throw new InvalidOperationException(
                $"DmaStreamWriter of '{_file.Path}' was disposed synchronously with bytes written since the last flush (up to offset {_position}); they may be lost. " +
                "Dispose it with DisposeAsync (await using), which flushes, or await FlushAsync first.");
    }

    private static async Task ReleaseWhenDone(ValueTask pending, DmaBuffer buffer)
    {
        try { await pending; }
        catch (Exception) { }
        finally { buffer.Dispose(); }
    }

    /// <summary>Not supported: a synchronous write would block the shard. Use
    /// <see cref="WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override void Write(ReadOnlySpan<byte> buffer) => throw SyncWrite();

    /// <summary>Not supported: a synchronous write would block the shard. Use
    /// <see cref="WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override void Write(byte[] buffer, int offset, int count) => throw SyncWrite();

    /// <summary>Not supported: a synchronous write would block the shard. Use
    /// <see cref="WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override void WriteByte(byte value) => throw SyncWrite();

    /// <summary>Does nothing when nothing was written since the last flush; otherwise not supported (a synchronous
    /// flush would block the shard): use <see cref="FlushAsync(CancellationToken)"/>.</summary>
    /// <exception cref="NotSupportedException">Bytes were written since the last flush.</exception>
    public override void Flush()
    {
        if (_dirty && !_disposed)
            throw new NotSupportedException("DmaStreamWriter flushes only asynchronously: a synchronous Flush would block the shard. Use FlushAsync.");
    }

    /// <summary>Not supported: the writer does not read.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("DmaStreamWriter is write-only; use DmaStreamReader to read.");

    /// <summary>Not supported: the writer writes forward only.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override long Seek(long offset, SeekOrigin origin) =>
        throw new NotSupportedException("DmaStreamWriter does not seek; start a new writer with DmaStreamOptions.Position instead.");

    /// <summary>Not supported: the file ends where the stream ends (set at each flush).</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override void SetLength(long value) =>
        throw new NotSupportedException("DmaStreamWriter sets the file's length itself at each flush; use DmaFile.SetLengthAsync after disposing the writer.");

    /// <inheritdoc/>
    public override string ToString() => $"DmaStreamWriter '{_file.Path}' at {_position}";

    private static NotSupportedException SyncWrite() =>
        new("DmaStreamWriter writes only asynchronously: a synchronous Write would block the shard. Use WriteAsync, and FlushAsync/DisposeAsync.");

    /// <summary>Allocates the buffers; from an unaligned start, reads the bytes of its block before it into the
    /// first buffer (zeros where the file ends before them).</summary>
    private async ValueTask StartAsync()
    {
        var slots = new Slot[_inFlight + 1];
        try
        {
            for (int i = 0; i < slots.Length; i++) slots[i] = new Slot(_file.AllocateBuffer(_bufferSize));
            _bufferOffset = _position / _alignment * _alignment;
            int before = (int)(_position - _bufferOffset);
            if (before > 0)
            {
                using var head = await _file.ReadAtAsync(_bufferOffset, before);
                var first = slots[0].Buffer.Span;
                head.Span.CopyTo(first);
                first.Slice(head.Length, before - head.Length).Clear();
            }
            _fill = before;
        }
        catch
        {
            foreach (var slot in slots) slot?.Buffer.Dispose();
            throw;
        }
        _slots = slots;
        _current = 0;
    }

    /// <summary>Submits the full current buffer and moves to the next, waiting for that one's write if it is still
    /// in flight.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SubmitCurrentAsync(Slot[] slots)
    {
        var slot = slots[_current];
        try { slot.Pending = _file.WriteAtAsync(slot.Buffer, _bufferOffset); }
        catch (Exception e)
        {
            _failure = e;
            throw;
        }
        slot.InFlight = true;
        _bufferOffset += _bufferSize;
        _fill = 0;
        _current = (_current + 1) % slots.Length;
        await CompleteAsync(slots[_current]);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask CompleteAsync(Slot slot)
    {
        if (!slot.InFlight) return;
        slot.InFlight = false;
        try { await slot.Pending; }
        catch (Exception e)
        {
            _failure = e;
            throw;
        }
    }

    private void Check()
    {
        if (_disposed) throw new ObjectDisposedException(nameof(DmaStreamWriter), $"This DmaStreamWriter of '{_file.Path}' was disposed.");
        if (_busy) throw new InvalidOperationException("A call on this DmaStreamWriter is still pending: await it before the next (a stream does one operation at a time).");
        if (_failure is { } failure)
            throw new IOException($"An earlier write to '{_file.Path}' by this DmaStreamWriter failed ({failure.Message}); the file misses data and the writer cannot go on. Dispose it.", failure);
    }
}

using System.Runtime.CompilerServices;
using Scipio.Runtime;

namespace Scipio.IO;

/// <summary>A <see cref="Stream"/> that reads a <see cref="DmaFile"/> sequentially with read-ahead: it keeps
/// <see cref="DmaStreamOptions.InFlight"/> aligned reads of <see cref="DmaStreamOptions.BufferSize"/> in flight ahead
/// of the buffer the caller is draining, so that a consumer (a parser, <see cref="StreamReader"/>, a decompressor,
/// <see cref="Stream.CopyToAsync(Stream)"/>) rarely waits for the device.</summary>
/// <remarks>
/// <para><b>Asynchronous only, and shard-bound.</b> Use <see cref="ReadAsync(Memory{byte}, CancellationToken)"/> or
/// <see cref="CopyToAsync(Stream, int, CancellationToken)"/>: a synchronous <see cref="Read(Span{byte})"/> would block
/// the shard, so it throws <see cref="NotSupportedException"/>. The stream belongs to the shard its file belongs to;
/// its reads resume there. One operation at a time: a second read while one is pending throws
/// <see cref="InvalidOperationException"/>.</para>
/// <para><b>Alignment.</b> Reads are issued with <see cref="DmaFile.ReadAtAsync(DmaBuffer, long, CancellationToken)"/>
/// on offsets aligned to <see cref="DmaFile.Alignment"/>. A start <see cref="DmaStreamOptions.Position"/> that is not
/// aligned is read from the aligned offset below it; the bytes before it are skipped. The end of the file is where
/// a read comes back short; the stream then returns 0.</para>
/// <para><b>Not seekable.</b> <see cref="CanSeek"/> is false and <see cref="Length"/> throws (use
/// <see cref="DmaFile.GetLengthAsync"/>); <see cref="Position"/> reads as the file offset of the next byte returned.
/// To read from elsewhere, make another reader with another <see cref="DmaStreamOptions.Position"/>.</para>
/// <para><b>Disposal.</b> <see cref="DisposeAsync"/> waits for the read-ahead still in flight and gives the buffers
/// back to the shard's pool; it does not dispose the file. A synchronous <see cref="Stream.Dispose()"/> gives each
/// buffer back when its read completes. Dispose the reader before its file.</para>
/// </remarks>
public sealed class DmaStreamReader : Stream
{
    private sealed class Slot(DmaBuffer buffer)
    {
        public readonly DmaBuffer Buffer = buffer;
        public ValueTask<int> Pending;
        public bool InFlight;
        public long Offset;
        public bool Ready; // Pending was awaited: Count bytes at Offset are in Buffer
        public int Count;
        public int Consumed;
    }

    private readonly DmaFile _file;
    private readonly int _bufferSize;
    private readonly int _inFlight;
    private Slot[]? _slots;
    private int _head;              // the slot the caller drains; the others follow it in ring order
    private long _nextOffset;       // where the next read is issued
    private int _skip;              // bytes before the start Position in the first block
    private bool _endAfterHead;     // the head's read came back short and unaligned (or empty): the file ends there
    private long _restartAt = -1;   // the head's read came back short but aligned: read on from here once it is drained
    private bool _eof;
    private long _position;
    private bool _busy;
    private bool _disposed;
    private Exception? _failure;

    /// <summary>A reader of <paramref name="file"/> from <see cref="DmaStreamOptions.Position"/> (default 0) to its
    /// end. Nothing is read until the first <see cref="ReadAsync(Memory{byte}, CancellationToken)"/>.</summary>
    /// <param name="file">The file; it must stay open while the reader is used. The reader does not dispose it.</param>
    /// <param name="options">Buffer size, read-ahead depth and start offset; null for the defaults.</param>
    /// <exception cref="ArgumentNullException"><paramref name="file"/> is null.</exception>
    /// <exception cref="InvalidOperationException">Called off a shard.</exception>
    public DmaStreamReader(DmaFile file, DmaStreamOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        ShardExecutor.Require("new DmaStreamReader()");
        options ??= new DmaStreamOptions();
        _file = file;
        _bufferSize = AlignUp(options.BufferSize, file.Alignment);
        _inFlight = options.InFlight;
        _position = options.Position;
        _nextOffset = options.Position / file.Alignment * file.Alignment;
        _skip = (int)(options.Position - _nextOffset);
    }

    /// <summary>The file read.</summary>
    public DmaFile File => _file;

    /// <summary>The bytes of each read: <see cref="DmaStreamOptions.BufferSize"/> rounded up to the file's
    /// <see cref="DmaFile.Alignment"/>.</summary>
    public int BufferSize => _bufferSize;

    /// <summary>True until the reader is disposed.</summary>
    public override bool CanRead => !_disposed;

    /// <summary>False: the reader reads forward only.</summary>
    public override bool CanSeek => false;

    /// <summary>False.</summary>
    public override bool CanWrite => false;

    /// <summary>Not supported: the reader does not seek. Use <see cref="DmaFile.GetLengthAsync"/>.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override long Length =>
        throw new NotSupportedException("DmaStreamReader does not seek and has no Length; use DmaFile.GetLengthAsync for the file's length.");

    /// <summary>The file offset of the next byte a read returns (the start <see cref="DmaStreamOptions.Position"/>
    /// plus the bytes returned so far). Setting it is not supported.</summary>
    /// <exception cref="NotSupportedException">On set.</exception>
    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException("DmaStreamReader does not seek; start a new reader with DmaStreamOptions.Position instead.");
    }

    /// <summary>Reads up to <paramref name="buffer"/>'s length of bytes: those already read ahead at once, otherwise
    /// when the next read completes. Returns 0 at the end of the file.</summary>
    /// <exception cref="ObjectDisposedException">The reader was disposed.</exception>
    /// <exception cref="InvalidOperationException">Another read on this reader is still pending.</exception>
    /// <exception cref="IOException">A read failed (a <see cref="KernelIOException"/> with the
    /// errno), now or earlier: the reader cannot go on.</exception>
    /// <remarks>The token is observed when the call starts; a read already in flight is not canceled by it (it
    /// belongs to the read-ahead).</remarks>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Check();
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<int>(cancellationToken);
        if (_eof) return new ValueTask<int>(0);
        var slots = _slots;
        if (slots is not null && slots[_head] is { Ready: true } head && head.Consumed < head.Count)
            return new ValueTask<int>(CopyFromHead(buffer.Span));
        return ReadSlowAsync(buffer);
    }

    /// <inheritdoc cref="ReadAsync(Memory{byte}, CancellationToken)"/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadSlowAsync(Memory<byte> buffer)
    {
        _busy = true;
        try
        {
            if (!await FillHeadAsync()) return 0;
            return CopyFromHead(buffer.Span);
        }
        finally { _busy = false; }
    }

    /// <summary>Copies the rest of the file to <paramref name="destination"/>, straight from the read buffers (no
    /// intermediate copy), awaiting each write before the buffer goes back to the read-ahead.</summary>
    /// <param name="destination">Where the bytes go.</param>
    /// <param name="bufferSize">Ignored: the reader's own buffers are used.</param>
    /// <param name="cancellationToken">Observed between writes, and passed to the destination's writes.</param>
    /// <exception cref="ObjectDisposedException">The reader was disposed.</exception>
    /// <exception cref="IOException">A read failed.</exception>
    public override async Task CopyToAsync(Stream destination, int bufferSize, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        Check();
        _busy = true;
        try
        {
            while (await FillHeadAsync())
            {
                cancellationToken.ThrowIfCancellationRequested();
                var head = _slots![_head];
                int count = head.Count - head.Consumed;
                await destination.WriteAsync(head.Buffer.Memory.Slice(head.Consumed, count), cancellationToken);
                head.Consumed += count;
                _position += count;
                AdvanceIfDrained();
            }
        }
        finally { _busy = false; }
    }

    /// <summary>Waits for the read-ahead still in flight and gives the buffers back to the shard's pool. The file
    /// stays open. Later calls throw <see cref="ObjectDisposedException"/>; disposing twice does nothing.</summary>
    /// <exception cref="InvalidOperationException">A read on this reader is still pending.</exception>
    public override async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        if (_busy) throw new InvalidOperationException("A read on this DmaStreamReader is still pending: await it before disposing.");
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
                    catch (Exception) { } // read-ahead nobody will consume; its error does not matter now
                }
                slot.Buffer.Dispose();
            }
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes synchronously: each buffer goes back to the pool when its read in flight completes (the
    /// kernel writes into it until then). Prefer <see cref="DisposeAsync"/>.</summary>
    /// <exception cref="InvalidOperationException">A read on this reader is still pending.</exception>
    protected override void Dispose(bool disposing)
    {
        if (!disposing || _disposed) return;
        if (_busy) throw new InvalidOperationException("A read on this DmaStreamReader is still pending: await it before disposing.");
        _disposed = true;
        if (_slots is not { } slots) return;
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

    private static async Task ReleaseWhenDone(ValueTask<int> pending, DmaBuffer buffer)
    {
        try { await pending; }
        catch (Exception) { }
        finally { buffer.Dispose(); }
    }

    /// <summary>Not supported: a synchronous read would block the shard. Use
    /// <see cref="ReadAsync(Memory{byte}, CancellationToken)"/>.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override int Read(Span<byte> buffer) => throw SyncRead();

    /// <summary>Not supported: a synchronous read would block the shard. Use
    /// <see cref="ReadAsync(Memory{byte}, CancellationToken)"/>.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override int Read(byte[] buffer, int offset, int count) => throw SyncRead();

    /// <summary>Not supported: a synchronous read would block the shard. Use
    /// <see cref="ReadAsync(Memory{byte}, CancellationToken)"/>.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override int ReadByte() => throw SyncRead();

    /// <summary>Not supported: the reader reads forward only.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override long Seek(long offset, SeekOrigin origin) =>
        throw new NotSupportedException("DmaStreamReader does not seek; start a new reader with DmaStreamOptions.Position instead.");

    /// <summary>Not supported: the reader does not write.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override void SetLength(long value) => throw new NotSupportedException("DmaStreamReader is read-only.");

    /// <summary>Not supported: the reader does not write.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("DmaStreamReader is read-only; use DmaStreamWriter to write.");

    /// <summary>Does nothing: a reader has nothing to flush.</summary>
    public override void Flush() { }

    /// <summary>Does nothing: a reader has nothing to flush.</summary>
    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public override string ToString() => $"DmaStreamReader '{_file.Path}' at {_position}";

    private static NotSupportedException SyncRead() =>
        new("DmaStreamReader reads only asynchronously: a synchronous Read would block the shard. Use ReadAsync or CopyToAsync.");

    private int CopyFromHead(Span<byte> destination)
    {
        var head = _slots![_head];
        int count = Math.Min(destination.Length, head.Count - head.Consumed);
        head.Buffer.Span.Slice(head.Consumed, count).CopyTo(destination);
        head.Consumed += count;
        _position += count;
        AdvanceIfDrained();
        return count;
    }

    /// <summary>Once the head is drained, sends it back out as the last read of the read-ahead and moves on to the
    /// next — unless the file ended or a short read asks for a restart (<see cref="FillHeadAsync"/> does that).</summary>
    private void AdvanceIfDrained()
    {
        var slots = _slots!;
        var head = slots[_head];
        if (!head.Ready || head.Consumed < head.Count) return;
        if (_endAfterHead)
        {
            _eof = true;
            return;
        }
        if (_restartAt >= 0) return;
        head.Ready = false;
        Issue(head);
        _head = (_head + 1) % slots.Length;
    }

    /// <summary>Makes the head hold bytes not yet returned; false at the end of the file.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> FillHeadAsync()
    {
        if (_slots is null) Start();
        var slots = _slots!;
        while (true)
        {
            if (_eof) return false;
            var head = slots[_head];
            if (head.Ready)
            {
                if (head.Consumed < head.Count) return true;
                if (_endAfterHead)
                {
                    _eof = true;
                    return false;
                }
                if (_restartAt >= 0)
                {
                    await RestartAsync(slots);
                    continue;
                }
                AdvanceIfDrained();
                continue;
            }
            if (!head.InFlight)
            {
                _eof = true; // nothing was issued here: reading stopped at the end
                return false;
            }
            head.InFlight = false;
            int n;
            try { n = await head.Pending; }
            catch (Exception e)
            {
                _failure = e;
                throw;
            }
            head.Ready = true;
            head.Count = n;
            head.Consumed = Math.Min(_skip, n);
            _skip = 0;
            if (n < _bufferSize)
            {
                if (n == 0 || n % _file.Alignment != 0) _endAfterHead = true;
                else _restartAt = head.Offset + n; // short but aligned: the end, or a short read mid-file
            }
        }
    }

    /// <summary>After a short aligned read: drops the read-ahead past it (waiting for it) and reads on from where
    /// the short read ended. At the end of the file, the next read comes back empty.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask RestartAsync(Slot[] slots)
    {
        foreach (var slot in slots)
        {
            if (!slot.InFlight) continue;
            slot.InFlight = false;
            try { await slot.Pending; }
            catch (Exception) { } // speculative: the restart reads this range again
        }
        _nextOffset = _restartAt;
        _restartAt = -1;
        slots[_head].Ready = false;
        _head = (_head + 1) % slots.Length;
        for (int i = 0; i < slots.Length; i++) Issue(slots[(_head + i) % slots.Length]);
    }

    private void Start()
    {
        var slots = new Slot[_inFlight + 1];
        try
        {
            for (int i = 0; i < slots.Length; i++) slots[i] = new Slot(_file.AllocateBuffer(_bufferSize));
        }
        catch
        {
            foreach (var slot in slots) slot?.Buffer.Dispose();
            throw;
        }
        _slots = slots;
        _head = 0;
        foreach (var slot in slots) Issue(slot);
    }

    private void Issue(Slot slot)
    {
        slot.Offset = _nextOffset;
        slot.Count = slot.Consumed = 0;
        try { slot.Pending = _file.ReadAtAsync(slot.Buffer, _nextOffset); }
        catch (Exception e)
        {
            _failure = e;
            throw;
        }
        slot.InFlight = true;
        _nextOffset += _bufferSize;
    }

    private void Check()
    {
        if (_disposed) throw new ObjectDisposedException(nameof(DmaStreamReader), $"This DmaStreamReader of '{_file.Path}' was disposed.");
        if (_busy) throw new InvalidOperationException("A read on this DmaStreamReader is still pending: await it before the next (a stream does one operation at a time).");
        if (_failure is { } failure)
            throw new IOException($"An earlier read of '{_file.Path}' by this DmaStreamReader failed ({failure.Message}); the reader cannot go on. Dispose it.", failure);
    }

    private static int AlignUp(int length, int alignment) => (int)((length + (long)alignment - 1) / alignment * alignment);
}

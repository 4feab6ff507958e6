namespace Scipio.Net;

/// <summary><see cref="SocketStream.AsStream"/>: a <see cref="Stream"/> over a connection. Async members only; the
/// synchronous ones would block the shard.</summary>
internal sealed class SocketStreamAdapter(SocketStream connection) : Stream
{
    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        connection.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        connection.ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        connection.WriteAsync(buffer, cancellationToken);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        connection.WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask; // writes are not buffered

    public override void Flush() { }

    public override int Read(byte[] buffer, int offset, int count) => throw Synchronous();

    public override void Write(byte[] buffer, int offset, int count) => throw Synchronous();

    public override long Length => throw new NotSupportedException("A socket has no length.");

    public override long Position
    {
        get => throw new NotSupportedException("A socket has no position.");
        set => throw new NotSupportedException("A socket has no position.");
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("A socket cannot seek.");

    public override void SetLength(long value) => throw new NotSupportedException("A socket has no length.");

    private static NotSupportedException Synchronous() =>
        new("A Scipio connection's stream is asynchronous only: a synchronous read or write would block the shard. Use ReadAsync/WriteAsync.");
}

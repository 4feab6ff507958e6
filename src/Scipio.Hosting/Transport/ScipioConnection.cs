using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Scipio.Net;

namespace Scipio.Hosting.Transport;

/// <summary>One accepted connection as Kestrel sees it: a <see cref="ConnectionContext"/> whose transport is a pair of
/// pipes that the shard fills from the socket and drains to it. Everything that touches the socket runs on the shard
/// that accepted it; the pipes resume their readers and writers there too (<see cref="ShardTransport"/>).</summary>
/// <remarks>
/// <para>Close, abort and the <see cref="ConnectionClosed"/> token follow Kestrel's Sockets transport: the receive loop
/// ends on FIN, a reset or the socket's close, completes the input (with the reason the connection was shut down, if
/// it was) and fires <see cref="ConnectionClosed"/>; the send loop ends when the application completes the output or
/// <see cref="Abort(ConnectionAbortedException)"/> cancels it, and then shuts the socket down: a FIN (shutdown, close)
/// when the output completed cleanly, a reset (SO_LINGER 0, close) when it ended with an error or an abort.
/// <see cref="DisposeAsync"/> completes the application's sides and waits for both loops.</para>
/// <para>Abort may come from any thread (Kestrel's heartbeat times connections out on its own): its reason is taken at
/// once, the socket's close is posted to the shard.</para>
/// </remarks>
internal sealed class ScipioConnection : ConnectionContext,
    IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature, IMemoryPoolFeature,
    IConnectionLifetimeFeature, IConnectionEndPointFeature, IShardConnectionFeature
{
    /// <summary>Kestrel's own minimum: a read asks the pipe for at least half a block.</summary>
    private const int MinAllocBufferSize = ShardMemoryPool.BlockSize / 2;

    /// <summary>A send of a response held in several pipe segments copies them together up to this size, so that one
    /// send (one SQE, one CQE) carries them instead of one each.</summary>
    private const int GatherLimit = 64 << 10;

    private static readonly SendOrPostCallback s_closeAbortively = static c => ((ScipioConnection)c!).CloseOnShard();
    private static readonly SendOrPostCallback s_fireClosed = static c => ((ScipioConnection)c!).CancelConnectionClosed();

    private readonly SocketStream _socket;
    private readonly ShardTransport _shard;
    private readonly Pipe _input, _output;
    private readonly IDuplexPipe _originalTransport;
    private readonly CancellationTokenSource _closedSource = new();
    private readonly TaskCompletionSource _closedFired = new();
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly FeatureCollection _features = new();
    private volatile Exception? _shutdownReason;
    private bool _socketClosing, _closedFiring; // shard only
    private string? _connectionId;
    private IDictionary<object, object?>? _items;

    /// <summary>On the shard that accepted <paramref name="socket"/>.</summary>
    public ScipioConnection(SocketStream socket, ShardTransport shard)
    {
        _socket = socket;
        _shard = shard;
        _input = new Pipe(shard.InputOptions);
        _output = new Pipe(shard.OutputOptions);
        _originalTransport = Transport = new DuplexPipe(new ShardPipeReader(_input.Reader, shard.Queue), _output.Writer);
        ConnectionClosed = _closedSource.Token;
        switch (socket)
        {
            case TcpStream tcp:
                if (!shard.NoDelay) tcp.NoDelay = false; // accepted with TCP_NODELAY on
                LocalEndPoint = tcp.LocalEndPoint;
                RemoteEndPoint = tcp.RemoteEndPoint;
                break;
            case UnixStream unix:
                LocalEndPoint = unix.LocalEndPoint;
                RemoteEndPoint = unix.RemoteEndPoint;
                break;
        }
        _features.Set<IConnectionIdFeature>(this);
        _features.Set<IConnectionTransportFeature>(this);
        _features.Set<IConnectionItemsFeature>(this);
        _features.Set<IMemoryPoolFeature>(this);
        _features.Set<IConnectionLifetimeFeature>(this);
        _features.Set<IConnectionEndPointFeature>(this);
        _features.Set<IShardConnectionFeature>(this);
    }

    /// <inheritdoc/>
    public override string ConnectionId
    {
        get => _connectionId ??= ConnectionIds.Next();
        set => _connectionId = value;
    }

    /// <inheritdoc/>
    public override IFeatureCollection Features => _features;

    /// <inheritdoc/>
    public override IDictionary<object, object?> Items
    {
        get => _items ??= new ConnectionItems();
        set => _items = value;
    }

    /// <inheritdoc/>
    public override IDuplexPipe Transport { get; set; }

    /// <inheritdoc/>
    public MemoryPool<byte> MemoryPool => _shard.Memory;

    /// <inheritdoc/>
    public int Shard => _shard.Shard;

    /// <inheritdoc/>
    public TaskQueue Queue => _shard.Queue;

    /// <inheritdoc/>
    public override CancellationToken ConnectionClosed { get; set; }

    /// <summary>Starts the receive and send loops (on the shard).</summary>
    public void Start() => _ = RunAsync();

    private async Task RunAsync()
    {
        try
        {
            var receiving = DoReceive();
            var sending = DoSend();
            await receiving;
            await sending;
        }
        catch (Exception e)
        {
            TransportLog.Unexpected(_shard.Logger, $"connection {ConnectionId}", e);
        }
        finally
        {
            _ended.TrySetResult();
        }
    }

    /// <inheritdoc/>
    public override void Abort(ConnectionAbortedException abortReason)
    {
        // The first reason wins, as in Kestrel's Sockets transport; the socket is closed on its shard: with a reset,
        // or with a FIN when there is no reason (Kestrel aborts so once the client has sent its FIN).
        if (Interlocked.CompareExchange(ref _shutdownReason, abortReason ?? new GracefulClose(), null) is null)
        {
            if (SynchronizationContext.Current == _shard.Queue) CloseOnShard();
            else _shard.Queue.Post(s_closeAbortively, this);
        }
        // The send loop stops; its end completes the output.
        _output.Reader.CancelPendingRead();
    }

    /// <summary>Completes the application's sides of the pipes and waits for both loops (Kestrel calls it once the
    /// connection's middleware is done).</summary>
    public override async ValueTask DisposeAsync()
    {
        _originalTransport.Input.Complete();
        _originalTransport.Output.Complete();
        // Completed with continuations run asynchronously: Kestrel's code after this never runs inside our loops.
        await _ended.Task;
        _closedSource.Dispose();
    }

    private async Task DoReceive()
    {
        Exception? error = null;
        var input = _input.Writer;
        try
        {
            while (_shutdownReason is null)
            {
                var memory = input.GetMemory(MinAllocBufferSize);
                int received = await _socket.ReadAsync(memory);
                if (received == 0)
                {
                    TransportLog.ConnectionReadFin(_shard.Logger, ConnectionId);
                    break;
                }
                input.Advance(received);
                var flushed = await input.FlushAsync();
                if (flushed.IsCompleted || flushed.IsCanceled) break; // the application stopped reading
            }
        }
        catch (SocketException e) when (IsReset(e.SocketErrorCode))
        {
            error = new ConnectionResetException(e.Message, e);
            if (_shutdownReason is null) TransportLog.ConnectionReset(_shard.Logger, ConnectionId);
        }
        catch (Exception e) when (e is ObjectDisposedException || (e is SocketException s && IsAbort(s.SocketErrorCode)))
        {
            error = e; // the socket was closed under the read: the shutdown reason says why
            if (_shutdownReason is null) TransportLog.ConnectionError(_shard.Logger, ConnectionId, e);
        }
        catch (Exception e)
        {
            error = e;
            TransportLog.ConnectionError(_shard.Logger, ConnectionId, e);
        }
        finally
        {
            // Shut down already: that is why the read ended, and what the application should see.
            input.Complete(_shutdownReason ?? error);
            FireConnectionClosed();
            await _closedFired.Task;
        }
    }

    private async Task DoSend()
    {
        Exception? shutdownReason = null, unexpected = null;
        var output = _output.Reader;
        try
        {
            while (true)
            {
                var result = await output.ReadAsync();
                if (result.IsCanceled) break; // Abort
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    if (buffer.IsSingleSegment) await _socket.WriteAsync(buffer.First);
                    else await SendGathered(buffer);
                }
                output.AdvanceTo(buffer.End);
                if (result.IsCompleted) break;
            }
        }
        catch (SocketException e) when (IsReset(e.SocketErrorCode))
        {
            shutdownReason = new ConnectionResetException(e.Message, e);
            TransportLog.ConnectionReset(_shard.Logger, ConnectionId);
        }
        catch (Exception e) when (e is ObjectDisposedException || (e is SocketException s && IsAbort(s.SocketErrorCode)))
        {
            shutdownReason = e; // Abort closed the socket under the send
        }
        catch (Exception e)
        {
            shutdownReason = unexpected = e;
            TransportLog.ConnectionError(_shard.Logger, ConnectionId, e);
        }
        finally
        {
            await Shutdown(shutdownReason);
            output.Complete(unexpected);
            // A receive loop waiting for the application to make room would wait forever now.
            _input.Writer.CancelPendingFlush();
        }
    }

    /// <summary>Sends a multi-segment buffer: segments copied together into pieces of up to
    /// <see cref="GatherLimit"/> bytes, each one send.</summary>
    private async ValueTask SendGathered(ReadOnlySequence<byte> buffer)
    {
        byte[] scratch = ArrayPool<byte>.Shared.Rent((int)Math.Min(buffer.Length, GatherLimit));
        try
        {
            while (!buffer.IsEmpty)
            {
                int n = (int)Math.Min(buffer.Length, scratch.Length);
                buffer.Slice(0, n).CopyTo(scratch);
                await _socket.WriteAsync(scratch.AsMemory(0, n));
                buffer = buffer.Slice(n);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>On the shard, when the send loop ends: takes the shutdown reason (unless an abort took one first) and
    /// closes the socket — a FIN when the output completed cleanly, a reset otherwise.</summary>
    private ValueTask Shutdown(Exception? reason)
    {
        Interlocked.CompareExchange(ref _shutdownReason, reason ?? new GracefulClose(), null);
        return CloseSocket();
    }

    /// <summary>Abort's close, posted to the shard.</summary>
    private void CloseOnShard() => _ = CloseSocket();

    /// <summary>On the shard, once: shutdown and close (a FIN) when the shutdown reason is the graceful one, else an
    /// abortive close (a reset). Either ends the receive loop's pending read.</summary>
    private async ValueTask CloseSocket()
    {
        if (_socketClosing) return;
        _socketClosing = true;
        var reason = _shutdownReason!;
        try
        {
            if (reason is GracefulClose)
            {
                TransportLog.ConnectionWriteFin(_shard.Logger, ConnectionId, reason.Message);
                try
                {
                    await _socket.ShutdownAsync(SocketShutdown.Both);
                }
                catch (SocketException)
                {
                    // The peer may be gone already: the close below is what matters.
                }
                await _socket.DisposeAsync();
            }
            else
            {
                TransportLog.ConnectionWriteRst(_shard.Logger, ConnectionId, reason.Message);
                await _socket.AbortAsync();
            }
        }
        catch (Exception e)
        {
            TransportLog.Unexpected(_shard.Logger, $"closing connection {ConnectionId}", e);
        }
    }

    /// <summary>Fires <see cref="ConnectionClosed"/> once, in a work item of its own on the shard (not inside the
    /// receive loop, whose end it reports), as Kestrel's Sockets transport fires it in a ThreadPool work item.</summary>
    private void FireConnectionClosed()
    {
        if (_closedFiring) return;
        _closedFiring = true;
        _shard.Queue.Post(s_fireClosed, this);
    }

    private void CancelConnectionClosed()
    {
        try
        {
            _closedSource.Cancel();
        }
        catch (Exception e)
        {
            TransportLog.Unexpected(_shard.Logger, $"a ConnectionClosed callback of connection {ConnectionId}", e);
        }
        _closedFired.TrySetResult();
    }

    private static bool IsReset(SocketError error) => error is SocketError.ConnectionReset or SocketError.Shutdown;

    private static bool IsAbort(SocketError error) =>
        error is SocketError.OperationAborted or SocketError.Interrupted or SocketError.InvalidArgument;

    /// <inheritdoc/>
    public override string ToString() => $"Scipio connection {ConnectionId} on shard {_shard.Shard}";

    /// <summary>The shutdown reason when the output completed cleanly: the socket closes with a FIN. Nobody should
    /// see it but a middleware that tries to half-close (which is not supported), as in Kestrel's Sockets transport.</summary>
    private sealed class GracefulClose() : ConnectionAbortedException("The Scipio transport's send loop completed gracefully.");

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }
}

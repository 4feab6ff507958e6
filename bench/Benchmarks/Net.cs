using System.Net;
using System.Net.Sockets;
using Scipio.Net;

namespace Scipio.Bench.Benchmarks;

/// <summary>TCP on 127.0.0.1 inside one process: a 64 B ping-pong over one connection (both ends on the shard:
/// the fixed cost of a socket round trip through the ring), and a one-way stream of 1 MiB writes read with a 256 KiB
/// buffer (the large-read case, where a plain receive into the caller's memory may beat the buffer ring).
/// Baselines: System.Net.Sockets with the same shapes on the ThreadPool.</summary>
internal static class Net
{
    private const int Small = 64;
    private const int Chunk = 1 << 20;
    private const int ReadBuffer = 256 << 10;

    public static IEnumerable<Benchmark> All()
    {
        const string WhySockets = "System.Net.Sockets: Socket.SendAsync/ReceiveAsync on Memory<byte>, both ends async " +
            "on the ThreadPool (epoll underneath) — what a .NET server uses";
        yield return new Benchmark(
            "tcp-ping-pong",
            "one connection on 127.0.0.1: send 64 B, the other end echoes it, receive it back (per round trip)",
            1,
            new Side("TcpStream, both ends on the shard", Runner.Shard, ScipioPingPong),
            [new(new Side("Socket, both ends on the ThreadPool", Runner.ThreadPool, SocketPingPong), WhySockets)],
            Target.ZeroAlloc);

        yield return new Benchmark(
            "tcp-stream",
            "one connection on 127.0.0.1: the writer sends 1 MiB chunks, the reader reads them with a 256 KiB buffer (per MiB); Scipio's writer and reader share the shard's one CPU, the ThreadPool's may use two",
            1,
            new Side("TcpStream (large reads: plain receive)", Runner.Shard, n => ScipioStream(n, SocketConnectionPolicy.Default)),
            [
                new(new Side("TcpStream, multishot receive only", Runner.Shard, n => ScipioStream(n, SocketConnectionPolicy.MultishotOnly)),
                    "the same reads through the provided-buffer ring (8 KiB pieces, each copied out): what the large-read rule replaces"),
                new(new Side("TcpStream, writes as SEND_ZC", Runner.Shard, n => ScipioStream(n, SocketConnectionPolicy.ZeroCopy)),
                    "the same, the 1 MiB writes sent zero-copy (IORING_OP_SEND_ZC): whether it pays for large writes here"),
                new(new Side("Socket on the ThreadPool", Runner.ThreadPool, SocketStream), WhySockets),
            ],
            Target.None);
    }

    private enum SocketConnectionPolicy { Default, MultishotOnly, ZeroCopy }

    private static async ValueTask ScipioPingPong(long n)
    {
        await using var listener = Scipio.Net.TcpListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var accepting = listener.AcceptAsync();
        await using var client = await TcpStream.ConnectAsync(listener.LocalEndPoint);
        await using var server = await accepting;
        // Loops written out (no helper async methods): a helper's own state machine would allocate per call.
        var echo = Shard.Spawn(async () =>
        {
            var buffer = new byte[Small];
            for (long i = 0; i < n; i++)
            {
                for (int got = 0; got < Small;) got += Check(await server.ReadAsync(buffer.AsMemory(got)));
                await server.WriteAsync(buffer);
            }
        });
        var message = new byte[Small];
        var back = new byte[Small];
        for (long i = 0; i < n; i++)
        {
            await client.WriteAsync(message);
            for (int got = 0; got < Small;) got += Check(await client.ReadAsync(back.AsMemory(got)));
        }
        await echo;
    }

    private static int Check(int read) =>
        read > 0 ? read : throw new InvalidOperationException("The connection ended early.");

    private static async ValueTask ScipioStream(long n, SocketConnectionPolicy policy)
    {
        int saved = Scipio.Net.SocketConnection.LargeReadThreshold, savedZeroCopy = Scipio.Net.SocketConnection.ZeroCopyWriteThreshold;
        Scipio.Net.SocketConnection.LargeReadThreshold = policy == SocketConnectionPolicy.MultishotOnly ? int.MaxValue : saved;
        Scipio.Net.SocketConnection.ZeroCopyWriteThreshold = policy == SocketConnectionPolicy.ZeroCopy ? 64 << 10 : savedZeroCopy;
        try
        {
            await using var listener = Scipio.Net.TcpListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var accepting = listener.AcceptAsync();
            await using var client = await TcpStream.ConnectAsync(listener.LocalEndPoint);
            await using var server = await accepting;
            var chunk = new byte[Chunk];
            var writer = Shard.Spawn(async () =>
            {
                for (long i = 0; i < n; i++) await client.WriteAsync(chunk);
            });
            var buffer = new byte[ReadBuffer];
            long total = n * Chunk;
            for (long got = 0; got < total;)
            {
                int read = await server.ReadAsync(buffer);
                if (read == 0) throw new InvalidOperationException("The connection ended early.");
                got += read;
            }
            await writer;
        }
        finally
        {
            Scipio.Net.SocketConnection.LargeReadThreshold = saved;
            Scipio.Net.SocketConnection.ZeroCopyWriteThreshold = savedZeroCopy;
        }
    }

    private static async ValueTask<(Socket Client, Socket Server)> SocketPair()
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accepting = listener.AcceptAsync();
        await client.ConnectAsync(listener.LocalEndPoint!);
        var server = await accepting;
        server.NoDelay = true;
        return (client, server);
    }

    private static async ValueTask SocketPingPong(long n)
    {
        var (client, server) = await SocketPair();
        using (client)
        using (server)
        {
            var echo = Task.Run(async () =>
            {
                var buffer = new byte[Small];
                for (long i = 0; i < n; i++)
                {
                    await SocketReadFully(server, buffer);
                    await server.SendAsync(buffer);
                }
            });
            var message = new byte[Small];
            var back = new byte[Small];
            for (long i = 0; i < n; i++)
            {
                await client.SendAsync(message);
                await SocketReadFully(client, back);
            }
            await echo;
        }
    }

    private static async ValueTask SocketReadFully(Socket socket, byte[] into)
    {
        for (int got = 0; got < into.Length;)
        {
            int n = await socket.ReceiveAsync(into.AsMemory(got));
            if (n == 0) throw new InvalidOperationException("The connection ended early.");
            got += n;
        }
    }

    private static async ValueTask SocketStream(long n)
    {
        var (client, server) = await SocketPair();
        using (client)
        using (server)
        {
            var chunk = new byte[Chunk];
            var writer = Task.Run(async () =>
            {
                for (long i = 0; i < n; i++)
                    for (int sent = 0; sent < Chunk;) sent += await client.SendAsync(chunk.AsMemory(sent));
            });
            var buffer = new byte[ReadBuffer];
            long total = n * Chunk;
            for (long got = 0; got < total;)
            {
                int read = await server.ReceiveAsync(buffer);
                if (read == 0) throw new InvalidOperationException("The connection ended early.");
                got += read;
            }
            await writer;
        }
    }
}

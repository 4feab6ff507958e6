using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using Scipio;
using Scipio.IO;
using Scipio.Net;

namespace Snippets;

// docs/networking.md: fragments that run on a shard.
public static class Networking
{
    public static TcpListener Options(IPEndPoint endPoint)
    {
        // <snippet:net-listener-options>
        var listener = TcpListener.Bind(endPoint, new TcpListenerOptions
        {
            Backlog = 4096,      // connections the kernel queues before they are accepted (capped by somaxconn)
            ReusePort = true,    // SO_REUSEPORT: a listener per shard on one port (default)
            ReuseAddress = true, // SO_REUSEADDR: rebind a port whose old connections linger in TIME_WAIT (default)
        });
        // </snippet>
        return listener;
    }

    // <snippet:net-as-stream>
    // A line protocol over AsStream(): StreamReader and StreamWriter read and write the connection, on its shard.
    static async Task ServeLinesAsync(TcpStream connection)
    {
        await using (connection)
        {
            using var reader = new StreamReader(connection.AsStream());
            await using var writer = new StreamWriter(connection.AsStream()) { AutoFlush = true };
            while (await reader.ReadLineAsync() is string line)
                await writer.WriteLineAsync(line.ToUpperInvariant());
        }
    }
    // </snippet>

    // <snippet:net-as-pipe>
    // A parser over AsPipe(): System.IO.Pipelines buffers what arrives; the parser looks at it in place.
    static async Task<int> CountLinesAsync(TcpStream connection)
    {
        PipeReader input = connection.AsPipe().Input;
        int lines = 0;
        while (true)
        {
            ReadResult result = await input.ReadAsync();
            ReadOnlySequence<byte> buffer = result.Buffer;
            while (buffer.PositionOf((byte)'\n') is SequencePosition end)
            {
                lines++;
                buffer = buffer.Slice(buffer.GetPosition(1, end));
            }
            input.AdvanceTo(buffer.Start, buffer.End); // consumed up to the last line; examined all
            if (result.IsCompleted) break;
        }
        await input.CompleteAsync();
        return lines;
    }
    // </snippet>

    public static async Task<(int, int)> Adapters()
    {
        await using TcpListener listener = TcpListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Task server = Shard.Spawn(async () =>
        {
            await ServeLinesAsync(await listener.AcceptAsync());
            await using TcpStream second = await listener.AcceptAsync();
            await second.WriteAsync("a\nb\nc\n"u8.ToArray());
        });
        await using TcpStream client = await TcpStream.ConnectAsync(listener.LocalEndPoint);
        await client.WriteAsync("hello\nworld\n"u8.ToArray());
        await client.ShutdownAsync(System.Net.Sockets.SocketShutdown.Send);
        var reply = new byte[64];
        int got = 0, n;
        while ((n = await client.ReadAsync(reply.AsMemory(got))) > 0) got += n;
        Console.Write(Encoding.ASCII.GetString(reply, 0, got));
        await using TcpStream other = await TcpStream.ConnectAsync(listener.LocalEndPoint);
        int lines = await CountLinesAsync(other);
        await server;
        return (got, lines);
    }

    public static async Task<int> Timeout(TcpStream connection, byte[] buffer)
    {
        // <snippet:net-timeout>
        // Up to 30 s for the next bytes; then the read is canceled (nothing is lost) and TimeoutException is thrown.
        int n = await Shard.WithTimeout(TimeSpan.FromSeconds(30), ct => connection.ReadAsync(buffer, ct).AsTask());
        // </snippet>
        return n;
    }

    public static async Task<string> Udp()
    {
        // <snippet:net-udp>
        await using UdpSocket server = UdpSocket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        await using UdpSocket client = UdpSocket.Bind(new IPEndPoint(IPAddress.Loopback, 0));

        var buffer = new byte[1500];
        var receiving = server.ReceiveFromAsync(buffer);                 // one receive pending at a time
        await client.SendToAsync("ping"u8.ToArray(), server.LocalEndPoint);
        var received = await receiving;                                  // a SocketReceiveFromResult
        Console.WriteLine($"{received.ReceivedBytes} bytes from {received.RemoteEndPoint}");

        client.Connect(server.LocalEndPoint); // a default destination: SendAsync goes there, only its datagrams come in
        await client.SendAsync("pong"u8.ToArray());
        // </snippet>
        var again = await server.ReceiveFromAsync(buffer);
        return Encoding.ASCII.GetString(buffer, 0, again.ReceivedBytes);
    }

    public static async Task<string> Unix()
    {
        string reply;
        // <snippet:net-unix>
        string path = Path.Combine(Path.GetTempPath(), "scipio-demo.sock"); // at most 107 bytes
        await using (UnixListener listener = UnixListener.Bind(path))   // "\0name": the abstract namespace, no file
        {
            Task server = Shard.Spawn(async () =>
            {
                await using UnixStream peer = await listener.AcceptAsync();
                await peer.WriteAsync("hello over a Unix socket\n"u8.ToArray());
            });
            await using UnixStream client = await UnixStream.ConnectAsync(path);
            using var reader = new StreamReader(client.AsStream());
            reply = await reader.ReadLineAsync() ?? "";
            await server;
        }
        await FileSystem.DeleteAsync(path); // the socket file stays until deleted
        // </snippet>
        return reply;
    }
}

using System.Net;
using System.Text;
using Scipio;
using Scipio.Net;

namespace Snippets;

// docs/getting-started.md: a socket.
public static class GettingStartedSocket
{
    public static void ASocket()
    {
        // <snippet:a-socket>
        Shard.Run(async () =>
        {
            // Port 0: the kernel picks a free port, and LocalEndPoint says which.
            await using TcpListener listener = TcpListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));

            // The server, a task on this same shard: it echoes one connection until the client stops sending.
            Task server = Shard.Spawn(async () =>
            {
                await using TcpStream connection = await listener.AcceptAsync();
                var buffer = new byte[4096];
                int n;
                while ((n = await connection.ReadAsync(buffer)) > 0)
                    await connection.WriteAsync(buffer.AsMemory(0, n));
            });

            // The client.
            await using TcpStream client = await TcpStream.ConnectAsync(listener.LocalEndPoint);
            await client.WriteAsync(Encoding.UTF8.GetBytes("ping"));
            var reply = new byte[64];
            int got = await client.ReadAsync(reply); // what has arrived: here, the 4 bytes
            Console.WriteLine($"echoed \"{Encoding.UTF8.GetString(reply, 0, got)}\"");

            await client.ShutdownAsync(System.Net.Sockets.SocketShutdown.Send); // the server reads 0: the end
            await server;
        });
        // </snippet>
    }
}

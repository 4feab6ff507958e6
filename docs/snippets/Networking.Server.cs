using System.Net;
using Scipio;
using Scipio.Net;

namespace Snippets;

// docs/networking.md: the server program, one listener per shard.
public static class NetworkingServer
{
    public static async Task Server()
    {
        // <snippet:net-server>
        await using var pool = ShardPool.Start(); // one shard per CPU the process may use

        await pool.RunOnAll(async () =>
        {
            // Every shard binds its own listener on port 7000 (ReusePort is on by default): the kernel spreads new
            // connections over the shards, and each connection stays on the shard that accepted it.
            await using TcpListener listener = TcpListener.Bind(new IPEndPoint(IPAddress.Any, 7000));
            while (true)
            {
                TcpStream connection = await listener.AcceptAsync();
                _ = Shard.Spawn(() => EchoAsync(connection)); // a task per connection, on this shard
            }
        });

        // Echoes what arrives until the client closes. One buffer per connection, reused: 0 B per message.
        static async Task EchoAsync(TcpStream connection)
        {
            await using (connection)
            {
                var buffer = new byte[16 * 1024];
                try
                {
                    int n;
                    while ((n = await connection.ReadAsync(buffer)) > 0)
                        await connection.WriteAsync(buffer.AsMemory(0, n));
                }
                catch (System.Net.Sockets.SocketException) { } // a reset client: its connection just ends
            }
        }
        // </snippet>
    }
}

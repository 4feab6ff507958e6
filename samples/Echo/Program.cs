// An echo server on a pool: one shard per CPU, each with its own listener on the same port (SO_REUSEPORT, so the
// kernel spreads connections over the shards), each connection served by the shard that accepted it, every byte
// through that shard's io_uring. Usage: Scipio.Echo [--port 7000] [--shards N] (N: default every allowed CPU).
using System.Net;
using Scipio;
using Scipio.Net;

int port = 7000, shards = 0;
for (int i = 0; i + 1 < args.Length; i += 2)
{
    if (args[i] == "--port") port = int.Parse(args[i + 1]);
    else if (args[i] == "--shards") shards = int.Parse(args[i + 1]);
    else { Console.Error.WriteLine($"unknown option {args[i]}; usage: Scipio.Echo [--port P] [--shards N]"); return 2; }
}

var options = new ShardPoolOptions();
if (shards > 0) options.Shards = shards;
await using var pool = ShardPool.Start(options);
var listeners = new TcpListener[pool.Count];

// Shard 0 binds first (port 0 lets the kernel pick), then every other shard binds the same port.
port = await pool.SubmitTo(0, () => Task.FromResult((listeners[0] = TcpListener.Bind(new IPEndPoint(IPAddress.Any, port))).LocalEndPoint.Port));
await pool.RunOnAll(() =>
{
    if (Shard.Id != 0) listeners[Shard.Id] = TcpListener.Bind(new IPEndPoint(IPAddress.Any, port));
    return Task.FromResult(0);
});
Console.WriteLine($"listening on {port}: {pool.Count} shard(s) on CPUs {string.Join(", ", pool.Cpus)}");

await pool.RunOnAll(async () =>
{
    var listener = listeners[Shard.Id];
    while (true)
    {
        var connection = await listener.AcceptAsync();
        _ = Shard.Spawn(() => Serve(connection));
    }
#pragma warning disable CS0162 // the server runs until the process is stopped
    return 0;
#pragma warning restore CS0162
});
return 0;

// Reads what arrived and writes it back, until the client closes; a reset client just ends its connection.
static async Task Serve(TcpStream connection)
{
    var buffer = new byte[16 << 10];
    try
    {
        while (true)
        {
            int n = await connection.ReadAsync(buffer);
            if (n == 0) break;
            await connection.WriteAsync(buffer.AsMemory(0, n));
        }
    }
    catch (System.Net.Sockets.SocketException) { } // System.Net.Sockets has a TcpListener too: name it in full
    finally
    {
        await connection.DisposeAsync();
    }
}

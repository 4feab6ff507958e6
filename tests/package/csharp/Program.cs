// Consumes the Scipio package: a shard, a file round trip through the ring, a TCP echo on 127.0.0.1.
using System.Net;
using System.Text;
using Scipio;
using Scipio.IO;
using Scipio.Net;

string result = Shard.Run(async () =>
{
    string path = Path.Combine(Path.GetTempPath(), $"scipio-consumer-{Environment.ProcessId}.txt");
    try
    {
        await using (var file = await BufferedFile.CreateAsync(path))
            await file.WriteAtAsync("round trip"u8.ToArray(), 0);
        var back = new byte[10];
        int read;
        await using (var file = await BufferedFile.OpenAsync(path))
            read = await file.ReadAtAsync(back, 0);

        await using var listener = TcpListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var server = Shard.Spawn(async () =>
        {
            await using var connection = await listener.AcceptAsync();
            var buffer = new byte[16];
            int n = await connection.ReadAsync(buffer);
            await connection.WriteAsync(buffer.AsMemory(0, n));
            return n;
        });
        await using var client = await TcpStream.ConnectAsync(listener.LocalEndPoint);
        await client.WriteAsync("echo"u8.ToArray());
        var echoed = new byte[4];
        int got = await client.ReadAsync(echoed);
        await server;
        return $"{Encoding.ASCII.GetString(back, 0, read)} / {Encoding.ASCII.GetString(echoed, 0, got)} / {Shard.Stats.Backend}";
    }
    finally
    {
        File.Delete(path);
    }
});
Console.WriteLine(result);
Console.WriteLine(result.StartsWith("round trip / echo / ") ? "consumer ok" : "consumer FAILED");

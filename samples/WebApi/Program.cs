// ASP.NET Core on Scipio shards: a minimal API whose connections Kestrel accepts, parses and answers on the shard
// that accepted them (UseScipio), with routes that use the shard's own I/O and its counters.
// Usage: Scipio.WebApi [--urls http://127.0.0.1:5000] [--shards N] [--transport scipio|sockets]
// (--transport sockets: Kestrel's default transport, same process otherwise — what bench.sh compares against.)
using System.Text.Json.Serialization;
using Scipio;
using Scipio.IO;

var builder = WebApplication.CreateSlimBuilder(args);
string transport = builder.Configuration["transport"] ?? "scipio";
int? shards = int.TryParse(builder.Configuration["shards"], out int n) ? n : null;
builder.Logging.SetMinimumLevel(LogLevel.Warning).AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);

// The pool starts and stops with the host; the routes below get it injected.
builder.Services.AddScipio(options => options.Shards = shards);
if (transport == "scipio") builder.WebHost.UseScipio();
else if (transport != "sockets") throw new ArgumentException($"--transport is scipio or sockets, not {transport}");
builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, SampleJson.Default));

var app = builder.Build();

// TechEmpower's two simplest tests.
app.MapGet("/plaintext", () => "Hello, World!");
app.MapGet("/json", () => new Message("Hello, World!"));

// A file read through the shard's ring. On UseScipio the handler runs on a shard already; on another transport it
// asks shard 0 to read it.
string file = Path.Combine(Path.GetTempPath(), $"scipio-webapi-{Environment.ProcessId}.txt");
File.WriteAllText(file, string.Concat(Enumerable.Repeat("Served from a Scipio shard through io_uring.\n", 100)));
app.Lifetime.ApplicationStopped.Register(() => File.Delete(file));
app.MapGet("/file", async (ShardPool pool) =>
{
    byte[] bytes = Shard.IsOnShard ? await ReadAll(file) : await pool.SubmitTo(0, () => ReadAll(file));
    return Results.Bytes(bytes, "text/plain");
});

// Every shard's counters, each read on its own shard.
app.MapGet("/stats", async (ShardPool pool) => Results.Json(await pool.RunOnAll(() => Task.FromResult(Shard.Stats)), SampleJson.Default.ShardStatsArray));

app.Run();

static async Task<byte[]> ReadAll(string path)
{
    await using var file = await BufferedFile.OpenAsync(path);
    var bytes = new byte[await file.GetLengthAsync()];
    int read = 0;
    while (read < bytes.Length)
    {
        int got = await file.ReadAtAsync(bytes.AsMemory(read), read);
        if (got == 0) break;
        read += got;
    }
    return bytes;
}

internal sealed record Message(string message);

[JsonSerializable(typeof(Message))]
[JsonSerializable(typeof(ShardStats[]))]
[JsonSourceGenerationOptions(UseStringEnumConverter = true, WriteIndented = false)]
internal sealed partial class SampleJson : JsonSerializerContext;

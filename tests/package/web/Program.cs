// Consumes the Scipio.Hosting package: a minimal API on Kestrel over Scipio shards (UseScipio), on 127.0.0.1 port 0,
// asked once by HttpClient; the handler says whether it ran on a shard.
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Scipio;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
builder.Services.AddScipio(options => options.Shards = 1);
builder.WebHost.UseScipio();
builder.WebHost.UseUrls("http://127.0.0.1:0");
var app = builder.Build();
app.MapGet("/", () => $"on shard {Shard.IsOnShard}");
await app.StartAsync();

string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
using var client = new HttpClient();
string answer = await client.GetStringAsync(address);
await app.StopAsync();
Console.WriteLine(answer);
Console.WriteLine(answer == "on shard True" ? "consumer ok" : "consumer FAILED");

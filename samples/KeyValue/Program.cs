// A sharded key-value server that speaks RESP2, so redis-cli, redis-benchmark and Redis client libraries talk to it:
// one shard per CPU, each owning the keys that hash to it, each listening on the same port (SO_REUSEPORT).
// Usage: Scipio.KeyValue [--port 6380] [--shards N] [--cpus 0,1,…] [--bind ADDRESS]
//                        [--proto-max-bulk-len BYTES] [--client-query-buffer-limit BYTES] [--spin-us N]
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Scipio.Samples.KeyValue;

var options = new KeyValueServerOptions();
try
{
    for (int i = 0; i < args.Length; i++)
    {
        string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
        switch (args[i])
        {
            case "--port": options.Port = int.Parse(Value(), CultureInfo.InvariantCulture); break;
            case "--shards": options.Shards = int.Parse(Value(), CultureInfo.InvariantCulture); break;
            case "--cpus": options.Cpus = Value().Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray(); break;
            case "--bind": options.Address = IPAddress.Parse(Value()); break;
            case "--proto-max-bulk-len": options.MaxBulkLength = long.Parse(Value(), CultureInfo.InvariantCulture); break;
            case "--client-query-buffer-limit": options.QueryBufferLimit = long.Parse(Value(), CultureInfo.InvariantCulture); break;
            case "--spin-us": options.SpinBeforePark = TimeSpan.FromMicroseconds(double.Parse(Value(), CultureInfo.InvariantCulture)); break;
            default: throw new ArgumentException($"unknown option {args[i]}");
        }
    }
}
catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
{
    Console.Error.WriteLine($"{e.Message}\nusage: Scipio.KeyValue [--port 6380] [--shards N] [--cpus 0,1,...] [--bind ADDRESS] " +
                            "[--proto-max-bulk-len BYTES] [--client-query-buffer-limit BYTES] [--spin-us N]");
    return 2;
}

await using var server = KeyValueServer.Start(options);
Console.WriteLine($"listening on {options.Address}:{server.Port}: {server.ShardCount} shard(s) on CPUs {string.Join(", ", server.Cpus)}");

// Runs until SIGINT (Ctrl+C) or SIGTERM, then closes every connection and stops the shards.
var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
await stop.Task;
Console.WriteLine("stopping");
return 0;

void Stop(PosixSignalContext context)
{
    context.Cancel = true;
    stop.TrySetResult();
}

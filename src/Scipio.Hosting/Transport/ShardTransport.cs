using System.IO.Pipelines;
using Microsoft.Extensions.Logging;

namespace Scipio.Hosting.Transport;

/// <summary>What the connections of one shard share, made once on that shard: the task queue they run in, the memory
/// pool their pipes buffer in, and the pipes' options (both sides scheduled on the queue).</summary>
internal sealed class ShardTransport
{
    /// <summary>Made on the shard it serves.</summary>
    public ShardTransport(ScipioTransportOptions options, ILogger logger)
    {
        Shard = Scipio.Shard.Id;
        Queue = Scipio.Shard.CurrentTaskQueue;
        Memory = new ShardMemoryPool();
        Logger = logger;
        NoDelay = options.NoDelay;
        var scheduler = Queue.PipeScheduler;
        long read = options.MaxReadBufferSize ?? 0, write = options.MaxWriteBufferSize ?? 0;
        // useSynchronizationContext: false — the pipe resumes its awaiters through the scheduler, which is the queue
        // already; capturing the context would box every completion instead.
        InputOptions = new PipeOptions(Memory, scheduler, scheduler, read, read / 2, ShardMemoryPool.BlockSize, useSynchronizationContext: false);
        OutputOptions = new PipeOptions(Memory, scheduler, scheduler, write, write / 2, ShardMemoryPool.BlockSize, useSynchronizationContext: false);
    }

    public int Shard { get; }
    public TaskQueue Queue { get; }
    public ShardMemoryPool Memory { get; }
    public ILogger Logger { get; }
    public bool NoDelay { get; }
    public PipeOptions InputOptions { get; }
    public PipeOptions OutputOptions { get; }
}

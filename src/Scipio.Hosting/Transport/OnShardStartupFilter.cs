using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Scipio.Hosting.Transport;

/// <summary>Puts, first in the application's pipeline, a step that runs the request on its connection's shard when it
/// arrives elsewhere. HTTP/1.1 requests are already there (Kestrel parses and runs them in the connection's read
/// loop, which the transport keeps on the shard): for them the step is one comparison. Kestrel hands each HTTP/2
/// stream to the ThreadPool instead; the step posts it to the connection's task queue, so handlers start on the
/// shard whatever the protocol.</summary>
internal sealed class OnShardStartupFilter : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(static next => context =>
        {
            if (SynchronizationContext.Current is TaskQueue) return next(context); // on a shard already
            return context.Features.Get<IShardConnectionFeature>() is { } shard ? ShardCall.Run(shard.Queue, next, context) : next(context);
        });
        next(app);
    };

    /// <summary>The rest of the pipeline for one request, run in the connection's task queue.</summary>
    private sealed class ShardCall(RequestDelegate next, HttpContext context) : TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        private static readonly SendOrPostCallback s_start = static call => ((ShardCall)call!).Start();

        public static Task Run(TaskQueue queue, RequestDelegate next, HttpContext context)
        {
            var call = new ShardCall(next, context);
            queue.Post(s_start, call);
            return call.Task;
        }

        private async void Start()
        {
            try
            {
                await next(context);
                TrySetResult();
            }
            catch (Exception e)
            {
                TrySetException(e);
            }
        }
    }
}

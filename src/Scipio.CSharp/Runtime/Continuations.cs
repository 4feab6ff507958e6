using System.Threading.Tasks.Sources;

namespace Scipio.Runtime;

/// <summary>How every awaitable of a shard (operations, channel and lock waiters) hands over its continuation: to the
/// task queue it was awaited from, never inline — the stack stays bounded and the queue pays for its own work.</summary>
internal static class Continuations
{
    /// <summary>The ExecutionContext to flow, when the awaiter asked for it (OnCompleted rather than
    /// UnsafeOnCompleted).</summary>
    public static ExecutionContext? CaptureIfAsked(ValueTaskSourceOnCompletedFlags flags) =>
        (flags & ValueTaskSourceOnCompletedFlags.FlowExecutionContext) != 0 ? ExecutionContext.Capture() : null;

    /// <summary>Queues <paramref name="continuation"/> on <paramref name="queue"/> (shard thread).</summary>
    public static void Schedule(TaskQueue queue, Action<object?> continuation, object? state, ExecutionContext? context)
    {
        if (context is null) queue.EnqueueLocal(new WorkItem(continuation, state));
        else ScheduleWithContext(queue, continuation, state, context);
    }

    // Rare: its own method, so the closure is allocated only on this path (C# hoists a closure that captures
    // parameters to method entry).
    private static void ScheduleWithContext(TaskQueue queue, Action<object?> continuation, object? state, ExecutionContext context) =>
        queue.EnqueueLocal(new WorkItem((Action)(() => ExecutionContext.Run(context, s => continuation(s), state)), null));
}

using System.Runtime.CompilerServices;
using Scipio.Runtime;

namespace Scipio;

/// <summary>What <see cref="Shard.Yield"/> returns: awaiting it puts the rest of the method at the back of its task
/// queue and hands the CPU back to the scheduler, which picks again.</summary>
public readonly struct YieldAwaitable
{
    private readonly ShardExecutor _executor;

    internal YieldAwaitable(ShardExecutor executor) => _executor = executor;

    /// <summary>The awaiter.</summary>
    public Awaiter GetAwaiter() => new(_executor);

    /// <summary>Awaiter of <see cref="YieldAwaitable"/>.</summary>
    public readonly struct Awaiter : ICriticalNotifyCompletion
    {
        private readonly ShardExecutor _executor;

        internal Awaiter(ShardExecutor executor) => _executor = executor;

        /// <summary>Always false: a yield always suspends.</summary>
        public bool IsCompleted => false;

        /// <summary>Nothing to return.</summary>
        public void GetResult() { }

        /// <summary>Queues the continuation behind the queue's other work.</summary>
        public void OnCompleted(Action continuation) => _executor.YieldContinuation(continuation);

        /// <summary>Queues the continuation behind the queue's other work.</summary>
        public void UnsafeOnCompleted(Action continuation) => _executor.YieldContinuation(continuation);
    }
}

namespace Scipio;

/// <summary>A shard started by <see cref="Shard.Start(Func{Task}, ShardOptions?)"/>: its thread runs until the main
/// function completes.</summary>
public class ShardHandle
{
    internal ShardHandle(Task completion) => Completion = completion;

    /// <summary>Completes when the shard has finished: the main function completed and the shard released its
    /// rings and thread. Faults with the main function's exception, or with the reason the shard could not start.</summary>
    public Task Completion { get; }

    /// <summary>Blocks until the shard has finished; rethrows the main function's exception with its own type.</summary>
    /// <exception cref="InvalidOperationException">Called on a shard (it would wait on itself or block a shard).</exception>
    public void Join()
    {
        Runtime.ShardExecutor.ThrowIfOnShard("ShardHandle.Join");
        Completion.GetAwaiter().GetResult();
    }
}

/// <summary>A shard started by <see cref="Shard.Start{T}(Func{Task{T}}, ShardOptions?)"/>, whose main function
/// returns a <typeparamref name="T"/>.</summary>
public sealed class ShardHandle<T> : ShardHandle
{
    internal ShardHandle(Task<T> completion) : base(completion) => Completion = completion;

    /// <summary>Completes with the main function's result when the shard has finished.</summary>
    public new Task<T> Completion { get; }

    /// <summary>Blocks until the shard has finished and returns the main function's result, or rethrows its
    /// exception with its own type.</summary>
    /// <exception cref="InvalidOperationException">Called on a shard.</exception>
    public new T Join()
    {
        Runtime.ShardExecutor.ThrowIfOnShard("ShardHandle.Join");
        return Completion.GetAwaiter().GetResult();
    }
}

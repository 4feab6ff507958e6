using System.Threading.Tasks.Sources;
using Scipio.Ring;
using Scipio.Runtime;

namespace Scipio.Bench.Benchmarks;

/// <summary>IORING_OP_NOP round trips: the fixed cost of one operation through the ring (rent a pooled operation,
/// write its SQE, submit, reap the CQE, schedule the continuation, recycle) with no I/O in it.</summary>
internal static class Nop
{
    private const int Batch = 32;
    private static readonly Action s_nothing = static () => { };

    public static IEnumerable<Benchmark> All()
    {
        const string WhyTaskRun = "the round trip a .NET user has without io_uring: hand an empty work item to the " +
            "ThreadPool and await its completion";
        const string WhyWorkItem = "the same round trip made allocation-free the way .NET's own sockets do it: a " +
            "pooled IThreadPoolWorkItem that is also the IValueTaskSource (ManualResetValueTaskSourceCore)";

        yield return new Benchmark(
            "nop",
            "submit one NOP, await it",
            1,
            new Side("NOP through the ring", Runner.Shard, ShardNop),
            [
                new(new Side("await Task.Run(() => {})", Runner.ThreadPool, TaskRunNop), WhyTaskRun),
                new(new Side("pooled work item + IValueTaskSource", Runner.ThreadPool, WorkItemNop), WhyWorkItem),
            ],
            Target.ZeroAlloc);

        yield return new Benchmark(
            "nop-x32",
            "submit 32 NOPs, then await each (per NOP)",
            Batch,
            new Side("32 NOPs, one io_uring_enter", Runner.Shard, ShardNopBatch),
            [
                new(new Side("32 × Task.Run(() => {}), await each", Runner.ThreadPool, TaskRunNopBatch), WhyTaskRun),
                new(new Side("32 pooled work items, await each", Runner.ThreadPool, WorkItemNopBatch), WhyWorkItem),
            ],
            Target.ZeroAlloc);
    }

    private static async ValueTask ShardNop(long n)
    {
        var executor = ShardExecutor.Current!;
        for (long i = 0; i < n; i++)
        {
            var op = executor.Operations.RentReadWrite().Start("nop", null, null, default);
            op.PrepareNop();
            executor.Submit(op);
            await new ValueTask<int>(op, op.Version);
        }
    }

    private static async ValueTask ShardNopBatch(long n)
    {
        var executor = ShardExecutor.Current!;
        var pending = new ValueTask<int>[Batch];
        for (long i = 0; i < n; i += Batch)
        {
            for (int j = 0; j < Batch; j++)
            {
                var op = executor.Operations.RentReadWrite().Start("nop", null, null, default);
                op.PrepareNop();
                executor.Submit(op);
                pending[j] = new ValueTask<int>(op, op.Version);
            }
            for (int j = 0; j < Batch; j++) await pending[j];
        }
    }

    private static async ValueTask TaskRunNop(long n)
    {
        for (long i = 0; i < n; i++) await Task.Run(s_nothing);
    }

    private static async ValueTask TaskRunNopBatch(long n)
    {
        var pending = new Task[Batch];
        for (long i = 0; i < n; i += Batch)
        {
            for (int j = 0; j < Batch; j++) pending[j] = Task.Run(s_nothing);
            for (int j = 0; j < Batch; j++) await pending[j];
        }
    }

    private static async ValueTask WorkItemNop(long n)
    {
        var item = new PooledWorkItem();
        for (long i = 0; i < n; i++) await item.Queue();
    }

    private static async ValueTask WorkItemNopBatch(long n)
    {
        var items = new PooledWorkItem[Batch];
        for (int j = 0; j < Batch; j++) items[j] = new PooledWorkItem();
        var pending = new ValueTask[Batch];
        for (long i = 0; i < n; i += Batch)
        {
            for (int j = 0; j < Batch; j++) pending[j] = items[j].Queue();
            for (int j = 0; j < Batch; j++) await pending[j];
        }
    }

    /// <summary>An empty ThreadPool work item that is its own awaitable: 0 B per round trip. Queued to the local
    /// queue of the pool thread that queues it, as Task.Run does from a pool thread.</summary>
    private sealed class PooledWorkItem : IThreadPoolWorkItem, IValueTaskSource
    {
        private ManualResetValueTaskSourceCore<bool> _core;

        public ValueTask Queue()
        {
            _core.Reset();
            var pending = new ValueTask(this, _core.Version);
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);
            return pending;
        }

        public void Execute() => _core.SetResult(true);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);

        public void GetResult(short token) => _core.GetResult(token);
    }
}

using Scipio.Core;
using Scipio.Interop;
using Scipio.Runtime;

namespace Scipio.Ring;

/// <summary>IORING_OP_ASYNC_CANCEL of another operation, or of everything on a ring (shutdown). The shard's own:
/// nobody awaits it, the book never backlogs it for completion-queue room, and it goes back to its pool at its
/// CQE. What it cancels reports through its own CQE (-ECANCELED, or its result if it finished first).</summary>
internal sealed class CancelOperation : IoOperation
{
    public CancelOperation(ShardExecutor owner, OperationTable table) : base(owner, table) => Class = OpClass.Internal;

    /// <summary>Cancels the operation whose user_data is <paramref name="target"/>.</summary>
    public void PrepareCancel(ulong target)
    {
        Begin("cancel", null, null, default);
        SqeWriter.AsyncCancel(ref Sqe, target, 0);
    }

    /// <summary>Cancels everything in flight on the ring.</summary>
    public void PrepareCancelAll()
    {
        Begin("cancel all", null, null, default);
        SqeWriter.AsyncCancel(ref Sqe, 0, IoUringConst.AsyncCancelAny);
    }

    /// <summary>Cancels every operation on descriptor <paramref name="fd"/> (it is being closed).</summary>
    public void PrepareCancelDescriptor(int fd)
    {
        Begin("cancel by descriptor", null, null, default);
        SqeWriter.AsyncCancelDescriptor(ref Sqe, fd);
    }

    public override CqeAction OnCqe(in IoUringCqe cqe) => CqeAction.Complete;

    public override void OnRetired() => Release();

    protected override void ReturnToPool() => Table.Return(this);

    protected override void Reset()
    {
        base.Reset();
        Class = OpClass.Internal;
    }
}

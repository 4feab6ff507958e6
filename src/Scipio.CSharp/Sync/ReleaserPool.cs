using Scipio.Runtime;

namespace Scipio.Sync;

/// <summary>A primitive's free <see cref="Releaser"/>s, handed out first in, first out, with a few always kept
/// spare: a releaser that was just disposed is handed out again only after the ones freed before it, so a stray
/// second Dispose soon after the first (the common mistake: an explicit Dispose and then the <c>using</c>'s) still
/// finds it not held and does nothing. Shard-local.</summary>
internal sealed class ReleaserPool(ShardExecutor executor, IReleaseTarget target, string member)
{
    private const int Spare = 4;      // at least this many free releasers stand between a release and its reuse
    private const int Limit = 1024;   // free releasers kept beyond a burst of holds

    private Releaser? _head, _tail;
    private int _free;

    public ShardExecutor Executor { get; } = executor;
    public IReleaseTarget Target { get; } = target;

    /// <summary>The public member named when a releaser is disposed off its shard.</summary>
    public string Member { get; } = member;

    public Releaser Rent(int kind)
    {
        Releaser releaser;
        if (_free <= Spare) releaser = new Releaser(this);
        else
        {
            releaser = _head!;
            _head = releaser.NextFree;
            if (_head is null) _tail = null;
            releaser.NextFree = null;
            _free--;
        }
        releaser.Take(kind);
        return releaser;
    }

    public void Return(Releaser releaser)
    {
        if (_free >= Limit) return;
        if (_tail is null) _head = releaser;
        else _tail.NextFree = releaser;
        _tail = releaser;
        _free++;
    }
}

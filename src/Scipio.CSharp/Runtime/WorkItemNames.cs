using System.Runtime.CompilerServices;

namespace Scipio.Runtime;

/// <summary>The name of what a work item runs, for a stall report: the async method whose continuation it is (the
/// compiler's state machine type names it: C#'s "&lt;Method&gt;d__N", F#'s "method@line"), else the delegate's
/// method. Reflection, so only when reporting.</summary>
internal static class WorkItemNames
{
    /// <summary>Names a work item from its <see cref="WorkItem.Subject"/>: the first candidate if it names an
    /// async method or delegate, else the second.</summary>
    public static string Of((object? First, object Second) subject)
    {
        if (subject.First is { } first && Of(first) is var name && name != Unknown(first)) return name;
        return Of(subject.Second);
    }

    /// <summary>Names <paramref name="subject"/>: a work item's state or callback, or a spawned function.</summary>
    public static string Of(object? subject, int depth = 0)
    {
        switch (subject)
        {
            case null:
                return "(unknown)";
            case IAsyncStateMachine machine:
                return OfStateMachine(machine.GetType());
            case Delegate d:
                if (d.Target is { } target && depth < 4 && Of(target, depth + 1) is var inner && inner != Unknown(target))
                    return inner;
                return $"{TypeName(d.Method.DeclaringType)}.{d.Method.Name}";
        }
        // An async method's box (AsyncStateMachineBox<TResult, TStateMachine>, a Task) carries the state machine's type.
        for (var type = subject.GetType(); type is not null; type = type.BaseType)
            if (type.IsGenericType)
                foreach (var argument in type.GetGenericArguments())
                    if (typeof(IAsyncStateMachine).IsAssignableFrom(argument))
                        return OfStateMachine(argument);
        return Unknown(subject);
    }

    private static string Unknown(object subject) => TypeName(subject.GetType());

    private static string OfStateMachine(Type machine)
    {
        string name = machine.Name;
        int open = name.IndexOf('<'), close = name.IndexOf('>');
        if (open == 0 && close > 1) name = name[1..close]; // C#: <Method>d__N
        else if (name.IndexOf('@') is int at and > 0) name = name[..at]; // F#: method@line
        return machine.DeclaringType is { } declaring ? $"{TypeName(declaring)}.{name}" : name;
    }

    private static string TypeName(Type? type)
    {
        if (type is null) return "?";
        string name = type.Name;
        int tick = name.IndexOf('`');
        return tick > 0 ? name[..tick] : name;
    }
}

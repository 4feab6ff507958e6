namespace Scipio.Net;

/// <summary>A kind of socket by its public name, with the names of its operations made once: an operation's name
/// is in every error message, and building it per call would allocate on the hot path.</summary>
internal sealed class SocketKind(string name)
{
    public static readonly SocketKind TcpStream = new(nameof(Net.TcpStream));
    public static readonly SocketKind UnixStream = new(nameof(Net.UnixStream));
    public static readonly SocketKind TcpListener = new(nameof(Net.TcpListener));
    public static readonly SocketKind UnixListener = new(nameof(Net.UnixListener));

    public string Name { get; } = name;
    public string Read { get; } = $"{name} read";
    public string Write { get; } = $"{name} write";
    public string Shutdown { get; } = $"{name} shutdown";
    public string Accept { get; } = $"{name} accept";
    public string Close { get; } = $"{name} close";

    public override string ToString() => Name;
}

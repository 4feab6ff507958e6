using System.Net.Sockets;

namespace Scipio.Interop;

/// <summary>Socket errnos as .NET reports them: a <see cref="SocketException"/> whose <see
/// cref="SocketException.SocketErrorCode"/> is what <c>System.Net.Sockets</c> would give for the same errno, with a
/// message that names the call, the errno and what to do.</summary>
internal static class SocketErrors
{
    public static SocketError ToSocketError(int errno) => errno switch
    {
        Errno.ECONNREFUSED => SocketError.ConnectionRefused,
        Errno.ECONNRESET => SocketError.ConnectionReset,
        Errno.EPIPE or Errno.ESHUTDOWN => SocketError.Shutdown,
        Errno.ETIMEDOUT => SocketError.TimedOut,
        Errno.EACCES or Errno.EPERM => SocketError.AccessDenied,
        Errno.EINVAL => SocketError.InvalidArgument,
        Errno.EAGAIN => SocketError.WouldBlock,
        Errno.ECANCELED => SocketError.OperationAborted,
        Errno.EMFILE or Errno.ENFILE => SocketError.TooManyOpenSockets,
        Errno.EADDRINUSE => SocketError.AddressAlreadyInUse,
        Errno.EADDRNOTAVAIL => SocketError.AddressNotAvailable,
        Errno.ENETUNREACH => SocketError.NetworkUnreachable,
        Errno.EHOSTUNREACH => SocketError.HostUnreachable,
        Errno.ECONNABORTED => SocketError.ConnectionAborted,
        Errno.ENOTCONN => SocketError.NotConnected,
        Errno.EMSGSIZE => SocketError.MessageSize,
        Errno.EAFNOSUPPORT => SocketError.AddressFamilyNotSupported,
        Errno.ENOBUFS => SocketError.NoBufferSpaceAvailable,
        _ => SocketError.SocketError,
    };

    private static string Advice(int errno) => errno switch
    {
        Errno.EADDRINUSE => "Another socket is bound to that address: pick another port (0 lets the kernel choose), stop " +
            "the program that holds it, or bind every listener of the port with ReusePort.",
        Errno.EADDRNOTAVAIL => "The address is not one of this machine's.",
        Errno.ECONNREFUSED => "Nothing listens there: check the address and port, and that the server runs.",
        Errno.ECONNRESET => "The peer reset the connection (it closed with data unread, or crashed).",
        Errno.EPIPE => "The connection is closed for writing (the peer went away, or it was shut down).",
        Errno.EMFILE or Errno.ENFILE => "Too many open descriptors: close some, or raise the limit (ulimit -n).",
        _ => "",
    };

    /// <summary>The exception for a failed socket call.</summary>
    public static SocketException ToException(int errno, string operation)
    {
        var error = ToSocketError(errno);
        string message = $"{operation} failed: {error} ({Errno.Name(errno)}, errno {errno}). {Advice(errno)}".TrimEnd();
        return new SocketException((int)error, message);
    }
}

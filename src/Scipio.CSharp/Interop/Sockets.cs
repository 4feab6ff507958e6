using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Scipio.Interop;

/// <summary>The socket calls that never block, made directly (bind, listen, options, names), and the kernel's
/// socket address layouts. Everything that may wait goes through the ring instead.</summary>
internal static unsafe partial class SocketCalls
{
    private const string Lib = "libc";

    public const int AfUnix = 1, AfInet = 2, AfInet6 = 10;
    public const int SockStream = 1, SockDgram = 2, SockCloexec = 0x80000;
    public const int SolSocket = 1, SoReuseAddr = 2, SoReusePort = 15, SoError = 4, SoRcvBuf = 8, SoLinger = 13;
    public const int IpProtoTcp = 6, TcpNoDelay = 1, IpProtoIpv6 = 41, Ipv6V6Only = 26;
    public const int MsgNoSignal = 0x4000, MsgTrunc = 0x20;
    /// <summary>A multishot receive's provided-buffer ring ran dry.</summary>
    public const int ENOBUFS = 105;
    /// <summary>The largest address any of the families here uses (sockaddr_un: 110 bytes), rounded up.</summary>
    public const int MaxAddressLength = 128;

    [LibraryImport(Lib, EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Lib, EntryPoint = "bind", SetLastError = true)]
    public static partial int Bind(int fd, byte* address, int length);

    [LibraryImport(Lib, EntryPoint = "connect", SetLastError = true)]
    public static partial int Connect(int fd, byte* address, int length);

    [LibraryImport(Lib, EntryPoint = "listen", SetLastError = true)]
    public static partial int Listen(int fd, int backlog);

    [LibraryImport(Lib, EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(int fd, int level, int name, int* value, int length);

    [LibraryImport(Lib, EntryPoint = "getsockopt", SetLastError = true)]
    public static partial int GetSockOpt(int fd, int level, int name, int* value, int* length);

    [LibraryImport(Lib, EntryPoint = "getsockname", SetLastError = true)]
    public static partial int GetSockName(int fd, byte* address, int* length);

    [LibraryImport(Lib, EntryPoint = "getpeername", SetLastError = true)]
    public static partial int GetPeerName(int fd, byte* address, int* length);

    /// <summary>Sets an int option; false (errno in <see cref="Libc.LastErrno"/>) on failure.</summary>
    public static bool SetOption(int fd, int level, int name, int value) => SetSockOpt(fd, level, name, &value, sizeof(int)) == 0;

    /// <summary>SO_LINGER on with a zero timeout: closing the socket then resets a TCP connection (RST) and drops
    /// unsent data, where a plain close would send the rest and a FIN. false (errno set) on failure.</summary>
    public static bool SetLingerZero(int fd)
    {
        int* linger = stackalloc int[2] { 1, 0 }; // struct linger { int l_onoff; int l_linger; }
        return SetSockOpt(fd, SolSocket, SoLinger, linger, 2 * sizeof(int)) == 0;
    }

    private const int FDupFdCloexec = 1030;

    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);

    /// <summary>A new descriptor for the same open socket (fcntl F_DUPFD_CLOEXEC); -1 (errno set) on failure.</summary>
    public static int Duplicate(int fd) => Fcntl(fd, FDupFdCloexec, 0);

    public static int GetOption(int fd, int level, int name)
    {
        int value = 0, length = sizeof(int);
        return GetSockOpt(fd, level, name, &value, &length) == 0 ? value : -1;
    }

    /// <summary>The address family of an endpoint.</summary>
    public static int FamilyOf(EndPoint endPoint) => endPoint switch
    {
        IPEndPoint { AddressFamily: AddressFamily.InterNetwork } => AfInet,
        IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } => AfInet6,
        UnixDomainSocketEndPoint => AfUnix,
        _ => throw new ArgumentException($"Endpoint {endPoint} is not IPv4, IPv6 or a Unix socket path.", nameof(endPoint)),
    };

    /// <summary>Writes <paramref name="endPoint"/> as the kernel's sockaddr; returns its length.</summary>
    public static int Encode(EndPoint endPoint, Span<byte> into)
    {
        into.Clear();
        switch (endPoint)
        {
            case IPEndPoint ip when ip.AddressFamily == AddressFamily.InterNetwork:
                MemoryMarshal.Write(into, (ushort)AfInet);
                into[2] = (byte)(ip.Port >> 8); // the port in network byte order
                into[3] = (byte)ip.Port;
                ip.Address.TryWriteBytes(into.Slice(4, 4), out _);
                return 16;
            case IPEndPoint ip when ip.AddressFamily == AddressFamily.InterNetworkV6:
                MemoryMarshal.Write(into, (ushort)AfInet6);
                into[2] = (byte)(ip.Port >> 8);
                into[3] = (byte)ip.Port;
                ip.Address.TryWriteBytes(into.Slice(8, 16), out _); // after sin6_flowinfo
                MemoryMarshal.Write(into.Slice(24), (uint)ip.Address.ScopeId);
                return 28;
            case UnixDomainSocketEndPoint unix:
                // .NET's own encoding: it knows the path, which ToString shows with '@' for an abstract name.
                var native = unix.Serialize();
                for (int i = 0; i < native.Size; i++) into[i] = native[i];
                return native.Size;
            default:
                throw new ArgumentException($"Endpoint {endPoint} is not IPv4, IPv6 or a Unix socket path.", nameof(endPoint));
        }
    }

    /// <summary>A Unix socket endpoint for a path, or an abstract name (a leading '\0'), checked.</summary>
    public static UnixDomainSocketEndPoint UnixEndPoint(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        int length = Encoding.UTF8.GetByteCount(path);
        if (length > 107)
            throw new ArgumentException($"A Unix socket path is at most 107 bytes; '{path.Replace("\0", "\\0")}' is {length}.", nameof(path));
        return new UnixDomainSocketEndPoint(path);
    }

    /// <summary>Reads a sockaddr the kernel wrote.</summary>
    public static EndPoint Decode(ReadOnlySpan<byte> address)
    {
        int family = address.Length >= 2 ? MemoryMarshal.Read<ushort>(address) : 0;
        int port = address.Length >= 4 ? (address[2] << 8) | address[3] : 0;
        switch (family)
        {
            case AfInet:
                return new IPEndPoint(new IPAddress(address.Slice(4, 4)), port);
            case AfInet6:
                return new IPEndPoint(new IPAddress(address.Slice(8, 16), MemoryMarshal.Read<uint>(address.Slice(24))), port);
            case AfUnix:
                var path = address.Slice(2);
                if (path.Length == 0) return new UnixDomainSocketEndPoint("\0"); // unnamed (a connecting socket)
                if (path[0] != 0 && path.IndexOf((byte)0) is int nul and >= 0) path = path.Slice(0, nul);
                return new UnixDomainSocketEndPoint(Encoding.UTF8.GetString(path));
            default:
                throw new InvalidOperationException($"Unexpected socket address family {family}.");
        }
    }

    /// <summary>getsockname or getpeername, decoded.</summary>
    public static EndPoint Name(int fd, bool peer)
    {
        byte* address = stackalloc byte[MaxAddressLength];
        int length = MaxAddressLength;
        int rc = peer ? GetPeerName(fd, address, &length) : GetSockName(fd, address, &length);
        if (rc != 0) throw SocketErrors.ToException(Libc.LastErrno, peer ? "getpeername" : "getsockname");
        return Decode(new ReadOnlySpan<byte>(address, Math.Min(length, MaxAddressLength)));
    }

    /// <summary>A new socket of <paramref name="type"/> for <paramref name="at"/>'s family, with the reuse options
    /// asked for, bound to <paramref name="at"/>; closed again if any step fails. None of these calls waits.</summary>
    public static FileDescriptor OpenBound(EndPoint at, int type, bool reuseAddress, bool reusePort, string kind)
    {
        int descriptor = Socket(FamilyOf(at), type | SockCloexec, 0);
        if (descriptor < 0) throw SocketErrors.ToException(Libc.LastErrno, $"{kind} socket");
        var fd = new FileDescriptor(descriptor);
        try
        {
            if (reuseAddress && !SetOption(descriptor, SolSocket, SoReuseAddr, 1))
                throw SocketErrors.ToException(Libc.LastErrno, $"{kind} SO_REUSEADDR");
            if (reusePort && !SetOption(descriptor, SolSocket, SoReusePort, 1))
                throw SocketErrors.ToException(Libc.LastErrno, $"{kind} SO_REUSEPORT");
            // [::] takes IPv4 connections too (as .NET's dual-mode sockets and Kestrel do), whatever the system's
            // net.ipv6.bindv6only says.
            if (at is IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } ip && ip.Address.Equals(IPAddress.IPv6Any)
                && !SetOption(descriptor, IpProtoIpv6, Ipv6V6Only, 0))
                throw SocketErrors.ToException(Libc.LastErrno, $"{kind} IPV6_V6ONLY");
            BindTo(descriptor, at);
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>bind, with an error that says what to do when the address is taken.</summary>
    public static void BindTo(int fd, EndPoint endPoint)
    {
        Span<byte> address = stackalloc byte[MaxAddressLength];
        int length = Encode(endPoint, address);
        fixed (byte* p = address)
            if (Bind(fd, p, length) != 0)
                throw SocketErrors.ToException(Libc.LastErrno, $"bind to {Describe(endPoint)}");
    }

    /// <summary>connect(2) that does not wait: a datagram socket's default destination.</summary>
    public static void ConnectTo(int fd, EndPoint endPoint, string kind)
    {
        Span<byte> address = stackalloc byte[MaxAddressLength];
        int length = Encode(endPoint, address);
        fixed (byte* p = address)
            if (Connect(fd, p, length) != 0)
                throw SocketErrors.ToException(Libc.LastErrno, $"{kind} connect to {Describe(endPoint)}");
    }

    /// <summary>An endpoint as a message shows it (an abstract Unix name with its leading NUL as "\0").</summary>
    public static string Describe(EndPoint endPoint) =>
        endPoint is UnixDomainSocketEndPoint unix ? $"Unix socket '{unix}'" : endPoint.ToString() ?? "";
}

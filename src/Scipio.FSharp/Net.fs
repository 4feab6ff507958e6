namespace Scipio.Net

open System
open System.Net
open System.Threading.Tasks

/// TCP listeners from F# (one per shard on a port: SO_REUSEPORT).
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module TcpListener =
    /// Listens on `endpoint` (port 0: the kernel picks one; see LocalEndPoint).
    let bind (endpoint: IPEndPoint) : TcpListener = TcpListener.Bind endpoint

    /// The next connection, served by this shard.
    let accept (listener: TcpListener) : ValueTask<TcpStream> = listener.AcceptAsync()

    /// The port the listener is bound to.
    let port (listener: TcpListener) : int = listener.LocalEndPoint.Port

/// TCP connections from F#: pipe-friendly wrappers over TcpStream, the stream last.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module TcpStream =
    /// Connects to `endpoint` through this shard's ring.
    let connect (endpoint: IPEndPoint) : ValueTask<TcpStream> = TcpStream.ConnectAsync endpoint

    /// Reads what has arrived into `buffer`, waiting for at least one byte; 0 when the peer has closed.
    let read (buffer: Memory<byte>) (stream: TcpStream) : ValueTask<int> = stream.ReadAsync buffer

    /// Writes all of `data`.
    let write (data: ReadOnlyMemory<byte>) (stream: TcpStream) : ValueTask = stream.WriteAsync data

    /// Writes all of `data`.
    let writeBytes (data: byte array) (stream: TcpStream) : ValueTask = stream.WriteAsync(ReadOnlyMemory data)

    /// Closes the connection.
    let close (stream: TcpStream) : ValueTask = stream.DisposeAsync()

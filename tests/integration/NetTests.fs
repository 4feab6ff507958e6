/// Scipio.Net on the real kernel: TCP on 127.0.0.1 and [::1] port 0, Unix sockets, UDP. Most tests run the server
/// and its clients as tasks of one shard (both ends through the same ring); some drive a System.Net.Sockets peer
/// from a plain thread where the test needs what only it does (a reset).
module Scipio.Integration.Tests.NetTests

open System
open System.Buffers
open System.IO
open System.Net
open System.Net.Sockets
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Net
open Scipio.Integration.Tests.Helpers

let private loopback4 = IPEndPoint(IPAddress.Loopback, 0)
let private loopback6 = IPEndPoint(IPAddress.IPv6Loopback, 0)

/// Deterministic bytes that differ with position and seed.
let private pattern (seed: int) (length: int) =
    Array.init length (fun i -> byte ((i * 131 + seed * 17 + (i >>> 10)) &&& 0xFF))

/// Reads exactly `count` bytes (or until the end of the stream) from a connection.
let private readExactly (stream: SocketStream) (count: int) =
    task {
        let into = Array.zeroCreate<byte> count
        let mutable got = 0
        let mutable ended = false

        while got < count && not ended do
            let! n = stream.ReadAsync(Memory(into, got, count - got))
            if n = 0 then ended <- true else got <- got + n

        return into[0 .. got - 1]
    }

/// Writes `data` in a task of its own, so the caller can read the answer meanwhile.
let private writeInBackground (stream: SocketStream) (data: byte[]) =
    spawn (fun () ->
        task {
            do! stream.WriteAsync(ReadOnlyMemory data)
            return 0
        })

/// Echoes until the end of the stream, then closes.
let private echo (stream: SocketStream) =
    task {
        let buffer = Array.zeroCreate<byte> 65536
        let mutable go = true

        while go do
            let! n = stream.ReadAsync(Memory buffer)

            if n = 0 then
                go <- false
            else
                do! stream.WriteAsync(ReadOnlyMemory(buffer, 0, n))

        do! stream.DisposeAsync()
        return 0
    }

let private echoRoundTrip (local: IPEndPoint) =
    test $"echo of 1 B … 1 MiB messages is byte-exact on %O{local.Address}" {
        let sizes = [ 1; 2; 63; 64; 1000; 4096; 8191; 8192; 8193; 65536; 100_000; 1 <<< 20 ]

        let results =
            runShard (fun () ->
                task {
                    let! listener = task { return TcpListener.Bind local }

                    let server =
                        spawn (fun () ->
                            task {
                                let! connection = listener.AcceptAsync()
                                return! echo connection
                            })

                    let! client =
                        TcpStream.ConnectAsync(IPEndPoint(local.Address, listener.LocalEndPoint.Port))

                    let results = ResizeArray()

                    for size in sizes do
                        let message = pattern size size
                        // Write and read concurrently: a 1 MiB message does not fit in the sockets' buffers.
                        let writing = writeInBackground client message
                        let! back = readExactly client size
                        let! _ = writing
                        results.Add((size, (back = message)))

                    let remote = client.RemoteEndPoint
                    do! client.ShutdownAsync SocketShutdown.Send
                    let! atEnd = client.ReadAsync(Memory(Array.zeroCreate 16))
                    let! _ = server
                    do! client.DisposeAsync()
                    do! listener.DisposeAsync()
                    return List.ofSeq results, remote.Port = listener.LocalEndPoint.Port, atEnd
                })

        let echoed, portsAgree, atEnd = results

        for size, ok in echoed do
            Expect.isTrue ok $"a %d{size}-byte message comes back byte-exact"

        Expect.isTrue portsAgree "the client's RemoteEndPoint is the listener's port"
        Expect.equal atEnd 0 "after the server closed, a read returns 0 (the end of the stream)"
    }

let private manyConnections =
    test "1,000 concurrent connections on one shard each echo their own message" {
        let count = 1000

        let allOk, submittedPerIdle =
            runShard (fun () ->
                task {
                    let listener = TcpListener.Bind loopback4
                    let port = listener.LocalEndPoint.Port

                    let server =
                        spawn (fun () ->
                            task {
                                let handlers = ResizeArray()

                                for _ in 1..count do
                                    let! connection = listener.AcceptAsync()
                                    handlers.Add(spawn (fun () -> echo connection))

                                let! _ = Task.WhenAll handlers
                                return 0
                            })

                    let! clients =
                        Task.WhenAll(
                            Array.init count (fun _ ->
                                TcpStream.ConnectAsync(IPEndPoint(IPAddress.Loopback, port)).AsTask())
                        )

                    // Every connection idles with a receive armed: those are lingering, the ring has room.
                    let before = Shard.Stats.Main.Submitted

                    let! answers =
                        Task.WhenAll(
                            clients
                            |> Array.mapi (fun i client ->
                                spawn (fun () ->
                                    task {
                                        let message = pattern i (1 + i % 200)
                                        do! client.WriteAsync(ReadOnlyMemory message)
                                        let! back = readExactly client message.Length
                                        do! client.DisposeAsync()
                                        return back = message
                                    }))
                        )

                    let! _ = server
                    do! listener.DisposeAsync()
                    return Array.forall id answers, Shard.Stats.Main.Submitted - before
                })

        Expect.isTrue allOk "every one of the 1,000 connections got its own message back"
        Expect.isGreaterThan submittedPerIdle 0L "the connections did I/O through the main ring"
    }

let private halfClose =
    test "half-close: after ShutdownAsync(Send) the peer reads the end, and can still send back" {
        let result =
            runShard (fun () ->
                task {
                    let listener = TcpListener.Bind loopback4

                    let server =
                        spawn (fun () ->
                            task {
                                let! connection = listener.AcceptAsync()
                                let! request = readExactly connection 1000 // reads to the end: the client sent 5 bytes
                                do! connection.WriteAsync(ReadOnlyMemory(Array.append "got:"B request))
                                do! connection.DisposeAsync()
                                return request.Length
                            })

                    let! client =
                        TcpStream.ConnectAsync(IPEndPoint(IPAddress.Loopback, listener.LocalEndPoint.Port))

                    do! client.WriteAsync(ReadOnlyMemory "hello"B)
                    do! client.ShutdownAsync SocketShutdown.Send
                    let! answer = readExactly client 100
                    let! serverSaw = server
                    do! client.DisposeAsync()
                    do! listener.DisposeAsync()
                    return serverSaw, answer
                })

        Expect.equal
            result
            (5, "got:hello"B)
            "the server saw 5 bytes then the end; its answer arrived after our shutdown"
    }

let private peerReset =
    test "a peer that resets: the read throws SocketException ConnectionReset; the shard goes on" {
        let error, after =
            runShard (fun () ->
                task {
                    let listener = TcpListener.Bind loopback4
                    let port = listener.LocalEndPoint.Port
                    // A System.Net.Sockets peer on a thread of its own: linger 0 makes its close a reset.
                    let peer =
                        Task.Factory.StartNew(
                            (fun () ->
                                use socket = new Socket(SocketType.Stream, ProtocolType.Tcp)
                                socket.Connect(IPEndPoint(IPAddress.Loopback, port))
                                socket.Send("x"B) |> ignore
                                socket.LingerState <- LingerOption(true, 0)
                                socket.Close()),
                            CancellationToken.None,
                            TaskCreationOptions.LongRunning,
                            TaskScheduler.Default
                        )

                    let! connection = listener.AcceptAsync()
                    let buffer = Array.zeroCreate<byte> 16
                    let! first = connection.ReadAsync(Memory buffer)
                    do! peer
                    let! error = thrownByTask (fun () -> connection.ReadAsync(Memory buffer).AsTask())
                    do! connection.DisposeAsync()
                    // The listener still works.
                    let! client = TcpStream.ConnectAsync(IPEndPoint(IPAddress.Loopback, port))
                    let! accepted = listener.AcceptAsync()
                    do! client.WriteAsync(ReadOnlyMemory "ok"B)
                    let! back = readExactly accepted 2
                    do! client.DisposeAsync()
                    do! accepted.DisposeAsync()
                    do! listener.DisposeAsync()
                    return (first, error), back
                })

        let first, thrown = error
        Expect.equal first 1 "the byte sent before the reset was read"
        let e = expectExn<SocketException> "read after the peer reset" thrown
        Expect.equal e.SocketErrorCode SocketError.ConnectionReset "ConnectionReset"
        Expect.equal after "ok"B "a new connection on the same listener works"
    }

let private cancelThenReuse =
    test "cancel a pending accept and a pending read, then both the listener and the connection work, losing nothing" {
        let acceptCanceled, readCanceled, message, secondMessage =
            runShard (fun () ->
                task {
                    let listener = TcpListener.Bind loopback4
                    let port = listener.LocalEndPoint.Port
                    use cts1 = new CancellationTokenSource()
                    let accepting = listener.AcceptAsync(cts1.Token).AsTask()
                    do! Shard.Yield()
                    cts1.Cancel()
                    let! acceptCanceled = thrownByTask (fun () -> accepting)

                    let! client = TcpStream.ConnectAsync(IPEndPoint(IPAddress.Loopback, port))
                    let! server = listener.AcceptAsync()
                    use cts2 = new CancellationTokenSource()
                    let reading = server.ReadAsync(Memory(Array.zeroCreate 16), cts2.Token).AsTask()
                    do! Shard.Yield()
                    cts2.Cancel()
                    let! readCanceled = thrownByTask (fun () -> reading)

                    do! client.WriteAsync(ReadOnlyMemory "after cancel"B)
                    let! message = readExactly server 12
                    // And a read canceled from another thread.
                    use cts3 = new CancellationTokenSource()
                    let reading = server.ReadAsync(Memory(Array.zeroCreate 16), cts3.Token).AsTask()
                    do! Task.Run(fun () -> cts3.Cancel())
                    let! _ = thrownByTask (fun () -> reading)
                    do! client.WriteAsync(ReadOnlyMemory "again"B)
                    let! second = readExactly server 5
                    do! client.DisposeAsync()
                    do! server.DisposeAsync()
                    do! listener.DisposeAsync()
                    return acceptCanceled, readCanceled, message, second
                })

        expectExn<OperationCanceledException> "the canceled accept" acceptCanceled
        |> ignore

        expectExn<OperationCanceledException> "the canceled read" readCanceled |> ignore
        Expect.equal message "after cancel"B "the connection reads on after a canceled read"
        Expect.equal secondMessage "again"B "and after a read canceled from another thread"
    }

let private zeroCopyWrites =
    test
        "writes sent zero-copy (SEND_ZC, above its threshold) arrive byte-exact; the buffer is free once the write returns" {
        let saved = SocketConnection.ZeroCopyWriteThreshold
        SocketConnection.ZeroCopyWriteThreshold <- 64 <<< 10

        try
            let ok =
                runShard (fun () ->
                    task {
                        let listener = TcpListener.Bind loopback4
                        let accepting = listener.AcceptAsync()
                        let! client = TcpStream.ConnectAsync listener.LocalEndPoint
                        let! server = accepting
                        let message = pattern 5 (1 <<< 20)
                        let buffer = Array.copy message

                        let writing =
                            spawn (fun () ->
                                task {
                                    do! client.WriteAsync(ReadOnlyMemory buffer)
                                    // The kernel has let go of the buffer: scribbling on it now must not show.
                                    Array.fill buffer 0 buffer.Length 0uy
                                    return 0
                                })

                        let! back = readExactly server message.Length
                        let! _ = writing
                        do! client.DisposeAsync()
                        do! server.DisposeAsync()
                        do! listener.DisposeAsync()
                        return back = message
                    })

            Expect.isTrue ok "1 MiB sent zero-copy arrived byte-exact"
        finally
            SocketConnection.ZeroCopyWriteThreshold <- saved
    }

let private errors =
    test "connect refused, port in use, disposed and wrong-shard use: the exceptions the API documents" {
        let refused, inUse, disposed, emptyPath =
            runShard (fun () ->
                task {
                    // A port nothing listens on: bind one, note it, close it.
                    let probe = TcpListener.Bind loopback4
                    let freePort = probe.LocalEndPoint.Port
                    do! probe.DisposeAsync()

                    let! refused =
                        thrownByTask (fun () ->
                            TcpStream.ConnectAsync(IPEndPoint(IPAddress.Loopback, freePort)).AsTask())

                    let first = TcpListener.Bind(loopback4, TcpListenerOptions(ReusePort = false))

                    let inUse =
                        thrownBy (fun () ->
                            TcpListener.Bind(
                                IPEndPoint(IPAddress.Loopback, first.LocalEndPoint.Port),
                                TcpListenerOptions(ReusePort = false)
                            ))

                    do! first.DisposeAsync()

                    let listener = TcpListener.Bind loopback4
                    do! listener.DisposeAsync()
                    let! disposed = thrownByTask (fun () -> listener.AcceptAsync().AsTask())
                    let emptyPath = thrownBy (fun () -> UnixListener.Bind "")
                    return refused, inUse, disposed, emptyPath
                })

        let e = expectExn<SocketException> "connect to a closed port" refused
        Expect.equal e.SocketErrorCode SocketError.ConnectionRefused "ConnectionRefused"
        let e = expectExn<SocketException> "bind to a port in use" inUse
        Expect.equal e.SocketErrorCode SocketError.AddressAlreadyInUse "AddressAlreadyInUse"
        Expect.stringContains e.Message "pick another port" "the message says what to do"

        expectExn<ObjectDisposedException> "accept on a disposed listener" disposed
        |> ignore

        expectExn<ArgumentException> "an empty Unix path" emptyPath |> ignore
        let offShard = thrownBy (fun () -> TcpListener.Bind loopback4)
        expectExn<InvalidOperationException> "Bind off a shard" offShard |> ignore
    }

let private disposeAndOwnership =
    test "disposing a connection ends its pending read (OperationAborted); another shard's use is refused" {
        let aborted, afterDispose, wrongShard =
            runShard (fun () ->
                task {
                    let listener = TcpListener.Bind loopback4

                    let! client =
                        TcpStream.ConnectAsync(IPEndPoint(IPAddress.Loopback, listener.LocalEndPoint.Port))

                    let! server = listener.AcceptAsync()
                    let reading = server.ReadAsync(Memory(Array.zeroCreate 16)).AsTask()
                    do! Shard.Yield()
                    do! server.DisposeAsync()
                    let! aborted = thrownByTask (fun () -> reading)

                    let! afterDispose =
                        thrownByTask (fun () -> server.ReadAsync(Memory(Array.zeroCreate 16)).AsTask())

                    let other =
                        Shard.Start(
                            Func<Task<exn option>>(fun () ->
                                thrownByTask (fun () -> task { do! client.WriteAsync(ReadOnlyMemory [| 1uy |]) }))
                        )

                    let! wrongShard = other.Completion
                    do! client.DisposeAsync()
                    do! listener.DisposeAsync()
                    return aborted, afterDispose, wrongShard
                })

        let e = expectExn<SocketException> "the read pending at dispose" aborted
        Expect.equal e.SocketErrorCode SocketError.OperationAborted "OperationAborted, as System.Net.Sockets"
        expectExn<ObjectDisposedException> "a read after dispose" afterDispose |> ignore
        let e = expectExn<InvalidOperationException> "a write from another shard" wrongShard
        Expect.stringContains e.Message "belongs to shard" "the message says whose it is"
    }

let private unixRoundTrip =
    test "Unix stream sockets round-trip, by path and by abstract name" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "echo.sock")
            let abstractName = $"\000scipio-test-{Environment.ProcessId}"

            let results =
                runShard (fun () ->
                    task {
                        let results = ResizeArray()

                        for name in [ path; abstractName ] do
                            let listener = UnixListener.Bind name

                            let server =
                                spawn (fun () ->
                                    task {
                                        let! c = listener.AcceptAsync()
                                        return! echo c
                                    })

                            let! client = UnixStream.ConnectAsync name
                            let message = pattern 3 50_000
                            let writing = writeInBackground client message
                            let! back = readExactly client message.Length
                            let! _ = writing
                            do! client.DisposeAsync()
                            let! _ = server
                            do! listener.DisposeAsync()
                            results.Add((back = message))

                        return List.ofSeq results
                    })

            Expect.equal results [ true; true ] "both a path and an abstract name echo byte-exact")
    }

let private udpRoundTrip =
    test "UDP datagrams round-trip with their sender's address (IPv4 and IPv6)" {
        let results =
            runShard (fun () ->
                task {
                    let results = ResizeArray()

                    for local in [ loopback4; loopback6 ] do
                        let! a = task { return UdpSocket.Bind local }
                        let b = UdpSocket.Bind local
                        let receiving = b.ReceiveFromAsync(Memory(Array.zeroCreate 1500)).AsTask()
                        let! sent = a.SendToAsync(ReadOnlyMemory "datagram"B, b.LocalEndPoint)
                        let! got = receiving
                        // Connected: SendAsync goes to the one peer.
                        a.Connect b.LocalEndPoint
                        let buffer = Array.zeroCreate 1500
                        let receiving = b.ReceiveFromAsync(Memory buffer).AsTask()
                        let! _ = a.SendAsync(ReadOnlyMemory "second"B)
                        let! got2 = receiving

                        results.Add(
                            sent,
                            got.ReceivedBytes,
                            got.RemoteEndPoint = (a.LocalEndPoint :> EndPoint),
                            Text.Encoding.ASCII.GetString(buffer, 0, got2.ReceivedBytes)
                        )

                        do! a.DisposeAsync()
                        do! b.DisposeAsync()

                    return List.ofSeq results
                })

        for sent, received, fromA, second in results do
            Expect.equal (sent, received) (8, 8) "8 bytes sent, 8 received"
            Expect.isTrue fromA "the sender's address is the sending socket's"
            Expect.equal second "second" "the connected send arrived"
    }

let private adapters =
    test "StreamReader reads lines over AsStream(); a PipeReader line parser works over AsPipe()" {
        let lines, parsed =
            runShard (fun () ->
                task {
                    let listener = TcpListener.Bind loopback4
                    let port = listener.LocalEndPoint.Port
                    let text = String.Join("\n", [ for i in 1..500 -> $"line {i}" ]) + "\n"

                    let sender =
                        spawn (fun () ->
                            task {
                                for _ in 1..2 do
                                    let! connection = listener.AcceptAsync()
                                    do! connection.WriteAsync(ReadOnlyMemory(Text.Encoding.UTF8.GetBytes text))
                                    do! connection.DisposeAsync()

                                return 0
                            })

                    let! first = TcpStream.ConnectAsync(IPEndPoint(IPAddress.Loopback, port))
                    use reader = new StreamReader(first.AsStream())
                    let lines = ResizeArray()
                    let mutable line = null
                    let! l = reader.ReadLineAsync()
                    line <- l

                    while not (isNull line) do
                        lines.Add line
                        let! l = reader.ReadLineAsync()
                        line <- l

                    do! first.DisposeAsync()

                    let! second = TcpStream.ConnectAsync(IPEndPoint(IPAddress.Loopback, port))
                    let pipe = second.AsPipe().Input
                    let parsed = ResizeArray()
                    let mutable finished = false

                    while not finished do
                        let! result = pipe.ReadAsync()
                        let mutable buffer = result.Buffer
                        let mutable position = buffer.PositionOf(byte '\n')

                        while position.HasValue do
                            parsed.Add(Text.Encoding.UTF8.GetString(buffer.Slice(0, position.Value).ToArray()))
                            buffer <- buffer.Slice(buffer.GetPosition(1L, position.Value))
                            position <- buffer.PositionOf(byte '\n')

                        pipe.AdvanceTo(buffer.Start, buffer.End)
                        finished <- result.IsCompleted

                    do! pipe.CompleteAsync()
                    do! second.DisposeAsync()
                    let! _ = sender
                    do! listener.DisposeAsync()
                    return List.ofSeq lines, List.ofSeq parsed
                })

        let expected = [ for i in 1..500 -> $"line {i}" ]
        Expect.equal lines expected "StreamReader saw every line"
        Expect.equal parsed expected "the PipeReader parser saw every line"
    }

let private openDescriptors () =
    Directory.GetFiles("/proc/self/fd").Length

let private noFdLeak =
    test "10,000 connect/accept/close cycles leave no descriptor behind" {
        let before = openDescriptors ()

        let cycles =
            runShard (fun () ->
                task {
                    let listener = TcpListener.Bind loopback4
                    let target = IPEndPoint(IPAddress.Loopback, listener.LocalEndPoint.Port)
                    let mutable done' = 0

                    for i in 1..10_000 do
                        let! client = TcpStream.ConnectAsync target
                        let! server = listener.AcceptAsync()

                        if i % 100 = 0 then
                            // Now and then a byte crosses, so the receive path is armed and torn down too.
                            do! client.WriteAsync(ReadOnlyMemory [| byte i |])
                            let! _ = server.ReadAsync(Memory(Array.zeroCreate 1))
                            ()

                        do! client.DisposeAsync()
                        do! server.DisposeAsync()
                        done' <- done' + 1

                    do! listener.DisposeAsync()
                    return done'
                })

        Expect.equal cycles 10_000 "every cycle completed"

        Expect.isLessThanOrEqual
            (openDescriptors ())
            (before + 2)
            "the process holds no more descriptors than before (± the runtime's own)"
    }

let private zeroAllocEcho =
    test "the server allocates 0 B per echoed message in steady state" {
        let warmup, measured = 2_000, 20_000
        use sampler = new AllocationSampler()

        let bytes =
            runShard (fun () ->
                task {
                    let listener = TcpListener.Bind loopback4
                    let port = listener.LocalEndPoint.Port
                    // The client is System.Net.Sockets on a thread of its own: only the server runs on the shard.
                    let client =
                        Task.Factory.StartNew(
                            (fun () ->
                                use socket = new Socket(SocketType.Stream, ProtocolType.Tcp, NoDelay = true)
                                socket.Connect(IPEndPoint(IPAddress.Loopback, port))
                                let message = pattern 1 64
                                let back = Array.zeroCreate<byte> 64

                                for _ in 1 .. warmup + measured do
                                    socket.Send message |> ignore
                                    let mutable got = 0

                                    while got < 64 do
                                        got <- got + socket.Receive(back, got, 64 - got, SocketFlags.None)

                                socket.Shutdown SocketShutdown.Send),
                            CancellationToken.None,
                            TaskCreationOptions.LongRunning,
                            TaskScheduler.Default
                        )

                    let! connection = listener.AcceptAsync()
                    let buffer = Array.zeroCreate<byte> 4096
                    let mutable echoed = 0
                    let mutable start = 0L
                    let mutable finish = 0L
                    let mutable go = true
                    // Counts bytes, not reads: a read may return part of a message or several.
                    let mutable bytesEchoed = 0

                    while go do
                        let! n = connection.ReadAsync(Memory buffer)

                        if n = 0 then
                            go <- false
                        else
                            do! connection.WriteAsync(ReadOnlyMemory(buffer, 0, n))
                            bytesEchoed <- bytesEchoed + n

                            if start = 0L && bytesEchoed >= warmup * 64 then
                                start <- GC.GetAllocatedBytesForCurrentThread()

                            if finish = 0L && bytesEchoed >= (warmup + measured) * 64 then
                                finish <- GC.GetAllocatedBytesForCurrentThread()

                            echoed <- echoed + 1

                    do! client
                    do! connection.DisposeAsync()
                    do! listener.DisposeAsync()
                    return finish - start
                })

        Expect.isLessThanOrEqual
            bytes
            4096L
            $"%d{bytes} B over %d{measured} echoed messages (sampled allocations: %s{sampler.Summary}): nothing per message"
    }

let private twoShardPool =
    test "a 2-shard pool on one port (ReusePort): connections are accepted on both shards" {
        let pool =
            ShardPool.Start(
                ShardPoolOptions(
                    Shards = 2,
                    Placement = PoolPlacement.MaxSpread [ 0; 1 ],
                    PerShard = ShardOptions(SpinBeforePark = TimeSpan.FromMicroseconds 200.0)
                )
            )

        let listeners = Array.zeroCreate<TcpListener> 2

        let port =
            submit pool 0 (fun () ->
                task {
                    listeners[0] <- TcpListener.Bind loopback4
                    return listeners[0].LocalEndPoint.Port
                })

        submit pool 1 (fun () -> task { listeners[1] <- TcpListener.Bind(IPEndPoint(IPAddress.Loopback, port)) })

        let connections = 64
        // Each shard accepts until the total reaches 64: the count lives on shard 0, and shard 1 adds to it there.
        let accepted = Array.zeroCreate<int> 2
        use stop = new CancellationTokenSource()

        let serving =
            pool.RunOnAll(fun () ->
                task {
                    let listener = listeners[Shard.Id]

                    try
                        while true do
                            let! c = listener.AcceptAsync stop.Token
                            accepted[Shard.Id] <- accepted[Shard.Id] + 1
                            do! c.DisposeAsync()
                    with :? OperationCanceledException ->
                        ()

                    do! listener.DisposeAsync()
                    return accepted[Shard.Id]
                })

        let clients =
            [
                for _ in 1..connections ->
                    let s = new Socket(SocketType.Stream, ProtocolType.Tcp)
                    s.Connect(IPEndPoint(IPAddress.Loopback, port))
                    s
            ]
        // Each client reads until its server side closes: then that connection was accepted.
        for s in clients do
            s.Receive(Array.zeroCreate<byte> 1) |> ignore
            s.Dispose()

        stop.Cancel()
        let perShard = serving |> awaitBounded "the accept loops" shardTimeout
        task { do! pool.DisposeAsync() } |> awaitBounded "the pool" shardTimeout

        Expect.equal (Array.sum perShard) connections "every connection was accepted once"
        Expect.isTrue (perShard |> Array.forall (fun n -> n > 0)) $"both shards accepted connections: %A{perShard}"
    }

let private bufferRingRunsDry =
    test "more connections holding unread data than the shard has receive buffers: reads fall back, no byte is lost" {
        requireIoUring "the provided-buffer ring"
        let count = 600 // > 512 provided buffers

        let allOk, fallbacks =
            runShard (fun () ->
                task {
                    let listener = TcpListener.Bind loopback4
                    let target = IPEndPoint(IPAddress.Loopback, listener.LocalEndPoint.Port)
                    let pairs = ResizeArray()

                    for _ in 1..count do
                        let! client = TcpStream.ConnectAsync target
                        let! server = listener.AcceptAsync()
                        pairs.Add((client, server))

                    let messages = Array.init count (fun i -> pattern i 3000)

                    for i in 0 .. count - 1 do
                        do! (fst pairs[i]).WriteAsync(ReadOnlyMemory messages[i])
                    // One byte from each: every connection that got a buffer now holds it, partly read.
                    let firsts = Array.zeroCreate<byte> count

                    for i in 0 .. count - 1 do
                        let! _ = (snd pairs[i]).ReadAsync(Memory(firsts, i, 1))
                        ()

                    let mutable ok = true

                    for i in 0 .. count - 1 do
                        let! rest = readExactly (snd pairs[i]) 2999
                        ok <- ok && firsts[i] = messages[i][0] && rest = messages[i][1..]

                    for (client, server) in pairs do
                        do! client.DisposeAsync()
                        do! server.DisposeAsync()

                    do! listener.DisposeAsync()
                    return ok, Shard.Stats.ReceiveFallbacks
                })

        Expect.isTrue allOk "every connection read its 3,000 bytes exactly"
        Expect.isGreaterThan fallbacks 0L "the buffer ring ran dry and some reads went into the caller's memory"
    }

let private disposeWithAcceptedPending =
    test "disposing a listener ends the connections the kernel accepted that nobody took: their clients do not hang" {
        let count = 20

        let ready =
            TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously)

        let connected =
            TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

        let server =
            Shard.Start(fun () ->
                task {
                    let listener = TcpListener.Bind loopback4
                    ready.SetResult listener.LocalEndPoint.Port
                    // One accept arms the multishot accept; the clients below are then accepted by the kernel with
                    // nobody waiting (their CQEs are kept), or still wait in the backlog when the listener closes.
                    let! first = listener.AcceptAsync()
                    do! connected.Task

                    for _ in 1..10 do
                        do! Shard.Yield()

                    do! listener.DisposeAsync()
                    do! first.DisposeAsync()
                    return 0
                })

        let port = ready.Task |> awaitBounded "the listener" shardTimeout

        let clients =
            [
                for _ in 0..count ->
                    let s =
                        new Socket(
                            SocketType.Stream,
                            ProtocolType.Tcp,
                            ReceiveTimeout = int shardTimeout.TotalMilliseconds
                        )

                    s.Connect(IPEndPoint(IPAddress.Loopback, port))
                    s
            ]

        connected.SetResult()
        server.Completion |> awaitBounded "the server" shardTimeout |> ignore

        for s in clients do
            // 0 (the end of the stream) or a reset: either way not a wait for the receive timeout.
            let ended =
                try
                    s.Receive(Array.zeroCreate<byte> 1) = 0
                with :? SocketException as e ->
                    e.SocketErrorCode = SocketError.ConnectionReset

            s.Dispose()
            Expect.isTrue ended "the client's connection ended when the listener was disposed"
    }

let private abortResets =
    test "AbortAsync closes with a reset: the peer's read throws ConnectionReset; unsent data is dropped" {
        let thrown =
            runShard (fun () ->
                task {
                    let listener = TcpListener.Bind loopback4

                    let! client =
                        TcpStream.ConnectAsync(IPEndPoint(IPAddress.Loopback, listener.LocalEndPoint.Port))

                    let! server = listener.AcceptAsync()
                    do! server.WriteAsync(ReadOnlyMemory "x"B)
                    let! _ = readExactly client 1
                    do! server.AbortAsync()
                    do! server.AbortAsync() // twice: nothing

                    let! thrown =
                        thrownByTask (fun () -> client.ReadAsync(Memory(Array.zeroCreate 16)).AsTask())

                    do! client.DisposeAsync()
                    do! listener.DisposeAsync()
                    return thrown
                })

        let e = expectExn<SocketException> "the peer's read after AbortAsync" thrown
        Expect.equal e.SocketErrorCode SocketError.ConnectionReset "a reset, not the end of the stream"
    }

let private unixDuplicate =
    test "UnixListener.Duplicate: a second shard accepts from the same socket; each connection goes to one listener" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "shared.sock")

            let pool =
                ShardPool.Start(
                    ShardPoolOptions(
                        Shards = 2,
                        Placement = PoolPlacement.MaxSpread [ 0; 1 ],
                        PerShard = ShardOptions(SpinBeforePark = TimeSpan.FromMicroseconds 200.0)
                    )
                )

            let listeners = Array.zeroCreate<UnixListener> 2

            submit pool 0 (fun () -> task { listeners[0] <- UnixListener.Bind path })
            submit pool 1 (fun () -> task { listeners[1] <- listeners[0].Duplicate() })

            // Shard 1 accepts alone first (shard 0 is not accepting yet): a connection made now can only go to it.
            let acceptedOn1 =
                pool.SubmitTo(
                    1,
                    Func<Task<string>>(fun () ->
                        task {
                            let! c = listeners[1].AcceptAsync()
                            let! message = readExactly c 5
                            do! c.DisposeAsync()
                            return Text.Encoding.ASCII.GetString message
                        })
                )

            use first =
                new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)

            first.Connect(UnixDomainSocketEndPoint path)
            first.Send("hello"B) |> ignore
            let got = acceptedOn1 |> awaitBounded "shard 1's accept" shardTimeout

            // Shard 1 closes its listener: shard 0's still accepts on the same socket.
            submit pool 1 (fun () -> task { do! listeners[1].DisposeAsync() })

            let acceptedOn0 =
                pool.SubmitTo(
                    0,
                    Func<Task<int>>(fun () ->
                        task {
                            let! c = listeners[0].AcceptAsync()
                            do! c.DisposeAsync()
                            do! listeners[0].DisposeAsync()
                            return Shard.Id
                        })
                )

            use second =
                new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)

            second.Connect(UnixDomainSocketEndPoint path)
            let on0 = acceptedOn0 |> awaitBounded "shard 0's accept" shardTimeout
            task { do! pool.DisposeAsync() } |> awaitBounded "the pool" shardTimeout

            Expect.equal got "hello" "the duplicate on shard 1 accepted and read a connection"
            Expect.equal on0 0 "the original on shard 0 still accepts after the duplicate closed"

            let disposed =
                runShard (fun () -> task { return thrownBy (fun () -> listeners[0].Duplicate()) })

            expectExn<ObjectDisposedException> "Duplicate of a disposed listener" disposed
            |> ignore)
    }

let private dualMode =
    test "a TcpListener on [::] accepts IPv4 connections too (dual mode)" {
        let answer =
            runShard (fun () ->
                task {
                    let listener = TcpListener.Bind(IPEndPoint(IPAddress.IPv6Any, 0))

                    let! client =
                        TcpStream.ConnectAsync(IPEndPoint(IPAddress.Loopback, listener.LocalEndPoint.Port))

                    let! server = listener.AcceptAsync()
                    do! client.WriteAsync(ReadOnlyMemory "v4"B)
                    let! got = readExactly server 2
                    do! client.DisposeAsync()
                    do! server.DisposeAsync()
                    do! listener.DisposeAsync()
                    return got
                })

        Expect.equal answer "v4"B "an IPv4 client reached the [::] listener"
    }

let private pipeScheduler =
    test "TaskQueue.PipeScheduler: a pipe's reader resumes on its shard, in its queue, when another thread writes" {
        let resumedOnShard, sameQueue, text =
            runShard (fun () ->
                task {
                    let queue = Shard.CreateTaskQueue("pipes", Shares.Static 100, Latency.NotImportant)
                    let scheduler = queue.PipeScheduler

                    let pipe =
                        System.IO.Pipelines.Pipe(
                            System.IO.Pipelines.PipeOptions(
                                readerScheduler = scheduler,
                                writerScheduler = scheduler,
                                useSynchronizationContext = false
                            )
                        )

                    let reading =
                        spawnInto queue (fun () ->
                            task {
                                let! result = pipe.Reader.ReadAsync()
                                let onShard = Shard.IsOnShard
                                let inQueue = obj.ReferenceEquals(Shard.CurrentTaskQueue, queue)
                                let text = Text.Encoding.ASCII.GetString(result.Buffer.ToArray())
                                pipe.Reader.AdvanceTo result.Buffer.End
                                return onShard, inQueue, text
                            })
                    // The write and its flush happen on a ThreadPool thread: the reader's continuation is posted back.
                    let! _ =
                        Task.Run<int>(
                            Func<Task<int>>(fun () ->
                                task {
                                    let! _ = pipe.Writer.WriteAsync(ReadOnlyMemory "from afar"B)
                                    return 0
                                })
                        )

                    return! reading
                })

        Expect.isTrue resumedOnShard "the reader resumed on the shard"
        Expect.isTrue sameQueue "in the scheduler's task queue"
        Expect.equal text "from afar" "with what the other thread wrote"
    }

let tests =
    testSequenced
    <| testList
        "net"
        [
            echoRoundTrip loopback4
            echoRoundTrip loopback6
            manyConnections
            halfClose
            peerReset
            cancelThenReuse
            zeroCopyWrites
            errors
            disposeAndOwnership
            unixRoundTrip
            udpRoundTrip
            adapters
            noFdLeak
            zeroAllocEcho
            twoShardPool
            bufferRingRunsDry
            disposeWithAcceptedPending
            abortResets
            unixDuplicate
            dualMode
            pipeScheduler
        ]

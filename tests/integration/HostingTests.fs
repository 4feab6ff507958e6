/// Scipio.Hosting: a WebApplication with UseScipio() on a 2-shard pool (CPUs 0 and 1), on 127.0.0.1 port 0 (and
/// [::1], a Unix socket, TLS, h2c), driven by HttpClient and by raw System.Net.Sockets clients where a test needs what
/// only they do (a reset mid-request). Handlers report whether they ran on a shard. Nothing here waits by sleeping:
/// each step waits for a signal from the other side (a handler's "entered", the server's close request).
module Scipio.Integration.Tests.HostingTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Net.Security
open System.Net.Sockets
open System.Security.Cryptography
open System.Security.Cryptography.X509Certificates
open System.Text
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Connections.Features
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Server.Kestrel.Core
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Hosting
open Microsoft.Extensions.Logging
open Scipio
open Scipio.Integration.Tests.Helpers

/// What a handler saw of where it ran, as a response body: "onShard=true shard=1 connection=0HN…".
let private whereAmI (context: HttpContext) =
    let onShard = Shard.IsOnShard
    let shard = if onShard then Shard.Id else -1
    $"onShard=%b{onShard} shard=%d{shard} connection=%s{context.Connection.Id}"

/// Parses whereAmI's answer.
let private parseWhere (body: string) =
    let fields =
        body.Split ' '
        |> Array.map (fun kv -> let i = kv.IndexOf '=' in kv[.. i - 1], kv[i + 1 ..])
        |> Map.ofArray

    bool.Parse fields["onShard"], int fields["shard"], fields["connection"]

/// Reads a request's whole body.
let private readBody (request: HttpRequest) =
    task {
        use copy = new MemoryStream()
        do! request.Body.CopyToAsync copy
        return copy.ToArray()
    }

/// Deterministic bytes.
let private pattern (length: int) =
    Array.init length (fun i -> byte ((i * 31 + (i >>> 8)) &&& 0xFF))

/// A running server: the app and the addresses Kestrel bound (port 0 replaced by the real port).
type private Server =
    {
        App: WebApplication
        Addresses: string list
    }

    member s.Pool = s.App.Services.GetRequiredService<ShardPool>()

    /// Stops the host (Kestrel drains, then the pool stops) and disposes it, bounded.
    member s.Stop() =
        task {
            do! s.App.StopAsync()
            do! s.App.DisposeAsync()
        }
        |> awaitBounded "stopping the server" shardTimeout

/// Starts a WebApplication on UseScipio() with a 2-shard pool on CPUs 0 and 1, `listen` configuring Kestrel's
/// endpoints and `handle` answering every request (terminal middleware).
let private startServer (listen: KestrelServerOptions -> unit) (handle: HttpContext -> Task) =
    let builder = WebApplication.CreateSlimBuilder [||]
    builder.Logging.ClearProviders() |> ignore

    if Environment.GetEnvironmentVariable "SCIPIO_TEST_LOG" = "1" then
        builder.Logging.AddConsole().SetMinimumLevel(LogLevel.Debug) |> ignore

    builder.Services.AddScipio(fun o ->
        o.Shards <- 2
        o.Placement <- PoolPlacement.MaxSpread [ 0; 1 ]
        o.PerShard <- ShardOptions(SpinBeforePark = TimeSpan.FromMicroseconds 200.0))
    |> ignore

    builder.WebHost.UseScipio().ConfigureKestrel(listen) |> ignore
    let app = builder.Build()
    app.Run(RequestDelegate handle)

    app.StartAsync()
    |> fun t -> task { do! t } |> awaitBounded "starting the server" shardTimeout

    let addresses =
        let server = app.Services.GetRequiredService<IServer>()

        (nonNull (server.Features.Get<IServerAddressesFeature>())).Addresses
        |> List.ofSeq

    { App = app; Addresses = addresses }

/// A client with its own connections; `configure` may change its handler (TLS, connection limits, Unix sockets).
let private client (configure: SocketsHttpHandler -> unit) =
    let handler =
        new SocketsHttpHandler(PooledConnectionLifetime = Timeout.InfiniteTimeSpan)

    configure handler
    new HttpClient(handler, Timeout = shardTimeout)

let private getString (http: HttpClient) (uri: string) =
    task {
        use! response = http.GetAsync uri
        response.EnsureSuccessStatusCode() |> ignore
        return! response.Content.ReadAsStringAsync()
    }
    |> awaitBounded $"GET {uri}" shardTimeout

/// The common handler: /where answers whereAmI; /echo reads the body and sends it back, with where it ran before
/// and after the read in a header; anything else is 404.
let private standardHandler (context: HttpContext) : Task =
    task {
        match context.Request.Path.Value with
        | "/where" -> do! context.Response.WriteAsync(whereAmI context)
        | "/echo" ->
            let before = Shard.IsOnShard
            let! body = readBody context.Request
            context.Response.Headers["X-On-Shard"] <- $"%b{before && Shard.IsOnShard}"
            let chunked = context.Request.Headers.TransferEncoding.ToString() = "chunked"
            context.Response.Headers["X-Chunked"] <- $"%b{chunked}"
            context.Response.ContentLength <- int64 body.Length
            do! context.Response.Body.WriteAsync(ReadOnlyMemory body)
        | _ -> context.Response.StatusCode <- 404
    }

let private loopback (k: KestrelServerOptions) = k.Listen(IPAddress.Loopback, 0)

let private getAndPost =
    test "HTTP/1.1 GET, and POST of 1 B … 8 MiB bodies with a length and chunked, byte-exact, handlers on a shard" {
        let server = startServer loopback standardHandler

        try
            let root = server.Addresses.Head
            use http = client ignore
            let onShard, shard, _ = parseWhere (getString http $"{root}/where")
            Expect.isTrue onShard "the GET's handler ran on a shard"
            Expect.isTrue (shard = 0 || shard = 1) $"on shard 0 or 1 (got %d{shard})"

            for size in [ 1; 100; 4095; 4096; 4097; 65536; 1 <<< 20; 8 <<< 20 ] do
                for chunked in [ false; true ] do
                    let body = pattern size
                    use request = new HttpRequestMessage(HttpMethod.Post, $"{root}/echo")
                    request.Content <- new ByteArrayContent(body)

                    if chunked then
                        request.Headers.TransferEncodingChunked <- true

                    let echoed, onShard, wasChunked =
                        task {
                            use! response = http.SendAsync request
                            response.EnsureSuccessStatusCode() |> ignore
                            let! bytes = response.Content.ReadAsByteArrayAsync()

                            let header (name: string) =
                                response.Headers.GetValues name |> Seq.head

                            return bytes, header "X-On-Shard", header "X-Chunked"
                        }
                        |> awaitBounded $"POST of %d{size} B" shardTimeout

                    Expect.equal wasChunked $"%b{chunked}" "the server saw the body chunked, or with a length, as sent"
                    Expect.isTrue (echoed = body) $"the %d{size}-byte body (chunked: %b{chunked}) came back byte-exact"
                    Expect.equal onShard "true" $"the %d{size}-byte POST's handler read its body on a shard"
        finally
            server.Stop()
    }

let private keepAlive =
    test "keep-alive: 1,000 requests over one connection, every one on the same shard" {
        let server = startServer loopback standardHandler

        try
            use http = client (fun h -> h.MaxConnectionsPerServer <- 1)

            let answers =
                [
                    for _ in 1..1000 -> parseWhere (getString http $"{server.Addresses.Head}/where")
                ]

            let connections = answers |> List.map (fun (_, _, c) -> c) |> List.distinct
            let shards = answers |> List.map (fun (_, s, _) -> s) |> List.distinct
            Expect.isTrue (answers |> List.forall (fun (on, _, _) -> on)) "every handler ran on a shard"
            Expect.hasLength connections 1 "one connection served all 1,000 requests"
            Expect.hasLength shards 1 "the connection stayed on the shard that accepted it"
        finally
            server.Stop()
    }

let private concurrentConnections =
    test "200 concurrent connections, each request held until all 200 have arrived, over both shards" {
        let count = 200
        let mutable arrived = 0
        let all = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

        let handle (context: HttpContext) : Task =
            task {
                if Interlocked.Increment(&arrived) = count then
                    all.TrySetResult() |> ignore
                // Awaiting a foreign task on a shard resumes on that shard (its task queue is the context).
                do! all.Task
                do! context.Response.WriteAsync(whereAmI context)
            }

        let server = startServer loopback handle

        try
            use http = client (fun h -> h.MaxConnectionsPerServer <- count)

            let answers =
                Task.WhenAll
                    [|
                        for _ in 1..count ->
                            task {
                                use! response = http.GetAsync $"{server.Addresses.Head}/"
                                let! body = response.Content.ReadAsStringAsync()
                                return response.StatusCode, body
                            }
                    |]
                |> awaitBounded "200 held requests" shardTimeout

            let allOk = answers |> Array.forall (fun (status, _) -> status = HttpStatusCode.OK)
            Expect.isTrue allOk "every request succeeded"
            let where = answers |> Array.map (snd >> parseWhere)
            Expect.isTrue (where |> Array.forall (fun (on, _, _) -> on)) "every handler resumed on a shard"
            let connections = where |> Array.map (fun (_, _, c) -> c) |> Array.distinct
            let shards = where |> Array.map (fun (_, s, _) -> s) |> Array.distinct |> Array.sort
            Expect.equal connections.Length count "200 distinct connections"
            Expect.equal shards [| 0; 1 |] "the kernel spread them over both shards"
        finally
            server.Stop()
    }

let private h2c =
    test "h2c (HTTP/2 without TLS): concurrent streams on one connection, each handler on the connection's shard" {
        let http2Only (k: KestrelServerOptions) =
            k.Listen(IPAddress.Loopback, 0, fun o -> o.Protocols <- HttpProtocols.Http2)

        let server = startServer http2Only standardHandler

        try
            use http = client ignore
            http.DefaultRequestVersion <- HttpVersion.Version20
            http.DefaultVersionPolicy <- HttpVersionPolicy.RequestVersionExact
            let root = server.Addresses.Head

            let answers =
                Task.WhenAll
                    [|
                        for _ in 1..20 ->
                            task {
                                use! response = http.GetAsync $"{root}/where"
                                let! body = response.Content.ReadAsStringAsync()
                                return response.Version, body
                            }
                    |]
                |> awaitBounded "20 h2c requests" shardTimeout

            let allHttp2 = answers |> Array.forall (fun (v, _) -> v = HttpVersion.Version20)
            Expect.isTrue allHttp2 "every response came over HTTP/2"
            let where = answers |> Array.map (snd >> parseWhere)
            Expect.isTrue (where |> Array.forall (fun (on, _, _) -> on)) "every HTTP/2 handler ran on a shard"
            let shards = where |> Array.map (fun (_, s, _) -> s) |> Array.distinct
            Expect.hasLength shards 1 "all on the one connection's shard"

            let body = pattern (1 <<< 20)

            let echoed =
                task {
                    use! response = http.PostAsync($"{root}/echo", new ByteArrayContent(body))
                    return! response.Content.ReadAsByteArrayAsync()
                }
                |> awaitBounded "a 1 MiB h2c POST" shardTimeout

            Expect.isTrue (echoed = body) "a 1 MiB body came back byte-exact over h2c"
        finally
            server.Stop()
    }

let private clientReset =
    test "a client that resets mid-request: the handler's read fails, RequestAborted fires, the server serves on" {
        let entered =
            TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

        let readFailed =
            TaskCompletionSource<exn>(TaskCreationOptions.RunContinuationsAsynchronously)

        let aborted =
            TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

        let handle (context: HttpContext) : Task =
            task {
                if context.Request.Path.Value = "/upload" then
                    context.RequestAborted.Register(fun () -> aborted.TrySetResult() |> ignore)
                    |> ignore

                    let buffer = Array.zeroCreate<byte> 65536
                    let! first = context.Request.Body.ReadAsync(buffer.AsMemory())
                    entered.TrySetResult() |> ignore

                    try
                        let mutable n = first

                        while n > 0 do
                            let! got = context.Request.Body.ReadAsync(buffer.AsMemory())
                            n <- got

                        readFailed.TrySetException(Exception "the body ended normally") |> ignore
                    with e ->
                        readFailed.TrySetResult e |> ignore
                else
                    do! context.Response.WriteAsync(whereAmI context)
            }

        let server = startServer loopback handle

        try
            let port = Uri(server.Addresses.Head).Port

            use socket =
                new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)

            socket.Connect(IPEndPoint(IPAddress.Loopback, port))

            let head =
                "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n"

            socket.Send(Array.append (Encoding.ASCII.GetBytes head) (pattern 1000))
            |> ignore

            task { do! entered.Task }
            |> awaitBounded "the handler's first read" shardTimeout

            socket.LingerState <- LingerOption(true, 0) // close with a reset
            socket.Close()

            let failure =
                readFailed.Task |> awaitBounded "the handler's failed read" shardTimeout

            let what = $"%s{failure.GetType().Name}: %s{failure.Message}"
            let expected = failure :? IOException || failure :? OperationCanceledException
            Expect.isTrue expected $"the body read failed with an I/O error or a cancellation, not %s{what}"
            task { do! aborted.Task } |> awaitBounded "RequestAborted" shardTimeout
            use http = client ignore
            let onShard, _, _ = parseWhere (getString http $"{server.Addresses.Head}/")
            Expect.isTrue onShard "the server still answers, on a shard"
        finally
            server.Stop()
    }

let private gracefulShutdown =
    test "graceful shutdown: requests in flight when the host stops complete, then the port closes and the pool stops" {
        let count = 4
        let mutable entered = 0

        let allEntered =
            TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

        let handle (context: HttpContext) : Task =
            task {
                // Kestrel asks each connection to close once it has stopped listening: this request is then in flight
                // during the shutdown, and is answered only after it began.
                let lifetime =
                    nonNull (context.Features.Get<IConnectionLifetimeNotificationFeature>())

                let closing = lifetime.ConnectionClosedRequested

                let requested =
                    TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

                use _ = closing.Register(fun () -> requested.TrySetResult() |> ignore)

                if Interlocked.Increment(&entered) = count then
                    allEntered.TrySetResult() |> ignore

                do! requested.Task
                do! context.Response.WriteAsync $"drained %s{whereAmI context}"
            }

        let server = startServer loopback handle
        let pool = server.Pool
        let port = Uri(server.Addresses.Head).Port
        use http = client (fun h -> h.MaxConnectionsPerServer <- count)

        let requests =
            [|
                for _ in 1..count ->
                    task {
                        use! response = http.GetAsync $"{server.Addresses.Head}/"
                        let! body = response.Content.ReadAsStringAsync()
                        return response.StatusCode, body
                    }
            |]

        task { do! allEntered.Task }
        |> awaitBounded "all requests in their handlers" shardTimeout

        let stopping = server.App.StopAsync()

        let answers =
            Task.WhenAll requests |> awaitBounded "the requests in flight" shardTimeout

        task { do! stopping } |> awaitBounded "the host's stop" shardTimeout

        for status, body in answers do
            Expect.equal status HttpStatusCode.OK "a request in flight completed"
            Expect.stringStarts body "drained onShard=true" "after the shutdown began, on its shard"

        let refused =
            thrownBy (fun () ->
                use s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
                s.Connect(IPEndPoint(IPAddress.Loopback, port)))

        Expect.isSome refused "after the stop, nothing listens on the port"
        let late = thrownBy (fun () -> pool.SubmitTo(0, fun () -> Task.FromResult 0).Result)
        Expect.isSome late "the host's stop disposed the pool: it takes no more work"

        task { do! server.App.DisposeAsync() }
        |> awaitBounded "disposing the host" shardTimeout
    }

/// A self-signed certificate for localhost and 127.0.0.1, made here.
let private selfSigned () =
    use key = RSA.Create 2048

    let request =
        CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)

    let names = SubjectAlternativeNameBuilder()
    names.AddDnsName "localhost"
    names.AddIpAddress IPAddress.Loopback
    request.CertificateExtensions.Add(names.Build())
    let serverAuth = OidCollection()
    serverAuth.Add(Oid "1.3.6.1.5.5.7.3.1") |> ignore
    request.CertificateExtensions.Add(X509EnhancedKeyUsageExtension(serverAuth, false))

    use made =
        request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays -1.0, DateTimeOffset.UtcNow.AddDays 1.0)
    // Through PKCS#12 so the private key is one SslStream can use on every platform.
    X509CertificateLoader.LoadPkcs12(made.Export X509ContentType.Pfx, null)

let private https =
    test "HTTPS through Kestrel's UseHttps with a self-signed certificate: HTTP/1.1 and HTTP/2 (ALPN), on a shard" {
        use certificate = selfSigned ()

        let tls (k: KestrelServerOptions) =
            k.Listen(IPAddress.Loopback, 0, fun o -> o.UseHttps certificate |> ignore)

        let server = startServer tls standardHandler

        try
            let mutable presented = ""

            use http =
                client (fun h ->
                    h.SslOptions.RemoteCertificateValidationCallback <-
                        RemoteCertificateValidationCallback(fun _ cert _ _ ->
                            presented <- (nonNull cert).GetCertHashString()
                            true))

            let root = server.Addresses.Head
            Expect.stringStarts root "https://" "the endpoint is HTTPS"
            let onShard, _, _ = parseWhere (getString http $"{root}/where")
            Expect.isTrue onShard "the handler behind TLS ran on a shard"
            Expect.equal presented (certificate.GetCertHashString()) "the server presented the certificate made here"

            let body = pattern (1 <<< 20)

            for version in [ HttpVersion.Version11; HttpVersion.Version20 ] do
                use request =
                    new HttpRequestMessage(
                        HttpMethod.Post,
                        $"{root}/echo",
                        Version = version,
                        VersionPolicy = HttpVersionPolicy.RequestVersionExact
                    )

                request.Content <- new ByteArrayContent(body)

                let echoed, used, onShard =
                    task {
                        use! response = http.SendAsync request
                        let! bytes = response.Content.ReadAsByteArrayAsync()
                        return bytes, response.Version, response.Headers.GetValues("X-On-Shard") |> Seq.head
                    }
                    |> awaitBounded $"a 1 MiB POST over TLS, HTTP/{version}" shardTimeout

                Expect.equal used version $"the response came over HTTP/{version}"
                Expect.isTrue (echoed = body) $"1 MiB came back byte-exact over TLS, HTTP/{version}"
                Expect.equal onShard "true" $"the handler read the body on a shard (HTTP/{version})"
        finally
            server.Stop()
    }

let private ipv6AndUnix =
    test "IPv6 ([::1]) and a Unix socket path: both bound on every shard and served on a shard" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "web.sock")

            let server =
                startServer
                    (fun k ->
                        k.Listen(IPAddress.IPv6Loopback, 0)
                        k.ListenUnixSocket path)
                    standardHandler

            try
                let v6 = server.Addresses |> List.find (fun a -> a.Contains "[::1]")
                use http = client ignore
                let onShard, _, _ = parseWhere (getString http $"{v6}/where")
                Expect.isTrue onShard "the IPv6 request's handler ran on a shard"

                use overUnix =
                    client (fun h ->
                        h.ConnectCallback <-
                            fun _ ct ->
                                task {
                                    let socket =
                                        new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)

                                    do! socket.ConnectAsync(UnixDomainSocketEndPoint path, ct)
                                    return new NetworkStream(socket, ownsSocket = true) :> Stream
                                }
                                |> ValueTask<Stream>)

                let answers =
                    [ for _ in 1..20 -> parseWhere (getString overUnix "http://localhost/where") ]

                let allOnShard = answers |> List.forall (fun (on, _, _) -> on)
                Expect.isTrue allOnShard "every Unix-socket request's handler ran on a shard"
            finally
                server.Stop())
    }

let private poolWithHost =
    test "AddScipio: the pool is injectable, has the configured shards, and stops with the host" {
        let server = startServer loopback standardHandler
        let pool = server.Pool
        Expect.equal pool.Count 2 "two shards, as configured"
        Expect.equal (List.ofSeq pool.Cpus) [ 0; 1 ] "pinned to CPUs 0 and 1"

        let ran =
            pool.SubmitTo(1, fun () -> Task.FromResult Shard.Id)
            |> awaitBounded "work on shard 1" shardTimeout

        Expect.equal ran 1 "work submitted to the injected pool runs on its shard"
        server.Stop()
        let late = thrownBy (fun () -> pool.SubmitTo(0, fun () -> Task.FromResult 0).Result)
        Expect.isSome late "stopped with the host"
    }

let private shutdownTimeout =
    test "AddScipio on a plain host: the shutdown timeout bounds the pool's drain; work still running ends canceled" {
        let builder = Host.CreateApplicationBuilder()
        builder.Logging.ClearProviders() |> ignore

        builder.Services.Configure<HostOptions>(fun (o: HostOptions) ->
            o.ShutdownTimeout <- TimeSpan.FromMilliseconds 200.0)
        |> ignore

        builder.Services.AddScipio(fun o ->
            o.Shards <- 2
            o.Placement <- PoolPlacement.MaxSpread [ 0; 1 ])
        |> ignore

        let host = builder.Build()
        task { do! host.StartAsync() } |> awaitBounded "starting the host" shardTimeout
        let pool = host.Services.GetRequiredService<ShardPool>()

        let started =
            TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

        let stuck =
            pool.SubmitTo(
                0,
                fun () ->
                    task {
                        started.TrySetResult() |> ignore
                        do! Shard.Sleep Timeout.InfiniteTimeSpan
                        return 0
                    }
            )

        task { do! started.Task } |> awaitBounded "the stuck work's start" shardTimeout

        task { do! host.StopAsync() }
        |> awaitBounded "the host's stop, past its shutdown timeout" shardTimeout

        let e = thrownBy (fun () -> awaitBounded "the stuck work" shardTimeout stuck)

        expectExn<TaskCanceledException> "the work still running when the shards stopped" e
        |> ignore

        task { do! (host :?> IAsyncDisposable).DisposeAsync() }
        |> awaitBounded "disposing the host" shardTimeout
    }

let tests =
    testSequenced
    <| testList
        "hosting"
        [
            getAndPost
            keepAlive
            concurrentConnections
            h2c
            clientReset
            gracefulShutdown
            https
            ipv6AndUnix
            poolWithHost
            shutdownTimeout
        ]

/// The key-value sample (samples/KeyValue) in-process: a server on port 0 — two shards pinned to CPUs 0 and 1 unless
/// a test says otherwise — and clients that speak RESP over plain System.Net.Sockets sockets from test threads, so
/// only the server runs on the shards. Every command, pipelining, keys on each shard, malformed input, the buffer
/// limits, 200 concurrent clients, redis-cli when installed, and the shard's allocations per GET/SET.
module Scipio.Integration.Tests.KeyValueTests

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Sockets
open System.Text
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio.Samples.KeyValue
open Scipio.Integration.Tests.Helpers

/// A RESP2 reply. Strings are Latin-1, so any byte round-trips.
type Reply =
    | Simple of string
    | Err of string
    | Int of int64
    | Bulk of string
    | Nil
    | Arr of Reply list

let private latin1 = Encoding.Latin1

/// A command as a RESP array of bulk strings.
let encode (args: string list) =
    let text = StringBuilder()
    text.Append('*').Append(List.length args).Append("\r\n") |> ignore

    for a in args do
        text.Append('$').Append(a.Length).Append("\r\n").Append(a).Append("\r\n") |> ignore

    latin1.GetBytes(text.ToString())

/// A blocking RESP client on a plain socket (a test thread's, never a shard's); every receive bounded by 30 s.
type Client(port: int) =
    let socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)

    do
        socket.NoDelay <- true
        socket.ReceiveTimeout <- 30_000
        socket.SendTimeout <- 30_000
        socket.Connect(IPEndPoint(IPAddress.Loopback, port))

    let mutable buffer = Array.zeroCreate<byte> 65536
    let mutable start = 0
    let mutable finish = 0

    /// Receives more; false at the end of the stream.
    let fill () =
        if start = finish then
            start <- 0
            finish <- 0
        elif finish = buffer.Length then
            if start > 0 then
                Buffer.BlockCopy(buffer, start, buffer, 0, finish - start)
                finish <- finish - start
                start <- 0
            else
                Array.Resize(&buffer, buffer.Length * 2)

        let n = socket.Receive(buffer, finish, buffer.Length - finish, SocketFlags.None)
        finish <- finish + n
        n > 0

    let rec readLine () =
        let i = Array.IndexOf(buffer, 10uy, start, finish - start)

        if i < 0 then
            if not (fill ()) then
                failtest "the server closed the connection before a whole reply"

            readLine ()
        else
            let line = latin1.GetString(buffer, start, i - 1 - start)
            start <- i + 1
            line

    let readBulk (n: int) =
        while finish - start < n + 2 do
            if not (fill ()) then
                failtest "the server closed the connection inside a bulk reply"

        let s = latin1.GetString(buffer, start, n)
        start <- start + n + 2
        s

    member this.Read() : Reply =
        let line = readLine ()

        match line[0] with
        | '+' -> Simple line[1..]
        | '-' -> Err line[1..]
        | ':' -> Int(int64 line[1..])
        | '$' ->
            let n = int line[1..]
            if n < 0 then Nil else Bulk(readBulk n)
        | '*' ->
            let n = int line[1..]
            if n < 0 then Nil else Arr [ for _ in 1..n -> this.Read() ]
        | _ -> failtestf "not a RESP reply: %s" line

    member _.Send(bytes: byte[]) = socket.Send bytes |> ignore

    member this.Call(args: string list) =
        this.Send(encode args)
        this.Read()

    /// Whether the server has closed its side with nothing left to read (the end of the stream, or a reset).
    member _.AtEnd() =
        try
            start = finish && not (fill ())
        with :? SocketException ->
            true

    member _.Socket = socket

    interface IDisposable with
        member _.Dispose() = socket.Dispose()

let private startServer (configure: KeyValueServerOptions -> unit) =
    let options =
        KeyValueServerOptions(
            Port = 0,
            Address = IPAddress.Loopback,
            Shards = 2,
            Cpus = ([| 0; 1 |] :> IReadOnlyList<int>)
        )

    configure options
    KeyValueServer.Start options

let private stop (server: KeyValueServer) =
    task { do! server.StopAsync() } |> awaitBounded "the server's stop" shardTimeout

/// Runs `f` with a server started as `configure` says (after the defaults above), stopped afterwards whatever happens.
let private withServerAs (configure: KeyValueServerOptions -> unit) (f: KeyValueServer -> 'T) : 'T =
    let server = startServer configure

    try
        f server
    finally
        stop server

let private withServer f = withServerAs ignore f

let private stats (server: KeyValueServer) =
    server.GetStatsAsync() |> awaitBounded "the server's stats" shardTimeout

/// The first `count` keys "prefix:i" that shard `shard` of `shards` owns.
let private keysOn (prefix: string) (shard: int) (shards: int) (count: int) =
    Seq.initInfinite (fun i -> $"%s{prefix}:%d{i}")
    |> Seq.filter (fun k -> KeyValueServer.ShardOf(ReadOnlySpan(Encoding.UTF8.GetBytes k), shards) = shard)
    |> Seq.take count
    |> List.ofSeq

let private isErr (prefix: string) (reply: Reply) =
    match reply with
    | Err e -> e.StartsWith prefix
    | _ -> false

let private expectErr (prefix: string) (what: string) (reply: Reply) =
    Expect.isTrue (isErr prefix reply) $"%s{what}: expected an error starting with '%s{prefix}', got %A{reply}"

let private connectionLevel =
    test "PING, ECHO, SELECT, COMMAND, CONFIG GET, QUIT, unknown commands and wrong arities" {
        withServer (fun server ->
            use c = new Client(server.Port)
            Expect.equal (c.Call [ "PING" ]) (Simple "PONG") "PING"
            Expect.equal (c.Call [ "ping"; "hello" ]) (Bulk "hello") "PING with a message (any case)"
            Expect.equal (c.Call [ "ECHO"; "a b\r\nc" ]) (Bulk "a b\r\nc") "ECHO is binary-safe"
            Expect.equal (c.Call [ "SELECT"; "0" ]) (Simple "OK") "SELECT 0"
            expectErr "ERR DB index is out of range" "SELECT 1" (c.Call [ "SELECT"; "1" ])

            match c.Call [ "COMMAND" ] with
            | Arr entries ->
                Expect.isGreaterThan entries.Length 20 "COMMAND lists the commands"
                Expect.contains entries (Arr [ Bulk "get"; Int 2L; Arr []; Int 1L; Int 1L; Int 1L ]) "GET's entry"
            | other -> failtestf "COMMAND: %A" other

            Expect.equal (c.Call [ "COMMAND"; "DOCS" ]) (Arr []) "COMMAND DOCS: empty"

            Expect.equal
                (c.Call [ "CONFIG"; "GET"; "save" ])
                (Arr [ Bulk "save"; Bulk "" ])
                "CONFIG GET save (redis-benchmark asks)"

            Expect.equal
                (c.Call [ "CONFIG"; "GET"; "appendonly" ])
                (Arr [ Bulk "appendonly"; Bulk "no" ])
                "CONFIG GET appendonly"

            Expect.equal (c.Call [ "CONFIG"; "GET"; "no-such-thing" ]) (Arr []) "an unknown parameter: empty"

            Expect.equal
                (c.Call [ "FOO"; "bar"; "baz" ])
                (Err "ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ")
                "an unknown command, as Redis 7 says it"

            expectErr "ERR unknown command 'x  y'" "CR LF in a name cannot break the reply" (c.Call [ "x\r\ny" ])
            Expect.equal (c.Call [ "GET" ]) (Err "ERR wrong number of arguments for 'get' command") "GET without a key"
            let oddMset = c.Call [ "MSET"; "a"; "1"; "b" ]
            expectErr "ERR wrong number of arguments for 'mset'" "MSET with a key and no value" oddMset
            expectErr "ERR wrong number of arguments for 'incrby'" "INCRBY with one argument" (c.Call [ "INCRBY"; "a" ])
            expectErr "ERR wrong number of arguments for 'dbsize'" "DBSIZE with an argument" (c.Call [ "DBSIZE"; "x" ])
            Expect.equal (c.Call [ "PING" ]) (Simple "PONG") "errors leave the connection usable"
            Expect.equal (c.Call [ "QUIT" ]) (Simple "OK") "QUIT answers OK"
            Expect.isTrue (c.AtEnd()) "then the server closes the connection")
    }

let private getSet =
    test "GET and SET with EX, PX, NX, XX, KEEPTTL and GET; binary keys and values" {
        withServer (fun server ->
            use c = new Client(server.Port)
            Expect.equal (c.Call [ "GET"; "missing" ]) Nil "GET of a missing key"
            Expect.equal (c.Call [ "SET"; "k"; "v1" ]) (Simple "OK") "SET"
            Expect.equal (c.Call [ "GET"; "k" ]) (Bulk "v1") "GET"
            Expect.equal (c.Call [ "SET"; "k"; "longer value" ]) (Simple "OK") "SET overwrites"
            Expect.equal (c.Call [ "GET"; "k" ]) (Bulk "longer value") "with any length"
            Expect.equal (c.Call [ "SET"; "k"; "" ]) (Simple "OK") "an empty value"
            Expect.equal (c.Call [ "GET"; "k" ]) (Bulk "") "is a value"
            let binary = String(Array.init 256 char)
            Expect.equal (c.Call [ "SET"; binary; binary ]) (Simple "OK") "every byte value, in key and value"
            Expect.equal (c.Call [ "GET"; binary ]) (Bulk binary) "comes back exact"

            Expect.equal (c.Call [ "SET"; "nx"; "1"; "NX" ]) (Simple "OK") "NX on a new key sets"
            Expect.equal (c.Call [ "SET"; "nx"; "2"; "nx" ]) Nil "NX on an existing key: nil"
            Expect.equal (c.Call [ "GET"; "nx" ]) (Bulk "1") "and leaves it"
            Expect.equal (c.Call [ "SET"; "xx"; "1"; "XX" ]) Nil "XX on a missing key: nil"
            Expect.equal (c.Call [ "EXISTS"; "xx" ]) (Int 0L) "and sets nothing"
            Expect.equal (c.Call [ "SET"; "nx"; "3"; "XX" ]) (Simple "OK") "XX on an existing key sets"
            Expect.equal (c.Call [ "SET"; "nx"; "4"; "GET" ]) (Bulk "3") "GET returns the old value"
            Expect.equal (c.Call [ "SET"; "fresh"; "1"; "GET" ]) Nil "GET of a new key: nil"
            Expect.equal (c.Call [ "GET"; "nx" ]) (Bulk "4") "and sets the new one"

            Expect.equal (c.Call [ "SET"; "ttl"; "v"; "EX"; "100" ]) (Simple "OK") "SET EX"

            match c.Call [ "TTL"; "ttl" ] with
            | Int t -> Expect.isTrue (t >= 99L && t <= 100L) $"TTL after EX 100: %d{t}"
            | other -> failtestf "TTL: %A" other

            Expect.equal (c.Call [ "SET"; "ttl"; "w"; "KEEPTTL" ]) (Simple "OK") "KEEPTTL"
            Expect.isTrue (match c.Call [ "TTL"; "ttl" ] with Int t -> t > 0L | _ -> false) "keeps the deadline"
            Expect.equal (c.Call [ "SET"; "ttl"; "x" ]) (Simple "OK") "a plain SET"
            Expect.equal (c.Call [ "TTL"; "ttl" ]) (Int -1L) "clears the deadline"
            Expect.equal (c.Call [ "SET"; "px"; "v"; "PX"; "100000" ]) (Simple "OK") "SET PX"

            match c.Call [ "PTTL"; "px" ] with
            | Int t -> Expect.isTrue (t > 90_000L && t <= 100_000L) $"PTTL after PX 100000: %d{t}"
            | other -> failtestf "PTTL: %A" other

            expectErr "ERR invalid expire time in 'set' command" "EX 0" (c.Call [ "SET"; "k"; "v"; "EX"; "0" ])
            expectErr "ERR invalid expire time in 'set' command" "PX -5" (c.Call [ "SET"; "k"; "v"; "PX"; "-5" ])
            expectErr "ERR value is not an integer" "EX abc" (c.Call [ "SET"; "k"; "v"; "EX"; "abc" ])
            expectErr "ERR syntax error" "NX with XX" (c.Call [ "SET"; "k"; "v"; "NX"; "XX" ])
            expectErr "ERR syntax error" "EX with KEEPTTL" (c.Call [ "SET"; "k"; "v"; "EX"; "10"; "KEEPTTL" ])
            expectErr "ERR syntax error" "EX without a number" (c.Call [ "SET"; "k"; "v"; "EX" ])
            expectErr "ERR syntax error" "an unknown option" (c.Call [ "SET"; "k"; "v"; "FOREVER" ]))
    }

let private counters =
    test "INCR, DECR, INCRBY and DECRBY: counters, non-integers and overflow" {
        withServer (fun server ->
            use c = new Client(server.Port)
            Expect.equal (c.Call [ "INCR"; "n" ]) (Int 1L) "INCR of a missing key starts at 0"
            Expect.equal (c.Call [ "INCRBY"; "n"; "41" ]) (Int 42L) "INCRBY"
            Expect.equal (c.Call [ "DECR"; "n" ]) (Int 41L) "DECR"
            Expect.equal (c.Call [ "DECRBY"; "n"; "50" ]) (Int -9L) "DECRBY below zero"
            Expect.equal (c.Call [ "GET"; "n" ]) (Bulk "-9") "the value is the decimal text"
            Expect.equal (c.Call [ "SET"; "n"; "9223372036854775806" ]) (Simple "OK") "near the top"
            Expect.equal (c.Call [ "INCR"; "n" ]) (Int 9223372036854775807L) "up to long.MaxValue"
            expectErr "ERR increment or decrement would overflow" "past it" (c.Call [ "INCR"; "n" ])
            Expect.equal (c.Call [ "GET"; "n" ]) (Bulk "9223372036854775807") "an overflow changes nothing"
            Expect.equal (c.Call [ "SET"; "m"; "-9223372036854775808" ]) (Simple "OK") "the bottom"
            expectErr "ERR increment or decrement would overflow" "below it" (c.Call [ "DECR"; "m" ])
            let byMin = c.Call [ "DECRBY"; "x"; "-9223372036854775808" ]
            expectErr "ERR decrement would overflow" "DECRBY long.MinValue" byMin

            for bad in [ "abc"; "1.5"; " 1"; "+1"; "01"; "-0"; ""; "99999999999999999999" ] do
                Expect.equal (c.Call [ "SET"; "s"; bad ]) (Simple "OK") "set a non-integer"
                expectErr "ERR value is not an integer or out of range" $"INCR of '%s{bad}'" (c.Call [ "INCR"; "s" ])
                let incrBy = c.Call [ "INCRBY"; "n"; bad ]
                expectErr "ERR value is not an integer or out of range" $"INCRBY by '%s{bad}'" incrBy

            Expect.equal (c.Call [ "SET"; "e"; "5"; "EX"; "1000" ]) (Simple "OK") "a counter with a deadline"
            Expect.equal (c.Call [ "INCR"; "e" ]) (Int 6L) "INCR"
            Expect.isTrue (match c.Call [ "TTL"; "e" ] with Int t -> t > 0L | _ -> false) "keeps the deadline")
    }

let private multiKey =
    test "DEL, EXISTS, MGET and MSET on keys of both shards (fanned out and gathered)" {
        withServer (fun server ->
            use c = new Client(server.Port)
            let a = keysOn "a" 0 2 3
            let b = keysOn "b" 1 2 3
            let mixed = [ a[0]; b[0]; a[1]; b[1]; a[2]; b[2] ]
            let pairs = mixed |> List.collect (fun k -> [ k; "v-" + k ])
            Expect.equal (c.Call("MSET" :: pairs)) (Simple "OK") "MSET over both shards"

            Expect.equal
                (c.Call("MGET" :: mixed @ [ "missing" ]))
                (Arr((mixed |> List.map (fun k -> Bulk("v-" + k))) @ [ Nil ]))
                "MGET gathers the values in the order asked, nil for a missing key"

            let oneShard = Arr [ Bulk("v-" + a[0]); Bulk("v-" + a[1]) ]
            Expect.equal (c.Call [ "MGET"; a[0]; a[1] ]) oneShard "MGET on one shard"
            let exists = c.Call [ "EXISTS"; a[0]; b[0]; "missing"; a[0] ]
            Expect.equal exists (Int 3L) "EXISTS counts every key named, twice if named twice"
            Expect.equal (c.Call [ "DBSIZE" ]) (Int 6L) "DBSIZE sums the shards"
            Expect.equal (c.Call [ "DEL"; a[0]; b[0]; "missing"; a[0] ]) (Int 2L) "DEL counts the keys it removed"
            Expect.equal (c.Call [ "DEL"; b[1] ]) (Int 1L) "DEL of one key"
            Expect.equal (c.Call [ "EXISTS"; a[0]; b[0]; b[1] ]) (Int 0L) "gone"
            Expect.equal (c.Call [ "MGET"; a[0]; a[1] ]) (Arr [ Nil; Bulk("v-" + a[1]) ]) "the others stay"
            Expect.equal (c.Call [ "MSET"; a[1]; "x"; a[1]; "y" ]) (Simple "OK") "MSET of the same key twice"
            Expect.equal (c.Call [ "GET"; a[1] ]) (Bulk "y") "the last one wins"

            let perShard = stats server
            Expect.equal (perShard |> Array.map (fun s -> s.Keys)) [| 2L; 1L |] "keys live on their owners"
            Expect.equal (c.Call [ "FLUSHALL" ]) (Simple "OK") "FLUSHALL"
            Expect.equal (c.Call [ "DBSIZE" ]) (Int 0L) "empties every shard")
    }

let private expiry =
    test "EXPIRE, PEXPIRE, TTL, PTTL, PERSIST; keys expire on their shard's timer without being read" {
        withServer (fun server ->
            use c = new Client(server.Port)
            Expect.equal (c.Call [ "TTL"; "none" ]) (Int -2L) "TTL of a missing key"
            Expect.equal (c.Call [ "EXPIRE"; "none"; "10" ]) (Int 0L) "EXPIRE of a missing key"
            c.Call [ "SET"; "k"; "v" ] |> ignore
            Expect.equal (c.Call [ "TTL"; "k" ]) (Int -1L) "no deadline"
            Expect.equal (c.Call [ "EXPIRE"; "k"; "100"; "XX" ]) (Int 0L) "XX without a deadline"
            Expect.equal (c.Call [ "EXPIRE"; "k"; "100"; "NX" ]) (Int 1L) "NX without a deadline"
            Expect.equal (c.Call [ "EXPIRE"; "k"; "50"; "GT" ]) (Int 0L) "GT with a shorter one"
            Expect.equal (c.Call [ "EXPIRE"; "k"; "200"; "GT" ]) (Int 1L) "GT with a longer one"
            Expect.equal (c.Call [ "EXPIRE"; "k"; "300"; "LT" ]) (Int 0L) "LT with a longer one"
            Expect.equal (c.Call [ "PEXPIRE"; "k"; "150000"; "LT" ]) (Int 1L) "PEXPIRE LT with a shorter one"
            let ttl = c.Call [ "TTL"; "k" ]
            Expect.isTrue (match ttl with Int t -> t > 140L && t <= 150L | _ -> false) $"TTL in seconds: %A{ttl}"
            expectErr "ERR NX and XX, GT or LT options" "NX with GT" (c.Call [ "EXPIRE"; "k"; "1"; "NX"; "GT" ])
            expectErr "ERR GT and LT options" "GT with LT" (c.Call [ "EXPIRE"; "k"; "1"; "GT"; "LT" ])
            expectErr "ERR Unsupported option" "an unknown option" (c.Call [ "EXPIRE"; "k"; "1"; "SOON" ])
            expectErr "ERR value is not an integer" "a non-integer" (c.Call [ "EXPIRE"; "k"; "soon" ])
            let tooLong = c.Call [ "EXPIRE"; "k"; "9223372036854775807" ]
            expectErr "ERR invalid expire time in 'expire'" "seconds that overflow" tooLong
            Expect.equal (c.Call [ "PERSIST"; "k" ]) (Int 1L) "PERSIST removes the deadline"
            Expect.equal (c.Call [ "PERSIST"; "k" ]) (Int 0L) "once"
            Expect.equal (c.Call [ "TTL"; "k" ]) (Int -1L) "no deadline any more"
            Expect.equal (c.Call [ "EXPIRE"; "k"; "0" ]) (Int 1L) "a deadline in the past"
            Expect.equal (c.Call [ "EXISTS"; "k" ]) (Int 0L) "deletes the key"

            // A key read after its deadline is gone (read until it is: no sleep stands in for the wait).
            c.Call [ "SET"; "short"; "v"; "PX"; "1" ] |> ignore
            let gone () = c.Call [ "GET"; "short" ] = Nil
            Expect.isTrue (SpinWait.SpinUntil(gone, TimeSpan.FromSeconds 10.0)) "a 1 ms key is gone when read"

            // Keys on both shards that nobody reads again are removed by each shard's sweep (its own timer).
            let before = stats server |> Array.sumBy (fun s -> s.ExpiredKeys)
            let keys = keysOn "exp" 0 2 5 @ keysOn "exp" 1 2 5

            for k in keys do
                Expect.equal (c.Call [ "SET"; k; "v"; "PX"; "20" ]) (Simple "OK") "SET PX 20"

            let swept () =
                let s = stats server
                let expired = s |> Array.sumBy (fun s -> s.ExpiredKeys)
                s |> Array.forall (fun s -> s.Expiring = 0L) && expired - before >= 10L

            Expect.isTrue (SpinWait.SpinUntil(swept, TimeSpan.FromSeconds 10.0)) "both shards removed their keys unread"
            Expect.equal (c.Call [ "DBSIZE" ]) (Int 0L) "and DBSIZE counts none")
    }

let private infoAndAdmin =
    test "INFO (its sections and the shards' stats), DBSIZE, FLUSHALL" {
        withServer (fun server ->
            use c = new Client(server.Port)
            c.Call [ "MSET"; "x"; "1"; "y"; "2"; "z"; "3" ] |> ignore

            match c.Call [ "INFO" ] with
            | Bulk text ->
                let needles =
                    [ "# Server"; "# Keyspace"; "db0:keys=3"; "# Shards"; "shard0:cpu=0"; "shard1:cpu=1" ]

                for needle in "connected_clients:1" :: needles do
                    Expect.stringContains text needle $"INFO has %s{needle}"
            | other -> failtestf "INFO: %A" other

            match c.Call [ "INFO"; "keyspace" ] with
            | Bulk text ->
                Expect.stringContains text "db0:keys=3" "INFO keyspace"
                Expect.isFalse (text.Contains "# Server") "only the section asked for"
            | other -> failtestf "INFO keyspace: %A" other

            Expect.equal (c.Call [ "DBSIZE" ]) (Int 3L) "DBSIZE"
            Expect.equal (c.Call [ "FLUSHALL" ]) (Simple "OK") "FLUSHALL"
            Expect.equal (c.Call [ "DBSIZE" ]) (Int 0L) "empty")
    }

let private inline' =
    test "inline commands, as typed into telnet" {
        withServer (fun server ->
            use c = new Client(server.Port)
            c.Send(latin1.GetBytes "PING\r\nSET greeting \"hello world\"\r\n\r\nGET greeting\nINCRBY n  7\r\n")
            Expect.equal (c.Read()) (Simple "PONG") "PING"
            Expect.equal (c.Read()) (Simple "OK") "SET with a quoted value (an empty line in between is skipped)"
            Expect.equal (c.Read()) (Bulk "hello world") "GET, ended by a bare LF"
            Expect.equal (c.Read()) (Int 7L) "extra spaces between words")
    }

/// 1,000 commands on keys of both shards, sent in one write: replies come back in order.
let private pipelining =
    test "pipelining: 1,000 commands in one write on keys of both shards, replies in order" {
        withServer (fun server ->
            use c = new Client(server.Port)

            let commands, expected =
                [ for i in 0..999 ->
                      match i % 5 with
                      | 0 -> [ "SET"; $"key:%d{i}"; $"value:%d{i}" ], Simple "OK"
                      | 1 -> [ "GET"; $"key:%d{i - 1}" ], Bulk $"value:%d{i - 1}"
                      | 2 -> [ "INCR"; "counter" ], Int(int64 (i / 5 + 1))
                      | 3 -> [ "GET"; $"nothing:%d{i}" ], Nil
                      | _ when i % 100 = 4 ->
                          [ "MGET"; $"key:%d{i - 4}"; "counter" ],
                          Arr [ Bulk $"value:%d{i - 4}"; Bulk $"%d{i / 5 + 1}" ]
                      | _ -> [ "EXISTS"; $"key:%d{i - 4}"; $"key:%d{i - 9}" ], Int(if i < 9 then 1L else 2L) ]
                |> List.unzip

            let bytes = commands |> List.map encode |> Array.concat
            c.Send bytes
            let replies = [ for _ in commands -> c.Read() ]

            for i, (got, want) in List.indexed (List.zip replies expected) do
                if got <> want then
                    failtestf "reply %d to %A: expected %A, got %A" i commands[i] want got

            let perShard = stats server
            let forwarded = perShard |> Array.sumBy (fun s -> s.Forwarded)
            Expect.isGreaterThan forwarded 0L "some commands ran on the other shard"
            Expect.isTrue (perShard |> Array.forall (fun s -> s.Keys > 0L)) "both shards own keys")
    }

let private eachShard =
    test "keys that land on each shard: their owner keeps them, whichever shard the connection is on" {
        withServer (fun server ->
            let onZero = keysOn "zero" 0 2 100
            let onOne = keysOn "one" 1 2 100
            // Several connections, so both shards (most likely) accept some; each touches keys of both.
            let clients = [ for _ in 1..8 -> new Client(server.Port) ]

            for i, c in List.indexed clients do
                for k in onZero @ onOne do
                    Expect.equal (c.Call [ "SET"; k; $"%s{k}@%d{i}" ]) (Simple "OK") "SET"

            let last = List.length clients - 1

            for c in clients do
                for k in onZero @ onOne do
                    Expect.equal (c.Call [ "GET"; k ]) (Bulk $"%s{k}@%d{last}") "every connection sees the last write"

            let perShard = stats server
            Expect.equal (perShard |> Array.map (fun s -> s.Keys)) [| 100L; 100L |] "each shard owns its 100 keys"
            let remote = perShard |> Array.sumBy (fun s -> s.RemoteOperations)
            Expect.isGreaterThan remote 0L "commands ran for the other shard's connections"
            let connections = perShard |> Array.sumBy (fun s -> s.Connections)
            Expect.equal connections clients.Length "every connection is counted once"

            for c in clients do
                (c :> IDisposable).Dispose())
    }

let private malformed =
    test "malformed frames: -ERR Protocol error after the replies before it, then the close; the server goes on" {
        withServer (fun server ->
            let cases =
                [ "*abc\r\n", "invalid multibulk length"
                  "*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$', got ':'"
                  "*1\r\n$-5\r\n", "invalid bulk length"
                  "*1\r\n$x\r\n", "invalid bulk length"
                  "*1\r\n$3\r\nGETxx\r\n", "expected CRLF"
                  "*1\r\n$99999999999\r\n", "invalid bulk length"
                  "*2000000\r\n", "invalid multibulk length"
                  "*12345678901234567890\r\n", "invalid multibulk length"
                  "SET \"unbalanced x\r\n", "unbalanced quotes" ]

            for frame, why in cases do
                use c = new Client(server.Port)
                c.Send(Array.append (encode [ "PING" ]) (latin1.GetBytes frame))
                Expect.equal (c.Read()) (Simple "PONG") $"the command before %A{frame} is answered"

                match c.Read() with
                | Err e ->
                    Expect.stringStarts e "ERR Protocol error" $"%A{frame}"
                    Expect.stringContains e why $"%A{frame}"
                | other -> failtestf "%A: expected a protocol error, got %A" frame other

                Expect.isTrue (c.AtEnd()) $"%A{frame}: the server closed the connection"

            use after = new Client(server.Port)
            Expect.equal (after.Call [ "PING" ]) (Simple "PONG") "the server still serves"
            let errors = stats server |> Array.sumBy (fun s -> s.ProtocolErrors)
            Expect.equal errors (int64 cases.Length) "each was counted")
    }

let private oneByteWrites =
    test "a command split into one-byte writes (one TCP segment each) is parsed whole" {
        withServer (fun server ->
            use c = new Client(server.Port)
            let value = String(Array.init 3000 (fun i -> char (32 + i % 90)))
            let bytes = encode [ "SET"; "split"; value ]

            for b in bytes do
                c.Send [| b |]

            Expect.equal (c.Read()) (Simple "OK") "SET sent a byte at a time"

            for b in encode [ "GET"; "split" ] do
                c.Send [| b |]

            Expect.equal (c.Read()) (Bulk value) "and the value is whole")
    }

let private bigValue =
    test "a 5 MiB value: the receive buffer grows for it (and shrinks after), GET returns it whole" {
        withServer (fun server ->
            use c = new Client(server.Port)
            let value = String(Array.init (5 <<< 20) (fun i -> char (i * 7 % 256)))
            Expect.equal (c.Call [ "SET"; "big"; value ]) (Simple "OK") "SET of 5 MiB"
            Expect.equal (c.Call [ "GET"; "big" ]) (Bulk value) "GET of 5 MiB"
            Expect.equal (c.Call [ "MGET"; "big"; "big" ]) (Arr [ Bulk value; Bulk value ]) "MGET of it twice"
            Expect.equal (c.Call [ "PING" ]) (Simple "PONG") "small commands after it")
    }

let private manyClients =
    test "200 concurrent clients, each with its own keys and one shared counter" {
        withServer (fun server ->
            let clients, rounds = 200, 25
            let start = new Barrier(clients)

            let run (id: int) () =
                use c = new Client(server.Port)
                start.SignalAndWait(shardTimeout) |> ignore
                let mutable ok = true

                for r in 1..rounds do
                    let key = $"client:%d{id}:%d{r % 5}"
                    ok <- ok && c.Call [ "SET"; key; $"%d{id}/%d{r}" ] = Simple "OK"
                    ok <- ok && c.Call [ "GET"; key ] = Bulk $"%d{id}/%d{r}"
                    ok <- ok && (match c.Call [ "INCR"; "shared" ] with Int _ -> true | _ -> false)

                ok

            let tasks =
                [| for id in 1..clients ->
                       Task.Factory.StartNew(
                           run id,
                           CancellationToken.None,
                           TaskCreationOptions.LongRunning,
                           TaskScheduler.Default
                       ) |]

            let results = Task.WhenAll tasks |> awaitBounded "200 clients" (TimeSpan.FromSeconds 120.0)
            Expect.isTrue (Array.forall id results) "every client read its own writes"
            use c = new Client(server.Port)
            Expect.equal (c.Call [ "GET"; "shared" ]) (Bulk $"%d{clients * rounds}") "no increment was lost"
            Expect.equal (c.Call [ "DBSIZE" ]) (Int(int64 (clients * 5 + 1))) "every key is there once")
    }

let private limits =
    test "limits: a bulk longer than proto-max-bulk-len, 512 MiB of garbage, a command past the query buffer limit" {
        withServerAs
            (fun o -> o.QueryBufferLimit <- 1L <<< 20)
            (fun server ->
                // A declared length over proto-max-bulk-len (512 MiB) is refused before any of it is read.
                use c = new Client(server.Port)
                c.Send(latin1.GetBytes "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\n")
                expectErr "ERR Protocol error: invalid bulk length" "a 512 MiB + 1 bulk" (c.Read())
                Expect.isTrue (c.AtEnd()) "closed"

                // One within proto-max-bulk-len that the query buffer (1 MiB here) cannot hold: refused from its
                // header.
                use c = new Client(server.Port)
                c.Send(latin1.GetBytes "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10000000\r\nxxxx")
                expectErr "ERR Protocol error: query buffer limit" "a 10 MB bulk with a 1 MiB limit" (c.Read())
                Expect.isTrue (c.AtEnd()) "closed"

                // Many small arguments that never end: refused when they fill the buffer.
                use c = new Client(server.Port)
                let sender =
                    Task.Factory.StartNew(
                        (fun () ->
                            let arg = latin1.GetBytes "$1\r\na\r\n"
                            let chunk = Array.concat (Array.create 8192 arg)
                            try
                                c.Send(latin1.GetBytes "*1000000\r\n")
                                for _ in 1..100 do c.Send chunk // 5.6 MB in all, if the server took it
                            with :? SocketException -> ()),
                        CancellationToken.None,
                        TaskCreationOptions.LongRunning,
                        TaskScheduler.Default
                    )
                expectErr "ERR Protocol error: query buffer limit" "an endless command" (c.Read())
                task { do! sender } |> awaitBounded "the sender" shardTimeout

                // 512 MiB of garbage without a line end: refused once 64 KiB have come (an inline request's limit).
                use c = new Client(server.Port)
                let mutable sent = 0L
                let garbage = Array.create (1 <<< 20) (byte 'x')
                let sender =
                    Task.Factory.StartNew(
                        (fun () ->
                            try
                                while sent < (512L <<< 20) do
                                    sent <- sent + int64 (c.Socket.Send garbage)
                            with :? SocketException -> ()),
                        CancellationToken.None,
                        TaskCreationOptions.LongRunning,
                        TaskScheduler.Default
                    )
                expectErr "ERR Protocol error: too big inline request" "512 MiB of garbage" (c.Read())
                task { do! sender } |> awaitBounded "the garbage sender" shardTimeout
                Expect.isLessThan sent (512L <<< 20) "the server closed the connection before taking it all"

                let peak = stats server |> Array.map (fun s -> s.PeakQueryBuffer) |> Array.max
                let limit = 1L <<< 20
                Expect.isLessThanOrEqual peak limit $"no connection's buffer passed the 1 MiB limit (peak %d{peak} B)"
                use after = new Client(server.Port)
                Expect.equal (after.Call [ "PING" ]) (Simple "PONG") "the server still serves")
    }

let private redisCli =
    test "redis-cli talks to it (skipped, with the reason, where it is not installed)" {
        let onPath =
            (Environment.GetEnvironmentVariable "PATH" |> nonNull).Split(':')
            |> Array.map (fun d -> Path.Combine(d, "redis-cli"))
            |> Array.tryFind File.Exists

        match onPath with
        | None -> skipBecause "redis-cli is not installed (apt-get install redis-tools)"
        | Some cli ->
            withServer (fun server ->
                let run (input: string option) (args: string) =
                    let info =
                        ProcessStartInfo(
                            cli,
                            $"-p %d{server.Port} %s{args}",
                            RedirectStandardOutput = true,
                            RedirectStandardInput = input.IsSome,
                            UseShellExecute = false
                        )

                    use p = Process.Start info |> nonNull

                    match input with
                    | Some text ->
                        p.StandardInput.Write text
                        p.StandardInput.Close()
                    | None -> ()

                    let output = p.StandardOutput.ReadToEndAsync()
                    Expect.isTrue (p.WaitForExit 30_000) $"redis-cli %s{args} ended"
                    (output |> awaitBounded "redis-cli's output" shardTimeout).TrimEnd('\n')

                Expect.equal (run None "PING") "PONG" "PING"
                Expect.equal (run None "SET greeting hello") "OK" "SET"
                Expect.equal (run None "GET greeting") "hello" "GET"
                Expect.equal (run None "-r 100 INCR counter" |> fun s -> s.Split('\n').Length) 100 "INCR, 100 times"
                Expect.equal (run None "GET counter") "100" "every increment counted"
                Expect.equal (run None "MGET greeting nothing counter") "hello\n\n100" "MGET"
                Expect.stringContains (run None "INFO keyspace") "db0:keys=2" "INFO"
                let commands = String.Join("", [ for i in 1..1000 -> $"SET piped:%d{i} %d{i}\r\n" ])
                let piped = run (Some commands) "--pipe"
                Expect.stringContains piped "errors: 0, replies: 1000" "--pipe: 1,000 commands, no error"
                Expect.equal (run None "DBSIZE") "1002" "all there")
    }

let private startStop =
    test "a port another server listens on is refused; StopAsync closes connections and frees the port" {
        let first = startServer ignore
        let port = first.Port
        let client = new Client(port)
        Expect.equal (client.Call [ "SET"; "k"; "v" ]) (Simple "OK") "the first server serves"

        let refused =
            thrownBy (fun () -> startServer (fun o -> o.Port <- port))
            |> expectExn<SocketException> "a second server on the same port"

        Expect.equal refused.SocketErrorCode SocketError.AddressAlreadyInUse "AddressAlreadyInUse"
        stop first
        Expect.isTrue (client.AtEnd()) "StopAsync closed the open connection"
        (client :> IDisposable).Dispose()
        let second = startServer (fun o -> o.Port <- port)

        try
            use c = new Client(port)
            Expect.equal (c.Call [ "GET"; "k" ]) Nil "a new server on the freed port, with an empty key space"
        finally
            stop second
    }

let private allocations =
    test "the shard allocates 0 B per GET and SET in steady state (request-response and pipelined)" {
        withServerAs
            (fun o ->
                o.Shards <- 1
                o.Cpus <- ([| 0 |] :> IReadOnlyList<int>))
            (fun server ->
                use c = new Client(server.Port)
                let value = String('v', 64)
                let keys = [| for i in 0..1007 -> $"key:%012d{i}" |]
                let setBytes = keys |> Array.map (fun k -> encode [ "SET"; k; value ])
                let getBytes = keys |> Array.map (fun k -> encode [ "GET"; k ])
                let pipelined =
                    Array.init 63 (fun i ->
                        Array.concat
                            [ for k in i * 16 .. i * 16 + 15 -> if k % 2 = 0 then setBytes[k] else getBytes[k] ])

                // One round: 1,000 SETs and 1,000 GETs one at a time, then 1,008 of each in pipelines of 16.
                let round () =
                    for i in 0..999 do
                        c.Send setBytes[i]
                        c.Read() |> ignore
                        c.Send getBytes[i]
                        c.Read() |> ignore

                    for p in pipelined do
                        c.Send p
                        for _ in 1..16 do
                            c.Read() |> ignore

                    2 * 1000 + 63 * 16

                for _ in 1..5 do
                    round () |> ignore // warm-up: creates the keys, lets the JIT settle

                let shard0 () = server.GetShardStatsAsync 0 |> awaitBounded "the shard's stats" shardTimeout
                // A snapshot allocates on the shard after it reads the count (its first ones more, once): measure
                // that with no traffic, after two to settle.
                let s0 = shard0 ()
                let s0 = shard0 ()
                let s0 = shard0 ()
                let s1 = shard0 ()
                let idle = s1.AllocatedBytes - s0.AllocatedBytes
                let mutable ops = 0
                for _ in 1..5 do
                    ops <- ops + round ()
                let s2 = shard0 ()
                let traffic = s2.AllocatedBytes - s1.AllocatedBytes - idle
                let each = float traffic / float ops
                printfn
                    "KeyValue allocations: %d B on the shard over %d GET/SET (%.3f B each; snapshot %d B)"
                    traffic
                    ops
                    each
                    idle
                Expect.equal (s2.Commands - s1.Commands) (int64 ops) "every command was counted"

                match c.Call [ "INFO"; "shards" ] with
                | Bulk text -> Expect.stringContains text "shard0:cpu=0,keys=1004" "INFO on a one-shard server (1,000 keys, and 4 more set in pipelines)"
                | other -> failtestf "INFO: %A" other

                Expect.equal traffic 0L $"the shard allocated %d{traffic} B over %d{ops} GET/SET in steady state")
    }

/// Not a budget, a figure for the README: what a forwarded batch costs the connection's shard.
let private crossShardAllocations =
    test "cross-shard GETs: the connection's shard allocates per forwarded batch (printed, not asserted)" {
        withServer (fun server ->
            use c = new Client(server.Port)
            c.Call [ "PING" ] |> ignore
            let home = (stats server |> Array.find (fun s -> s.Connections = 1)).Shard
            let keys = keysOn "far" (1 - home) 2 16 |> Array.ofList
            let value = String('v', 64)

            for k in keys do
                c.Call [ "SET"; k; value ] |> ignore

            let batch = keys |> Array.map (fun k -> encode [ "GET"; k ]) |> Array.concat

            let run count =
                for _ in 1..count do
                    c.Send batch
                    for _ in keys do
                        c.Read() |> ignore

            run 500
            let snapshot () = server.GetShardStatsAsync home |> awaitBounded "the shard's stats" shardTimeout
            snapshot () |> ignore
            let s0 = snapshot ()
            let s1 = snapshot ()
            let idle = s1.AllocatedBytes - s0.AllocatedBytes
            run 1000
            let s2 = snapshot ()
            let perBatch = float (s2.AllocatedBytes - s1.AllocatedBytes - idle) / 1000.0
            let perGet = perBatch / 16.0
            printfn
                "KeyValue cross-shard: %.0f B per batch of 16 GETs forwarded to the other shard (%.1f B per GET)"
                perBatch
                perGet
            Expect.equal (s2.Forwarded - s1.Forwarded) 16000L "every GET was forwarded")
    }

let tests =
    testSequenced
    <| testList "keyvalue" [
        connectionLevel
        getSet
        counters
        multiKey
        expiry
        infoAndAdmin
        inline'
        pipelining
        eachShard
        malformed
        oneByteWrites
        bigValue
        manyClients
        limits
        redisCli
        startStop
        allocations
        crossShardAllocations
    ]

// A TCP server and its client as tasks of one shard: both ends of every connection go through the shard's
// io_uring. The server answers each line in upper case; the client reads the answers with a StreamReader.
open System
open System.IO
open System.Net
open System.Text
open System.Threading.Tasks
open Scipio
open Scipio.Net

let serve (connection: TcpStream) =
    task {
        use reader = new StreamReader(connection.AsStream())
        let mutable finished = false

        while not finished do
            match! reader.ReadLineAsync() with
            | null -> finished <- true
            | line -> do! connection.WriteAsync(ReadOnlyMemory(Encoding.UTF8.GetBytes(line.ToUpperInvariant() + "\n")))

        do! connection.DisposeAsync()
    }

let main () =
    task {
        let listener = TcpListener.Bind(IPEndPoint(IPAddress.Loopback, 0))

        let server =
            Shard.Spawn(fun () ->
                task {
                    let! connection = listener.AcceptAsync()
                    do! serve connection
                })

        let! client = TcpStream.ConnectAsync listener.LocalEndPoint
        use answers = new StreamReader(client.AsStream())

        for word in [ "hello"; "thread-per-core"; "io_uring" ] do
            do! client.WriteAsync(ReadOnlyMemory(Encoding.UTF8.GetBytes(word + "\n")))
            let! answer = answers.ReadLineAsync()

            printfn
                $"sent %s{word}, got %s{answer} (shard %d{Shard.Id}, %d{Shard.Stats.Main.Submitted} operations so far)"

        do! client.ShutdownAsync(Sockets.SocketShutdown.Send)
        do! server
        do! client.DisposeAsync()
        do! listener.DisposeAsync()
    }

Shard.Run(Func<Task>(fun () -> main ()))

// Consumes the Scipio and Scipio.FSharp packages from F#: a shard, a file round trip through the ring, a TCP echo on
// 127.0.0.1, written in shard { } (with a loop, whose iterations are preemption points).
open System
open System.IO
open System.Net
open System.Text
open System.Threading.Tasks
open Scipio
open Scipio.IO
open Scipio.Net

let result =
    Shard.Run(fun () ->
        shard {
            let path =
                Path.Combine(Path.GetTempPath(), $"scipio-consumer-fs-{Environment.ProcessId}.txt")

            try
                let! file = BufferedFile.CreateAsync path
                do! file.WriteAtAsync(ReadOnlyMemory(Encoding.ASCII.GetBytes "round trip"), 0L)
                let back = Array.zeroCreate<byte> 10
                let mutable spins = 0

                while spins < 1000 do
                    spins <- spins + 1

                let! read = file.ReadAtAsync(Memory back, 0L)
                do! file.DisposeAsync()
                let listener = TcpListener.Bind(IPEndPoint(IPAddress.Loopback, 0))

                let server =
                    Shard.Spawn(fun () ->
                        task {
                            let! connection = listener.AcceptAsync()
                            let buffer = Array.zeroCreate<byte> 16
                            let! n = connection.ReadAsync(Memory buffer)
                            do! connection.WriteAsync(ReadOnlyMemory(buffer, 0, n))
                            do! connection.DisposeAsync()
                            return n
                        })

                let! client = TcpStream.ConnectAsync listener.LocalEndPoint
                do! client.WriteAsync(ReadOnlyMemory(Encoding.ASCII.GetBytes "echo"))
                let echoed = Array.zeroCreate<byte> 4
                let! got = client.ReadAsync(Memory echoed)
                let! _ = server
                do! client.DisposeAsync()
                do! listener.DisposeAsync()

                return
                    $"{Encoding.ASCII.GetString(back, 0, read)} / {Encoding.ASCII.GetString(echoed, 0, got)} / {Shard.Stats.Backend}"
            finally
                File.Delete path
        })

printfn "%s" result

printfn
    "%s"
    (if result.StartsWith "round trip / echo / " then
         "consumer ok"
     else
         "consumer FAILED")

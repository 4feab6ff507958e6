// The quick start in F#: the same shard, queues and file I/O, written with F#'s own task { }.
open System
open System.IO
open System.Threading.Tasks
open Scipio
open Scipio.IO

let dir = Directory.CreateTempSubdirectory("scipio-quickstart-fs").FullName

let total =
    Shard.Run(
        (fun () ->
            task {
                let fg = Shard.CreateTaskQueue("foreground", Shares.Static 300, Latency.NotImportant)
                let bg = Shard.CreateTaskQueue("background", Shares.Static 100, Latency.NotImportant)
                let mutable stop = false

                let hog () =
                    task {
                        let mutable n = 0L

                        while not stop do
                            n <- n + 1L

                            if n &&& 1023L = 0L then
                                do! Shard.YieldIfNeeded()

                        return n
                    }

                let a = Shard.SpawnInto(fg, Func<Task<int64>> hog)
                let b = Shard.SpawnInto(bg, Func<Task<int64>> hog)

                do! Shard.Sleep(TimeSpan.FromMilliseconds 500.0)
                let! file = BufferedFile.CreateAsync(Path.Combine(dir, "hello.txt"))
                do! file.WriteAtAsync("hello from F#"B, 0L)
                let buffer = Array.zeroCreate<byte> 64
                let! read = file.ReadAtAsync(buffer, 0L)
                printfn "read back %d bytes: %s" read (Text.Encoding.UTF8.GetString(buffer, 0, read))
                do! file.DisposeAsync()
                stop <- true

                let! na = a
                let! nb = b

                for q in Shard.Stats.TaskQueues do
                    printfn "%-12s shares %4d  runtime %7.1f ms" q.Name q.Shares q.Runtime.TotalMilliseconds

                return na + nb
            }),
        ShardOptions(Placement = Placement.Fixed 0)
    )

printfn "the hogs counted to %d together" total
Directory.Delete(dir, true)

// The quick start in F#: one shard pinned to CPU 0, two task queues that share the CPU 3:1, a little file I/O
// through io_uring, and the shard's statistics — written with shard { }, whose loops yield to the scheduler by
// themselves, and the curried modules of Scipio.FSharp.
open System
open System.IO
open Scipio
open Scipio.IO

let dir = Directory.CreateTempSubdirectory("scipio-quickstart-fs").FullName

let total =
    Shard.runWith (ShardOptions(Placement = Placement.Fixed 0)) (fun () ->
        shard {
            let fg = TaskQueue.create "foreground" (Shares.Static 300) Latency.NotImportant
            let bg = TaskQueue.create "background" (Shares.Static 100) Latency.NotImportant
            let mutable stop = false

            // Two CPU hogs written without a thought for the scheduler: every iteration of a loop in shard { } is a
            // preemption point, which costs a memory read unless the scheduler wants the CPU back.
            let hog () =
                shard {
                    let mutable n = 0L

                    while not stop do
                        n <- n + 1L

                    return n
                }

            let a = Shard.spawnInto fg hog
            let b = Shard.spawnInto bg hog

            // Meanwhile, main sleeps (an io_uring timeout) and does file I/O: the shard interleaves all three.
            do! Shard.sleep (TimeSpan.FromMilliseconds 500.0)
            let! file = BufferedFile.create (Path.Combine(dir, "hello.txt"))
            do! file |> BufferedFile.writeAt (ReadOnlyMemory "hello from F#"B) 0L
            do! BufferedFile.flush file
            let buffer = Array.zeroCreate<byte> 64
            let! read = file |> BufferedFile.readAt (Memory buffer) 0L
            printfn "read back %d bytes: \"%s\"" read (Text.Encoding.UTF8.GetString(buffer, 0, read))
            do! BufferedFile.close file
            stop <- true

            let! na = a
            let! nb = b

            let stats = Shard.stats ()

            printfn
                "shard %d on CPU %d: %d work items, %d preemptions, %d parks"
                (Shard.id ())
                (Shard.cpu ())
                stats.TasksRun
                stats.Preemptions
                stats.Parks

            printfn ""
            printfn "%-12s %6s %10s %6s %8s %7s" "queue" "shares" "runtime" "share" "tasks" "picked"
            let all = stats.TaskQueues |> Seq.sumBy _.Runtime.TotalMilliseconds

            for q in stats.TaskQueues do
                let ms = q.Runtime.TotalMilliseconds

                printfn
                    "%-12s %6d %8.1fms %5.0f%% %8d %7d"
                    q.Name
                    q.Shares
                    ms
                    (100.0 * ms / all)
                    q.TasksRun
                    q.QueueSelected

            return na + nb
        })

printfn "\nthe hogs counted to %d together" total
Directory.Delete(dir, true)

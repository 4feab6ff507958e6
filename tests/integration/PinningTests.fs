/// Placement: a pinned shard runs where it was put (checked with libc's own sched_getcpu and sched_getaffinity),
/// an impossible placement fails at start with a message naming the CPU, and an unbound shard keeps the process's
/// CPUs — also when started from a pinned shard, and without changing the caller's thread.
module Scipio.Integration.Tests.PinningTests

open System
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Integration.Tests.Helpers

/// Samples the CPU the shard thread runs on `count` times, yielding in between so the kernel gets chances to move it.
let private sampleCpus (count: int) =
    task {
        let seen = Collections.Generic.HashSet<int>()

        for i in 1..count do
            seen.Add(Libc.sched_getcpu ()) |> ignore

            if i % 10 = 0 then
                do! Shard.Yield()

            if i % 100 = 0 then
                do! Shard.Sleep(TimeSpan.FromMilliseconds 0.1)

        return Array.ofSeq seen |> Array.sort
    }

let private needsTwoCpus (name: string) (body: unit -> unit) =
    test name {
        let cpus = Libc.processCpus ()

        if not (Array.contains 0 cpus && Array.contains 1 cpus) then
            skipBecause $"'%s{name}' needs CPUs 0 and 1 in the process's affinity; it has %s{describeCpus cpus}"

        body ()
    }

let private fixedCpu =
    needsTwoCpus "Placement.Fixed 1: the shard thread runs only on CPU 1 and Shard.Cpu says 1" (fun () ->
        let runnerBefore = Libc.affinityOf 0
        let processBefore = Libc.processCpus ()

        let seen, cpu, mask =
            runShardWith (ShardOptions(Placement = Placement.Fixed 1)) (fun () ->
                task {
                    let! seen = sampleCpus 1000
                    return seen, Shard.Cpu, Libc.affinityOf 0
                })

        Expect.equal seen [| 1 |] $"sched_getcpu on the shard should always be 1; saw CPUs %s{describeCpus seen}"
        Expect.equal cpu 1 "Shard.Cpu of a shard pinned to CPU 1"
        Expect.equal mask [| 1 |] "the shard thread's affinity mask"

        Expect.equal
            (Libc.affinityOf 0)
            runnerBefore
            "starting a pinned shard must not change the calling thread's affinity"

        Expect.equal
            (Libc.processCpus ())
            processBefore
            "starting a pinned shard must not change the main thread's (the process's) affinity")

let private missingCpu =
    test "Placement.Fixed 99: Shard.Run throws ArgumentException naming CPU 99" {
        let thrown =
            thrownBy (fun () ->
                onNewThread "Shard.Run caller" (fun () ->
                    Shard.Run(
                        Func<Task<int>>(fun () -> Task.FromResult 0),
                        ShardOptions(Placement = Placement.Fixed 99)
                    )))

        let e = expectExn<ArgumentException> "Shard.Run with Placement.Fixed 99" thrown
        Expect.stringContains e.Message "99" "the message should name the CPU that cannot be used"
    }

let private startFailure =
    test "Shard.Start with an impossible placement faults its Completion (it does not throw)" {
        let handle =
            Shard.Start(
                Func<Task<int>>(fun () -> Task.FromResult 0),
                ShardOptions(Placement = Placement.Fenced [| 0; 1; 4096 |])
            )

        let thrown =
            thrownBy (fun () -> awaitBounded "the shard" shardTimeout handle.Completion)

        let e =
            expectExn<ArgumentException> "Completion of a shard fenced to CPUs 0,1,4096" thrown

        Expect.stringContains e.Message "4096" "the message names the CPU that cannot be used"
        Expect.isTrue handle.Completion.IsFaulted "the handle's Completion is faulted"
    }

let private fenced =
    needsTwoCpus "Placement.Fenced [0;1] is accepted: the shard may run on CPUs 0 and 1" (fun () ->
        let mask, cpu =
            runShardWith (ShardOptions(Placement = Placement.Fenced [| 0; 1 |])) (fun () ->
                task { return Libc.affinityOf 0, Shard.Cpu })

        Expect.equal mask [| 0; 1 |] "the fenced shard thread's affinity mask"
        Expect.isTrue (cpu = 0 || cpu = 1) $"Shard.Cpu of a shard fenced to 0,1 should be 0 or 1, got %d{cpu}")

let private unbound =
    test "an unbound shard's thread may use every CPU the process may" {
        let mask = runShard (fun () -> task { return Libc.affinityOf 0 })
        Expect.equal mask (Libc.processCpus ()) "the unbound shard thread's affinity should be the process's"
    }

let private unboundFromPinned =
    needsTwoCpus "an unbound shard started from a shard pinned to CPU 1 does not inherit the pin" (fun () ->
        let innerMask =
            runShardWith (ShardOptions(Placement = Placement.Fixed 1)) (fun () ->
                task {
                    let inner =
                        Shard.Start(Func<Task<int array>>(fun () -> task { return Libc.affinityOf 0 }))

                    return! inner.Completion
                })

        Expect.equal
            innerMask
            (Libc.processCpus ())
            "the inner unbound shard's affinity should be the process's, not the pinned creator's")

let tests =
    testSequenced
    <| testList "pinning" [ fixedCpu; missingCpu; startFailure; fenced; unbound; unboundFromPinned ]

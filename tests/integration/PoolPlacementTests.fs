/// Pool placement in the shell: the topology read from this machine's sysfs is sane, the cpulist parser reads the
/// kernel's syntax, a fake sysfs tree with files missing falls back to sensible defaults, and PoolPlacement's
/// factories and Resolve refuse what cannot be honoured with ArgumentException.
module Scipio.Integration.Tests.PoolPlacementTests

open System
open System.IO
open Expecto
open Scipio
open Scipio.Interop
open Scipio.Integration.Tests.Helpers

/// The CPUs a pool may use on this machine: online and allowed, sorted.
let private usable () =
    let online = Topology.Read() |> Array.map (fun c -> c.Cpu)

    Libc.processCpus ()
    |> Array.filter (fun c -> Array.contains c online)
    |> Array.sort

/// A test that needs exactly CPUs 0 and 1 to be usable (this project's 2-CPU machines); skipped elsewhere.
let private onTwoCpus (name: string) (body: unit -> unit) =
    test name {
        let cpus = usable ()

        if cpus <> [| 0; 1 |] then
            skipBecause
                $"'%s{name}' needs exactly CPUs 0 and 1 online and allowed; this machine has %s{describeCpus cpus}"

        body ()
    }

/// Writes `text` to `root/relative`, creating directories.
let private write (root: string) (relative: string) (text: string) =
    let path = Path.Combine(root, relative)
    Directory.CreateDirectory(Path.GetDirectoryName path |> nonNull) |> ignore
    File.WriteAllText(path, text)

let private info cpu core package node =
    {
        Scipio.Core.CpuInfo.Cpu = cpu
        Scipio.Core.CpuInfo.Core = core
        Scipio.Core.CpuInfo.Package = package
        Scipio.Core.CpuInfo.Node = node
    }

let private topologyTests =
    testList
        "Topology"
        [
            test "the topology read here lists each online CPU once, with non-negative ids, and covers the allowed CPUs" {
                let topology = Topology.Read()
                let cpus = topology |> Array.map (fun c -> c.Cpu)

                let online =
                    Topology.ParseCpuList(File.ReadAllText "/sys/devices/system/cpu/online")

                Expect.equal (Array.sort cpus) online "the CPUs of /sys/devices/system/cpu/online, each once"

                for c in topology do
                    Expect.isGreaterThanOrEqual c.Core 0 $"core of CPU {c.Cpu}"
                    Expect.isGreaterThanOrEqual c.Package 0 $"package of CPU {c.Cpu}"
                    Expect.isGreaterThanOrEqual c.Node 0 $"node of CPU {c.Cpu}"

                let allowed = Libc.processCpus ()

                Expect.all allowed (fun c -> Array.contains c cpus) $"allowed CPUs %s{describeCpus allowed} are online"
                Expect.equal (PoolPlacement.DefaultShards()) (max 1 (usable ()).Length) "one shard per usable CPU"
            }

            test "ParseCpuList reads the kernel's cpulist syntax" {
                let cases =
                    [
                        "0-3,8,10-11", [| 0; 1; 2; 3; 8; 10; 11 |]
                        "0-3,8,10-11\n", [| 0; 1; 2; 3; 8; 10; 11 |]
                        "5", [| 5 |]
                        "", [||]
                        "\n", [||]
                        "3,1,1-2", [| 1; 2; 3 |]
                        "0-7:2", [| 0; 2; 4; 6 |]
                        " 0 - 1 , 4 ", [| 0; 1; 4 |]
                    ]

                for text, expected in cases do
                    Expect.equal (Topology.ParseCpuList text) expected $"'{text.Trim()}'"
            }

            test "ParseCpuList refuses what is not a cpulist, with FormatException" {
                for text in [ "a"; "1,,2"; "3-1"; "-1"; "1-"; "0-7:0"; "4:2"; "70000"; "0x1" ] do
                    let e =
                        expectExn<FormatException> $"'{text}'" (thrownBy (fun () -> Topology.ParseCpuList text))

                    Expect.stringContains e.Message "not a CPU list" "says what it expected"
            }

            test "Read on a full sysfs tree takes cores, packages and nodes from it" {
                withTempDir (fun root ->
                    write root "cpu/online" "0-3\n"

                    for cpu in 0..3 do
                        write root $"cpu/cpu{cpu}/topology/core_id" $"{cpu % 2}\n"
                        write root $"cpu/cpu{cpu}/topology/physical_package_id" $"{cpu / 2}\n"

                    write root "node/node0/cpulist" "0-1\n"
                    write root "node/node1/cpulist" "2-3\n"

                    Expect.equal
                        (Topology.Read(root, [| 9 |]))
                        [| info 0 0 0 0; info 1 1 0 0; info 2 0 1 1; info 3 1 1 1 |]
                        "as written")
            }

            test "Read with files missing: a CPU is its own core, in package 0, on node 0 unless its directory says" {
                withTempDir (fun root ->
                    write root "cpu/online" "0,2"
                    write root "cpu/cpu2/topology/core_id" "7"
                    write root "cpu/cpu2/topology/physical_package_id" "-1" // 'unknown' on some platforms
                    Directory.CreateDirectory(Path.Combine(root, "cpu/cpu2/node3")) |> ignore

                    Expect.equal (Topology.Read(root, [| 9 |])) [| info 0 0 0 0; info 2 7 0 3 |] "defaults")
            }

            test "Read without cpu/online takes the fallback CPUs as online" {
                withTempDir (fun root ->
                    Expect.equal (Topology.Read(root, [| 1; 4 |])) [| info 1 1 0 0; info 4 4 0 0 |] "fallback")
            }
        ]

/// 2 nodes × 1 package × 2 cores × 2 threads, numbered core-major.
let private twoByTwoByTwo =
    [|
        for node in 0..1 do
            for core in 0..1 do
                for thread in 0..1 do
                    yield info (node * 4 + core * 2 + thread) core node node
    |]

let private options (e: ArgumentException) =
    Expect.equal e.ParamName "options" "the pool's options are what is wrong"
    e

let private resolveTests =
    testList
        "Resolve"
        [
            onTwoCpus "MaxSpread on this 2-CPU machine: shard 0 on CPU 0, shard 1 on CPU 1" (fun () ->
                Expect.equal (PoolPlacement.MaxSpread().Resolve(Nullable 2)) [| [| 0 |]; [| 1 |] |] "one CPU each"
                Expect.equal (PoolPlacement.MaxSpread().Resolve(Nullable())) [| [| 0 |]; [| 1 |] |] "by default too"
                Expect.equal (PoolPlacement.MaxPack().Resolve(Nullable 1)) [| [| 0 |] |] "packed")

            onTwoCpus "3 pinned shards on this 2-CPU machine: ArgumentException naming 2" (fun () ->
                for placement in [ PoolPlacement.MaxSpread(); PoolPlacement.MaxPack() ] do
                    let thrown = thrownBy (fun () -> placement.Resolve(Nullable 3))
                    let e = expectExn<ArgumentException> $"{placement} of 3 shards" thrown |> options
                    Expect.stringContains e.Message "only 2 CPUs are allowed (0-1)" "names the allowed count"
                    Expect.stringContains e.Message "at most 2 shards" "says what to ask for"
                    Expect.stringContains e.Message (string placement) "names the placement")

            onTwoCpus "Unbound and Fenced take any number of shards" (fun () ->
                Expect.equal (PoolPlacement.Unbound.Resolve(Nullable 3)) (Array.create 3 [||]) "not pinned"
                Expect.equal (PoolPlacement.Unbound.Resolve(Nullable())) (Array.create 2 [||]) "one per CPU"

                Expect.equal
                    (PoolPlacement.Fenced(1, 0, 1).Resolve(Nullable 3))
                    (Array.create 3 [| 0; 1 |])
                    "each on both CPUs"

                Expect.equal (PoolPlacement.Fenced(1).Resolve(Nullable())) [| [| 1 |] |] "one per CPU given")

            test "Resolve on a given machine: MaxSpread alternates nodes, Custom keeps its sets" {
                let all = [| 0..7 |]
                let spread = PoolPlacement.MaxSpread().Resolve(Nullable 4, twoByTwoByTwo, all)
                Expect.equal spread [| [| 0 |]; [| 4 |]; [| 2 |]; [| 6 |] |] "nodes, then cores"

                let custom =
                    PoolPlacement.Custom([ [ 3; 1 ]; [ 5 ] ]).Resolve(Nullable(), twoByTwoByTwo, all)

                Expect.equal custom [| [| 1; 3 |]; [| 5 |] |] "sorted sets"
            }

            test "Resolve refuses offline or refused CPUs, a wrong set count, and no shards" {
                let allowed = [| 0..5 |]

                let refused (placement: PoolPlacement) (shards: int option) =
                    let shards = Option.toNullable shards
                    let thrown = thrownBy (fun () -> placement.Resolve(shards, twoByTwoByTwo, allowed))
                    (expectExn<ArgumentException> (string placement) thrown |> options).Message

                Expect.stringContains (refused (PoolPlacement.Fenced(4096, 1)) None) "CPU 4096 is not among" "offline"
                Expect.stringContains (refused (PoolPlacement.MaxPack([ 6; 7 ])) None) "CPUs 6-7 are not" "not allowed"

                Expect.stringContains
                    (refused (PoolPlacement.Custom([ [ 0 ]; [ 1 ] ])) (Some 3))
                    "one set per shard"
                    "3"

                Expect.stringContains (refused (PoolPlacement.MaxSpread([ 0; 1 ])) (Some 3)) "only 2 CPUs" "2 given"
                Expect.stringContains (refused PoolPlacement.Unbound (Some 0)) "at least one shard" "0 shards"
            }

            test "the factories refuse null, empty and negative arguments" {
                let refuses what (f: unit -> PoolPlacement) =
                    expectExn<ArgumentException> what (thrownBy f) |> ignore

                refuses "Fenced()" (fun () -> PoolPlacement.Fenced())
                refuses "Fenced(null)" (fun () -> PoolPlacement.Fenced(Unchecked.defaultof<int array>))
                refuses "Fenced(-1)" (fun () -> PoolPlacement.Fenced(-1))
                refuses "MaxSpread([])" (fun () -> PoolPlacement.MaxSpread([]))
                refuses "MaxSpread([-2])" (fun () -> PoolPlacement.MaxSpread([ -2 ]))
                refuses "MaxPack([])" (fun () -> PoolPlacement.MaxPack([]))
                refuses "Custom(null)" (fun () -> PoolPlacement.Custom(Unchecked.defaultof<seq<seq<int>>>))
                refuses "Custom([])" (fun () -> PoolPlacement.Custom([]))
                refuses "Custom([[0]; []])" (fun () -> PoolPlacement.Custom([ [ 0 ]; [] ]))

                refuses "Custom([[0]; null])" (fun () ->
                    PoolPlacement.Custom([ seq [ 0 ]; Unchecked.defaultof<seq<int>> ]))

                refuses "Custom([[-1]])" (fun () -> PoolPlacement.Custom([ [ -1 ] ]))

                let e =
                    expectExn<ArgumentException>
                        "Custom with an empty set"
                        (thrownBy (fun () -> PoolPlacement.Custom([ [ 0 ]; [] ])))

                Expect.stringContains e.Message "shard 1 is empty" "names the shard"
            }

            test "ToString names the placement and its CPUs" {
                Expect.equal (string PoolPlacement.Unbound) "Unbound" "Unbound"
                Expect.equal (string (PoolPlacement.Fenced(2, 0))) "Fenced(2,0)" "Fenced"
                Expect.equal (string (PoolPlacement.MaxSpread())) "MaxSpread()" "MaxSpread"
                Expect.equal (string (PoolPlacement.MaxPack([ 1; 3 ]))) "MaxPack(1,3)" "MaxPack"
                Expect.equal (string (PoolPlacement.Custom([ [ 0; 1 ]; [ 2 ] ]))) "Custom([0,1] [2])" "Custom"
            }

            test "the factories copy their arguments" {
                let cpus = [| 0; 1 |]
                let placement = PoolPlacement.Fenced cpus
                cpus[0] <- 99
                Expect.equal (string placement) "Fenced(0,1)" "unchanged by the caller's later writes"
            }
        ]

let tests = testList "PoolPlacement" [ topologyTests; resolveTests ]

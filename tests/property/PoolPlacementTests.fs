module Scipio.Property.Tests.PoolPlacementTests

open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

/// A machine as the shell sees it: its online CPUs with their place, and the CPUs the process was allowed; with the
/// usable CPUs (online and allowed, sorted) and where each online CPU sits, worked out once.
type Machine =
    {
        Topology: CpuInfo array
        Allowed: int array
        Usable: int array
        Places: Map<int, CpuInfo>
    }

    member m.Info(cpu: int) = m.Places[cpu]

    /// The core of `cpu`: sysfs core ids are unique within a package only.
    member m.CoreOf(cpu: int) =
        let c = m.Places[cpu]
        c.Node, c.Package, c.Core

    static member Of(topology: CpuInfo array, allowed: int array) =
        let allowedSet = set allowed

        {
            Topology = topology
            Allowed = allowed
            Usable =
                topology
                |> Array.map (fun c -> c.Cpu)
                |> Array.filter allowedSet.Contains
                |> Array.sort
            Places = topology |> Array.map (fun c -> c.Cpu, c) |> Map.ofArray
        }

/// CPUs as a short text for failure messages (%A is slow enough to dominate a property's run time).
let private show (cpus: int array) = System.String.Join(",", cpus)

/// 1–4 nodes, 1–2 packages per node, up to 64 cores in all, 1 or 2 threads per core; CPUs numbered thread-major (as
/// on most x86 machines: the siblings of 0..n-1 are n..2n-1), core-major (siblings adjacent) or shuffled; some CPUs
/// offline (absent from the topology), some not allowed, and some allowed CPUs offline or beyond the machine.
let machine =
    gen {
        let! nodes = Gen.choose (1, 4)
        let! packagesPerNode = Gen.choose (1, 2)
        let packages = nodes * packagesPerNode
        let! coresPerPackage = Gen.arrayOfLength packages (Gen.choose (1, 64 / packages))
        let! smt = Gen.choose (1, 2)
        let! coreIdGap = Gen.elements [ 1; 1; 2 ]

        let slots =
            [|
                for p in 0 .. packages - 1 do
                    for core in 0 .. coresPerPackage[p] - 1 do
                        for thread in 0 .. smt - 1 do
                            // Package ids are global; core ids restart in each package and may have gaps.
                            yield
                                thread,
                                {
                                    Cpu = 0
                                    Core = core * coreIdGap
                                    Package = p
                                    Node = p / packagesPerNode
                                }
            |]

        let! numbering = Gen.elements [ "thread-major"; "core-major"; "shuffled" ]

        let! ordered =
            match numbering with
            | "thread-major" -> Gen.constant (slots |> Array.sortBy fst)
            | "core-major" -> Gen.constant slots
            | _ -> Gen.shuffle slots

        let all = ordered |> Array.mapi (fun i (_, info) -> { info with Cpu = i })
        let! offlineRate = Gen.elements [ 0; 0; 10; 30 ]
        let! refusedRate = Gen.elements [ 0; 0; 10; 30; 60 ]

        let chance rate =
            Gen.choose (0, 99) |> Gen.map (fun x -> x < rate)

        let! offline = Gen.arrayOfLength all.Length (chance offlineRate)
        let! refused = Gen.arrayOfLength all.Length (chance refusedRate)
        let! extra = Gen.subListOf [ all.Length; all.Length + 3; 1000 ]

        let topology =
            all
            |> Array.indexed
            |> Array.filter (fun (i, _) -> not offline[i])
            |> Array.map snd

        let! topology = Gen.shuffle topology

        let allowed =
            Array.append
                [|
                    for i in 0 .. all.Length - 1 do
                        if not refused[i] then
                            yield i
                |]
                (Array.ofList extra)

        let! allowed = Gen.shuffle allowed
        return Machine.Of(topology, allowed)
    }

/// A machine and a shard count from 1 to two past its usable CPUs.
let private machineAndShards =
    gen {
        let! m = machine
        let! shards = Gen.choose (1, m.Usable.Length + 2)
        return m, shards
    }

/// A CPU set of `m`: mostly usable CPUs, sometimes an offline, refused or absurd one.
let private cpuSet (m: Machine) =
    let usable = m.Usable
    let all = m.Topology |> Array.map (fun c -> c.Cpu)

    let one =
        Gen.frequency
            [
                (if usable.Length > 0 then 20 else 0), Gen.elements usable
                1, Gen.elements (Array.append all [| 5000 |])
                1, Gen.elements (Array.append m.Allowed [| -1 |])
            ]

    gen {
        let! n = Gen.choose (1, 4)
        return! Gen.arrayOfLength n one
    }

/// Any spec over `m` with `shards` shards, explicit CPU sets drawn by `cpuSet`.
let private spec (m: Machine) (shards: int) =
    Gen.oneof
        [
            Gen.constant PoolPlacementSpec.Unbound
            cpuSet m |> Gen.map PoolPlacementSpec.Fenced
            Gen.constant (PoolPlacementSpec.MaxSpread [||])
            Gen.constant (PoolPlacementSpec.MaxPack [||])
            cpuSet m |> Gen.map PoolPlacementSpec.MaxSpread
            cpuSet m |> Gen.map PoolPlacementSpec.MaxPack
            Gen.arrayOfLength shards (cpuSet m) |> Gen.map PoolPlacementSpec.Custom
        ]

let private cpusOf (decision: PoolDecision) =
    match decision with
    | PoolDecision.Placed sets -> sets
    | PoolDecision.Invalid reason -> failtest $"refused: {reason}"

/// Each shard's one CPU, failing when a shard has none or several.
let private oneCpuEach (decision: PoolDecision) =
    cpusOf decision
    |> Array.map (fun set ->
        Expect.hasLength set 1 "one CPU per shard"
        set[0])

/// Where MaxSpread over every usable CPU of `m` puts `shards` shards.
let private spreadOn (m: Machine) (shards: int) =
    oneCpuEach (PoolPlacement.place (PoolPlacementSpec.MaxSpread [||]) shards m.Topology m.Allowed)

/// Where MaxPack over every usable CPU of `m` puts `shards` shards.
let private packOn (m: Machine) (shards: int) =
    oneCpuEach (PoolPlacement.place (PoolPlacementSpec.MaxPack [||]) shards m.Topology m.Allowed)

/// The CPUs a cpulist such as "0-3,8" names (negative numbers too: "-1,2").
let private expand (cpulist: string) =
    cpulist.Split(',')
    |> Array.collect (fun part ->
        let m =
            System.Text.RegularExpressions.Regex.Match(part, "^(-?[0-9]+)(?:-(-?[0-9]+))?$")

        Expect.isTrue m.Success $"a cpulist: {cpulist}"
        let first = int m.Groups[1].Value

        if m.Groups[2].Success then
            [| first .. int m.Groups[2].Value |]
        else
            [| first |])

/// The CPUs a reason "CPU 3 is not among ..." or "CPUs 3-5,9 are not among ..." complains about.
let private blamed (reason: string) = expand (reason.Split(' ')[1])

/// How many cores are needed to give `shards` shards one thread each: the largest cores first.
let private fewestCores (m: Machine) (cpus: int array) (shards: int) =
    let sizes = cpus |> Array.countBy m.CoreOf |> Array.map snd |> Array.sortDescending
    let held = Array.scan (+) 0 sizes
    held |> Array.findIndex (fun h -> h >= shards)

/// 2 nodes × 1 package × 2 cores × 2 threads, numbered core-major: CPU 2c + t is thread t of core c of node 0
/// (c < 2) or node 1.
let private twoByTwoByTwo =
    [|
        for node in 0..1 do
            for core in 0..1 do
                for thread in 0..1 do
                    yield
                        {
                            Cpu = node * 4 + core * 2 + thread
                            Core = core
                            Package = node
                            Node = node
                        }
    |]

let private all8 = [| 0..7 |]

let tests =
    testList
        "PoolPlacement"
        [
            testPropertyWithConfig quick "MaxSpread and MaxPack give each shard its own usable CPU while enough exist"
            <| Prop.forAll (Arb.fromGen machineAndShards) (fun (m, shards) ->
                for spec in [ PoolPlacementSpec.MaxSpread [||]; PoolPlacementSpec.MaxPack [||] ] do
                    match PoolPlacement.place spec shards m.Topology m.Allowed with
                    | PoolDecision.Placed _ as placed when shards <= m.Usable.Length ->
                        let cpus = oneCpuEach placed
                        Expect.hasLength cpus shards "one entry per shard"
                        Expect.equal (Array.distinct cpus) cpus "distinct CPUs"
                        Expect.all cpus (fun c -> Array.contains c m.Usable) "usable CPUs only"
                    | PoolDecision.Invalid _ when shards > m.Usable.Length -> ()
                    | other -> failtest $"%A{spec} of {shards} with {m.Usable.Length} usable: %A{other}")

            testPropertyWithConfig quick "MaxSpread puts two shards on one core only once every usable core has one"
            <| Prop.forAll (Arb.fromGen machineAndShards) (fun (m, shards) ->
                if shards <= m.Usable.Length then
                    let cpus = spreadOn m shards
                    let cores = m.Usable |> Array.map m.CoreOf |> Array.distinct
                    let used = cpus |> Array.map m.CoreOf |> Array.distinct
                    Expect.equal used.Length (min shards cores.Length) $"cores used by {show cpus}")

            testPropertyWithConfig quick "MaxSpread balances nodes: a node with a free core is never two shards behind"
            <| Prop.forAll (Arb.fromGen machineAndShards) (fun (m, shards) ->
                if shards <= m.Usable.Length then
                    let cpus = spreadOn m shards
                    let usedCores = cpus |> Array.map m.CoreOf |> set
                    let nodes = m.Usable |> Array.map (fun c -> (m.Info c).Node) |> Array.distinct

                    let count node =
                        cpus |> Array.filter (fun c -> (m.Info c).Node = node) |> Array.length

                    let hasFreeCore node =
                        m.Usable
                        |> Array.exists (fun c -> (m.Info c).Node = node && not (usedCores.Contains(m.CoreOf c)))

                    for a in nodes |> Array.filter hasFreeCore do
                        for b in nodes do
                            Expect.isLessThanOrEqual
                                (count b)
                                (count a + 1)
                                $"node {b} has {count b} shards, node {a} {count a} and a free core: {show cpus}")

            testPropertyWithConfig quick "MaxSpread balances the packages of a node the same way"
            <| Prop.forAll (Arb.fromGen machineAndShards) (fun (m, shards) ->
                if shards <= m.Usable.Length then
                    let cpus = spreadOn m shards
                    let usedCores = cpus |> Array.map m.CoreOf |> set
                    let packageOf c = (m.Info c).Node, (m.Info c).Package
                    let packages = m.Usable |> Array.map packageOf |> Array.distinct

                    let count p =
                        cpus |> Array.filter (fun c -> packageOf c = p) |> Array.length

                    let hasFreeCore p =
                        m.Usable
                        |> Array.exists (fun c -> packageOf c = p && not (usedCores.Contains(m.CoreOf c)))

                    for a in packages |> Array.filter hasFreeCore do
                        for b in packages |> Array.filter (fun b -> fst b = fst a) do
                            Expect.isLessThanOrEqual (count b) (count a + 1) $"packages {a} and {b}: {show cpus}")

            testPropertyWithConfig quick "MaxSpread never moves a shard when one more is asked for"
            <| Prop.forAll (Arb.fromGen machineAndShards) (fun (m, shards) ->
                if shards < m.Usable.Length then
                    let place n = spreadOn m n
                    let more = place (shards + 1)
                    Expect.equal more[.. shards - 1] (place shards) "a prefix")

            testPropertyWithConfig quick "MaxPack uses the fewest cores possible, and fills each but the last"
            <| Prop.forAll (Arb.fromGen machineAndShards) (fun (m, shards) ->
                if shards <= m.Usable.Length then
                    let cpus = packOn m shards
                    let perCore = cpus |> Array.countBy m.CoreOf
                    Expect.equal perCore.Length (fewestCores m m.Usable shards) $"cores used by {show cpus}"

                    let partial =
                        perCore
                        |> Array.filter (fun (core, n) ->
                            n < (m.Usable |> Array.filter (fun c -> m.CoreOf c = core)).Length)

                    Expect.isLessThanOrEqual partial.Length 1 $"cores left part-used: {partial.Length}")

            testPropertyWithConfig quick "MaxPack on a machine of whole cores fills nodes, packages and cores in order"
            <| Prop.forAll (Arb.fromGen machineAndShards) (fun (m, shards) ->
                // With every CPU usable, packing is plain order: by node, package, core, then CPU.
                let m = Machine.Of(m.Topology, m.Topology |> Array.map (fun c -> c.Cpu))

                if m.Usable.Length > 0 then
                    let shards = min shards m.Usable.Length
                    let cpus = packOn m shards

                    let expected =
                        m.Topology
                        |> Array.sortBy (fun c -> c.Node, c.Package, c.Core, c.Cpu)
                        |> Array.map (fun c -> c.Cpu)
                        |> Array.truncate shards

                    // Offline CPUs can leave cores of one thread among cores of two: then fewer cores may come first.
                    let whole =
                        m.Usable
                        |> Array.countBy m.CoreOf
                        |> Array.map snd
                        |> Array.distinct
                        |> Array.length
                            =
                            1

                    if whole then
                        Expect.equal cpus expected "pack order")

            testPropertyWithConfig quick "only usable CPUs are ever used, and unusable ones are named"
            <| Prop.forAll
                (Arb.fromGen (
                    machineAndShards
                    |> Gen.bind (fun (m, n) -> spec m n |> Gen.map (fun s -> m, n, s))
                ))
                (fun (m, shards, spec) ->
                    let given =
                        match spec with
                        | PoolPlacementSpec.Unbound -> [||]
                        | PoolPlacementSpec.Fenced cpus
                        | PoolPlacementSpec.MaxSpread cpus
                        | PoolPlacementSpec.MaxPack cpus -> cpus
                        | PoolPlacementSpec.Custom sets -> Array.concat sets

                    let unusable =
                        given
                        |> Array.filter (fun c -> not (Array.contains c m.Usable))
                        |> Array.distinct

                    match PoolPlacement.place spec shards m.Topology m.Allowed with
                    | PoolDecision.Placed sets ->
                        Expect.hasLength sets shards "one entry per shard"
                        Expect.isEmpty unusable "placed although some CPUs given are not usable"

                        for set in sets do
                            Expect.all set (fun c -> Array.contains c m.Usable) $"{show set} within {show m.Usable}"
                    | PoolDecision.Invalid reason when unusable.Length > 0 ->
                        Expect.equal
                            (Array.sort (blamed reason))
                            (Array.sort unusable)
                            $"names exactly those: {reason}"
                    | PoolDecision.Invalid reason ->
                        Expect.stringContains reason "shards asked for" $"refused for another reason: {reason}")

            testPropertyWithConfig quick "Custom and Fenced return the sets given, sorted and distinct"
            <| Prop.forAll (Arb.fromGen machineAndShards) (fun (m, shards) ->
                if m.Usable.Length > 0 then
                    let pick i = m.Usable[abs i % m.Usable.Length]

                    let sets =
                        Array.init shards (fun i -> Array.init (1 + i % 3) (fun j -> pick (7 * i - 3 * j)))

                    let custom =
                        cpusOf (PoolPlacement.place (PoolPlacementSpec.Custom sets) shards m.Topology m.Allowed)

                    Expect.equal custom (sets |> Array.map (Array.distinct >> Array.sort)) "custom sets"

                    let fence = sets[0] |> Array.append [| pick 1 |]

                    let fenced =
                        cpusOf (PoolPlacement.place (PoolPlacementSpec.Fenced fence) shards m.Topology m.Allowed)

                    Expect.equal fenced (Array.create shards (fence |> Array.distinct |> Array.sort)) "fenced sets")

            testPropertyWithConfig quick "Custom refuses a set count that differs from the shard count, and empty sets"
            <| Prop.forAll (Arb.fromGen (Gen.zip machineAndShards (Gen.choose (0, 5)))) (fun ((m, shards), count) ->
                let cpu = if m.Usable.Length > 0 then m.Usable[0] else 0
                let sets = Array.create count [| cpu |]

                match PoolPlacement.place (PoolPlacementSpec.Custom sets) shards m.Topology m.Allowed with
                | PoolDecision.Invalid reason when count <> shards ->
                    Expect.stringContains reason "one set per shard" reason
                | _ when count <> shards -> failtest "placed with a set count unlike the shard count"
                | _ ->
                    let sets = Array.updateAt (shards - 1) [||] sets

                    match PoolPlacement.place (PoolPlacementSpec.Custom sets) shards m.Topology m.Allowed with
                    | PoolDecision.Invalid reason ->
                        Expect.stringContains reason $"shard {shards - 1} is empty" "names the shard"
                    | other -> failtest $"placed with an empty set: %A{other}")

            testPropertyWithConfig quick "Unbound leaves every shard unpinned"
            <| Prop.forAll (Arb.fromGen machineAndShards) (fun (m, shards) ->
                let sets =
                    cpusOf (PoolPlacement.place PoolPlacementSpec.Unbound shards m.Topology m.Allowed)

                Expect.equal sets (Array.create shards [||]) "empty sets")

            testPropertyWithConfig quick "too many pinned shards are refused, naming how many CPUs are allowed"
            <| Prop.forAll (Arb.fromGen (Gen.zip machine (Gen.choose (1, 10)))) (fun (m, more) ->
                let usable = m.Usable.Length
                let shards = usable + more

                for spec in [ PoolPlacementSpec.MaxSpread [||]; PoolPlacementSpec.MaxPack [||] ] do
                    match PoolPlacement.place spec shards m.Topology m.Allowed with
                    | PoolDecision.Invalid reason when usable > 0 ->
                        Expect.stringStarts reason $"{shards} shards asked for, but only {usable} " reason
                        Expect.stringContains reason $"at most {usable} shard" reason
                        Expect.stringContains reason "PoolPlacement.Unbound" "says what else to do"
                    | PoolDecision.Invalid reason -> Expect.stringContains reason "no CPU" reason
                    | other -> failtest $"%A{spec} of {shards} with {usable} usable: %A{other}")

            testPropertyWithConfig quick "fewer than one shard is refused, whatever the spec"
            <| Prop.forAll
                (Arb.fromGen (machine |> Gen.bind (fun m -> spec m 0 |> Gen.map (fun s -> m, s))))
                (fun (m, spec) ->
                    for shards in [ 0; -1 ] do
                        match PoolPlacement.place spec shards m.Topology m.Allowed with
                        | PoolDecision.Invalid reason -> Expect.stringContains reason "at least one shard" reason
                        | other -> failtest $"%A{spec} of {shards}: %A{other}")

            testPropertyWithConfig quick "defaultShards is the number of usable CPUs, at least 1"
            <| Prop.forAll (Arb.fromGen machine) (fun m ->
                Expect.equal (PoolPlacement.defaultShards m.Topology m.Allowed) (max 1 m.Usable.Length) "usable CPUs")

            testPropertyWithConfig quick "the placement depends on the machine, not on the order it was read in"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! m, shards = machineAndShards
                        let! spec = spec m shards
                        let! topology = Gen.shuffle m.Topology
                        let! allowed = Gen.shuffle m.Allowed
                        return m, shards, spec, topology, allowed
                    }
                ))
                (fun (m, shards, spec, topology, allowed) ->
                    Expect.equal
                        (PoolPlacement.place spec shards topology allowed)
                        (PoolPlacement.place spec shards m.Topology m.Allowed)
                        "same decision")

            testCase "MaxSpread on 2 nodes × 2 cores × 2 threads: nodes alternate, then cores, siblings last"
            <| fun () ->
                let cpus =
                    oneCpuEach (PoolPlacement.place (PoolPlacementSpec.MaxSpread [||]) 8 twoByTwoByTwo all8)
                // node0 core0 t0, node1 core0 t0, node0 core1 t0, node1 core1 t0, then the second threads.
                Expect.equal cpus [| 0; 4; 2; 6; 1; 5; 3; 7 |] "spread order"

            testCase "MaxSpread of a subset spreads within it"
            <| fun () ->
                let cpus =
                    oneCpuEach (PoolPlacement.place (PoolPlacementSpec.MaxSpread [| 0; 1; 2; 3 |]) 3 twoByTwoByTwo all8)

                Expect.equal cpus [| 0; 2; 1 |] "both cores of node 0 before a sibling"

            testCase "MaxPack on 2 nodes × 2 cores × 2 threads: threads of a core, then the next core, then node"
            <| fun () ->
                let cpus =
                    oneCpuEach (PoolPlacement.place (PoolPlacementSpec.MaxPack [||]) 8 twoByTwoByTwo all8)

                Expect.equal cpus [| 0..7 |] "pack order"

            testCase "MaxPack prefers a whole core to two halves"
            <| fun () ->
                // CPU 1 (core 0's sibling) is not allowed: two shards fit on core 1 alone.
                let allowed = [| 0; 2; 3; 4; 5; 6; 7 |]

                let cpus =
                    oneCpuEach (PoolPlacement.place (PoolPlacementSpec.MaxPack [||]) 2 twoByTwoByTwo allowed)

                Expect.equal cpus [| 2; 3 |] "core 1 of node 0"

            testCase "thread-major numbering (x86): MaxSpread takes every core before a sibling"
            <| fun () ->
                // 4 cores in one package; CPU c and c + 4 are siblings.
                let topology =
                    Array.init 8 (fun c ->
                        {
                            Cpu = c
                            Core = c % 4
                            Package = 0
                            Node = 0
                        })

                let cpus =
                    oneCpuEach (PoolPlacement.place (PoolPlacementSpec.MaxSpread [||]) 6 topology all8)

                Expect.equal cpus [| 0; 1; 2; 3; 4; 5 |] "cores first"

                let packed =
                    oneCpuEach (PoolPlacement.place (PoolPlacementSpec.MaxPack [||]) 3 topology all8)

                Expect.equal packed [| 0; 4; 1 |] "siblings first"

            testCase "messages: unusable CPUs in cpulist form, too many shards with the count"
            <| fun () ->
                let allowed = [| 0; 1; 2; 3 |]

                match PoolPlacement.place (PoolPlacementSpec.Fenced [| 9; 1; 5; 6; 7 |]) 2 twoByTwoByTwo allowed with
                | PoolDecision.Invalid reason ->
                    Expect.equal
                        reason
                        "CPUs 5-7,9 are not among the CPUs this process may use (0-3). Choose among those, or widen the process's affinity (taskset, cgroup cpuset)."
                        "the message"
                | other -> failtest $"%A{other}"

                match PoolPlacement.place (PoolPlacementSpec.MaxSpread [||]) 5 twoByTwoByTwo allowed with
                | PoolDecision.Invalid reason ->
                    Expect.equal
                        reason
                        "5 shards asked for, but only 4 CPUs are allowed (0-3): ask for at most 4 shards, or use PoolPlacement.Unbound / Fenced."
                        "the message"
                | other -> failtest $"%A{other}"

            testCase "an empty fence is refused"
            <| fun () ->
                match PoolPlacement.place (PoolPlacementSpec.Fenced [||]) 1 twoByTwoByTwo all8 with
                | PoolDecision.Invalid reason -> Expect.stringContains reason "at least one CPU" "says what is missing"
                | other -> failtest $"%A{other}"

            testCase "defaultShardsFor: the sets or CPUs given, otherwise every usable CPU"
            <| fun () ->
                let count spec =
                    PoolPlacement.defaultShardsFor spec twoByTwoByTwo [| 0..5 |]

                Expect.equal (count PoolPlacementSpec.Unbound) 6 "Unbound"
                Expect.equal (count (PoolPlacementSpec.MaxSpread [||])) 6 "MaxSpread()"
                Expect.equal (count (PoolPlacementSpec.MaxPack [| 1; 2; 2 |])) 2 "MaxPack(1,2,2)"
                Expect.equal (count (PoolPlacementSpec.Fenced [| 3 |])) 1 "Fenced(3)"
                Expect.equal (count (PoolPlacementSpec.Custom [| [| 0 |]; [| 0 |]; [| 1 |] |])) 3 "Custom"
        ]

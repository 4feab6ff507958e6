namespace Scipio.Core

open System.Collections.Generic

/// One online CPU as the kernel describes it (sysfs `topology/` and `node*/`).
[<Struct>]
type CpuInfo =
    {
        /// The CPU number, as sched_setaffinity takes it.
        Cpu: int
        /// The core's id as sysfs gives it: unique within a package, not across packages.
        Core: int
        /// The physical package (socket).
        Package: int
        /// The NUMA node.
        Node: int
    }

/// Where the shards of a pool may run.
[<RequireQualifiedAccess>]
type PoolPlacementSpec =
    /// No shard pinned: every thread keeps the CPUs the process was allowed.
    | Unbound
    /// Every shard may run on any of these CPUs: pinned to the set, not to one CPU.
    | Fenced of cpus: int array
    /// One CPU per shard, spread: across NUMA nodes, then packages, then cores; hyper-thread siblings last. An empty
    /// array means every CPU the process may use.
    | MaxSpread of cpus: int array
    /// One CPU per shard, packed: a core's hyper-threads first, then the rest of its package, then of its node. An
    /// empty array means every CPU the process may use.
    | MaxPack of cpus: int array
    /// Shard i is pinned to `cpuSets[i]`: exactly one non-empty set per shard.
    | Custom of cpuSets: int array array

/// The outcome of placing a pool.
[<RequireQualifiedAccess>]
type PoolDecision =
    /// One entry per shard: the CPUs to pin it to (sorted, distinct, all usable), or an empty array for "not pinned".
    | Placed of cpuSets: int array array
    /// The placement cannot be honoured; the text says why and what to do.
    | Invalid of reason: string

/// Pool placement: a `PoolPlacementSpec` resolved against the machine's topology into one CPU set per shard. A CPU is
/// usable when it is both online (in the topology) and allowed (in the process's affinity at start). Cold path: these
/// may allocate.
[<RequireQualifiedAccess>]
module PoolPlacement =
    /// `cpus` (sorted, distinct) in cpulist syntax, as taskset and sysfs write it: "0-3,8,10-11".
    let private describe (cpus: int array) =
        if cpus.Length = 0 then
            "none"
        else
            let runs = ResizeArray<string>()
            let mutable first = cpus[0]

            for i in 1 .. cpus.Length do
                if i = cpus.Length || cpus[i] <> cpus[i - 1] + 1 then
                    let last = cpus[i - 1]

                    runs.Add(
                        if first = last then
                            string first
                        else
                            sprintf "%d-%d" first last
                    )

                    if i < cpus.Length then
                        first <- cpus[i]

            String.concat "," runs

    let private sortedDistinct (cpus: int array) = cpus |> Array.distinct |> Array.sort

    /// The CPUs a pool may use: online (in `topology`) and allowed, sorted.
    let usableCpus (topology: CpuInfo array) (allowed: int array) =
        let allowed = HashSet<int>(allowed)

        topology
        |> Array.map (fun c -> c.Cpu)
        |> Array.filter allowed.Contains
        |> sortedDistinct

    /// The number of shards a pool has by default: one per usable CPU, at least 1.
    let defaultShards (topology: CpuInfo array) (allowed: int array) =
        max 1 (usableCpus topology allowed).Length

    /// The number of shards `spec` implies when none is asked for: one per set of a Custom placement, one per CPU
    /// given to Fenced, MaxSpread or MaxPack, otherwise `defaultShards`.
    let defaultShardsFor (spec: PoolPlacementSpec) (topology: CpuInfo array) (allowed: int array) =
        match spec with
        | PoolPlacementSpec.Custom sets -> sets.Length
        | PoolPlacementSpec.Fenced cpus
        | PoolPlacementSpec.MaxSpread cpus
        | PoolPlacementSpec.MaxPack cpus when cpus.Length > 0 -> (Array.distinct cpus).Length
        | _ -> defaultShards topology allowed

    /// Refuses `wanted` when some of its CPUs are not usable, naming them and the usable ones.
    let private refuseUnusable (wanted: int array) (usable: int array) =
        let usableSet = HashSet<int>(usable)
        let missing = wanted |> Array.filter (usableSet.Contains >> not) |> sortedDistinct

        if missing.Length = 0 then
            None
        else
            let which =
                if missing.Length = 1 then
                    sprintf "CPU %d is" missing[0]
                else
                    sprintf "CPUs %s are" (describe missing)

            Some(
                sprintf
                    "%s not among the CPUs this process may use (%s). Choose among those, or widen the process's affinity (taskset, cgroup cpuset)."
                    which
                    (describe usable)
            )

    let private tooMany (shards: int) (cpus: int array) =
        if cpus.Length = 0 then
            sprintf
                "%d shards asked for, but no CPU is both online and allowed to this process: use PoolPlacement.Unbound."
                shards
        else
            let m = cpus.Length

            sprintf
                "%d shards asked for, but only %d %s allowed (%s): ask for at most %d %s, or use PoolPlacement.Unbound / Fenced."
                shards
                m
                (if m = 1 then "CPU is" else "CPUs are")
                (describe cpus)
                m
                (if m = 1 then "shard" else "shards")

    /// The cores of `cpus`, in node, package, core order; each core's CPUs in CPU order.
    let private coresOf (topology: CpuInfo array) (cpus: int array) =
        let wanted = HashSet<int>(cpus)

        topology
        |> Array.distinctBy (fun c -> c.Cpu)
        |> Array.filter (fun c -> wanted.Contains c.Cpu)
        |> Array.groupBy (fun c -> c.Node, c.Package, c.Core)
        |> Array.sortBy fst
        |> Array.map (fun (key, threads) -> key, threads |> Array.map (fun c -> c.Cpu) |> Array.sort)

    /// Takes the first element of each list in turn, then the second, and so on, skipping lists that ran out.
    let private roundRobin (lists: int array array) =
        let longest =
            if lists.Length = 0 then
                0
            else
                lists |> Array.map Array.length |> Array.max

        [|
            for i in 0 .. longest - 1 do
                for list in lists do
                    if i < list.Length then
                        yield list[i]
        |]

    /// Every CPU of `cpus` in spread order: first one thread of each core, alternating across nodes and, within a
    /// node, across packages; then each core's second thread in the same order; and so on.
    let private spreadOrder (topology: CpuInfo array) (cpus: int array) =
        let cores = coresOf topology cpus

        let levels =
            if cores.Length = 0 then
                0
            else
                cores |> Array.map (snd >> Array.length) |> Array.max

        let level k =
            cores
            |> Array.filter (fun (_, threads) -> k < threads.Length)
            |> Array.groupBy (fun ((node, _, _), _) -> node)
            |> Array.map (fun (_, nodeCores) ->
                nodeCores
                |> Array.groupBy (fun ((_, package, _), _) -> package)
                |> Array.map (fun (_, packageCores) -> packageCores |> Array.map (fun (_, threads) -> threads[k]))
                |> roundRobin)
            |> roundRobin

        Array.init levels level |> Array.concat

    /// The fewest cores whose threads can hold `shards` one each: the largest cores first.
    let private fewestCores (capacities: int array) (shards: int) =
        let sorted = Array.sortDescending capacities
        let mutable held = 0
        let mutable count = 0

        while held < shards && count < sorted.Length do
            held <- held + sorted[count]
            count <- count + 1

        count

    /// `shards` CPUs of `cpus` packed: on the fewest cores possible and, among the ways to do that, the cores that
    /// come first in node, package, core order; each chosen core's threads filled before the next core's.
    let private packed (topology: CpuInfo array) (cpus: int array) (shards: int) =
        let cores = coresOf topology cpus |> Array.map snd
        let capacities = cores |> Array.map Array.length
        let chosen = ResizeArray<int array>()
        let mutable need = shards
        let mutable slots = fewestCores capacities shards

        for i in 0 .. cores.Length - 1 do
            if need > 0 && slots > 0 then
                // Take this core unless doing so leaves more shards than the best remaining cores could hold.
                let bestOfRest =
                    capacities[i + 1 ..]
                    |> Array.sortDescending
                    |> Array.truncate (slots - 1)
                    |> Array.sum

                if need - capacities[i] <= bestOfRest then
                    chosen.Add cores[i]
                    need <- need - capacities[i]
                    slots <- slots - 1

        chosen |> Array.concat |> Array.truncate shards

    let private oneEach (order: int array) =
        order |> Array.map (fun cpu -> [| cpu |])

    /// Places a pool of `shards` shards as `spec` says, on `topology` (the online CPUs) within `allowed` (the CPUs
    /// the process was allowed at start). Deterministic: the same machine and spec give the same placement.
    let place (spec: PoolPlacementSpec) (shards: int) (topology: CpuInfo array) (allowed: int array) =
        let usable = usableCpus topology allowed

        // The CPUs a one-per-shard placement may choose from, or why it cannot.
        let among (cpus: int array) =
            if cpus.Length = 0 then
                Ok usable
            else
                match refuseUnusable cpus usable with
                | Some reason -> Error reason
                | None -> Ok(sortedDistinct cpus)

        let oneCpuEach (cpus: int array) (order: int array -> int array) =
            match among cpus with
            | Error reason -> PoolDecision.Invalid reason
            | Ok cpus when shards > cpus.Length -> PoolDecision.Invalid(tooMany shards cpus)
            | Ok cpus -> PoolDecision.Placed(oneEach (order cpus))

        if shards < 1 then
            PoolDecision.Invalid(sprintf "A pool needs at least one shard; %d were asked for." shards)
        else
            match spec with
            | PoolPlacementSpec.Unbound -> PoolDecision.Placed(Array.init shards (fun _ -> [||]))
            | PoolPlacementSpec.Fenced cpus when cpus.Length = 0 ->
                PoolDecision.Invalid "A fenced placement needs at least one CPU."
            | PoolPlacementSpec.Fenced cpus ->
                match refuseUnusable cpus usable with
                | Some reason -> PoolDecision.Invalid reason
                | None -> PoolDecision.Placed(Array.init shards (fun _ -> sortedDistinct cpus))
            | PoolPlacementSpec.MaxSpread cpus ->
                oneCpuEach cpus (fun cpus -> spreadOrder topology cpus |> Array.truncate shards)
            | PoolPlacementSpec.MaxPack cpus -> oneCpuEach cpus (fun cpus -> packed topology cpus shards)
            | PoolPlacementSpec.Custom sets when sets.Length <> shards ->
                PoolDecision.Invalid(
                    sprintf
                        "A custom placement gives %d CPU %s for %d %s: give exactly one set per shard."
                        sets.Length
                        (if sets.Length = 1 then "set" else "sets")
                        shards
                        (if shards = 1 then "shard" else "shards")
                )
            | PoolPlacementSpec.Custom sets ->
                match sets |> Array.tryFindIndex (fun set -> set.Length = 0) with
                | Some i ->
                    PoolDecision.Invalid(
                        sprintf
                            "The CPU set of shard %d is empty: every shard of a custom placement needs at least one CPU (use PoolPlacement.Unbound for unpinned shards)."
                            i
                    )
                | None ->
                    match refuseUnusable (Array.concat sets) usable with
                    | Some reason -> PoolDecision.Invalid reason
                    | None -> PoolDecision.Placed(sets |> Array.map sortedDistinct)

namespace Scipio.Core

/// Where a shard's thread may run.
[<RequireQualifiedAccess>]
type PlacementSpec =
    /// Not pinned: the thread keeps the CPUs the process was allowed.
    | Unbound
    /// Pinned to one CPU.
    | Fixed of cpu: int
    /// Pinned to a set of CPUs; the kernel picks among them.
    | Fenced of cpus: int array

/// The outcome of resolving a placement against the CPUs the process may use.
[<RequireQualifiedAccess>]
type PinDecision =
    /// Leave the thread's affinity alone.
    | DoNotPin
    /// Set the thread's affinity to these CPUs (sorted, distinct, all allowed).
    | PinTo of cpus: int array
    /// The placement cannot be honoured; the text says why and what to do.
    | Invalid of reason: string

/// Affinity decisions: a placement resolved to the CPUs to pin to. Cold path: these may allocate.
[<RequireQualifiedAccess>]
module Affinity =
    let private describe (cpus: int array) =
        cpus |> Array.map string |> String.concat ","

    /// Resolves `spec` against `allowed`, the CPUs the process was allowed at start.
    let resolve (spec: PlacementSpec) (allowed: int array) =
        let check (cpus: int array) =
            let missing =
                cpus |> Array.distinct |> Array.filter (fun c -> not (Array.contains c allowed))

            if cpus.Length = 0 then
                PinDecision.Invalid "A fenced placement needs at least one CPU."
            elif missing.Length > 0 then
                let which =
                    if missing.Length = 1 then
                        sprintf "CPU %d is" missing[0]
                    else
                        sprintf "CPUs %s are" (describe missing)

                PinDecision.Invalid(
                    sprintf
                        "%s not among the CPUs this process may use (%s). Choose among those, or widen the process's affinity (taskset, cgroup cpuset)."
                        which
                        (describe allowed)
                )
            else
                PinDecision.PinTo(Array.sort (Array.distinct cpus))

        match spec with
        | PlacementSpec.Unbound -> PinDecision.DoNotPin
        | PlacementSpec.Fixed cpu -> check [| cpu |]
        | PlacementSpec.Fenced cpus -> check cpus

module Scipio.Property.Tests.AffinityTests

open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

/// The CPUs a process may use: distinct, in any order, possibly none (an empty cpuset is not legal, but resolve must
/// still answer).
let private allowed =
    Gen.subListOf [ 0..15 ] |> Gen.bind (Array.ofList >> Gen.shuffle)

/// A CPU number, sometimes outside any real machine.
let private cpu =
    Gen.frequency [ 6, Gen.choose (0, 15); 1, Gen.choose (16, 1024); 1, Gen.choose (-3, -1) ]

/// True when `reason` lists `c` among the CPUs it complains about: "CPU a,b,c is not among ...".
let private names (reason: string) (c: int) =
    let listed = reason.Split(' ')[1]
    listed.Split(',') |> Array.contains (string c)

let tests =
    testList
        "Affinity"
        [
            testPropertyWithConfig quick "Unbound never pins"
            <| Prop.forAll (Arb.fromGen allowed) (fun allowed ->
                Expect.equal (Affinity.resolve PlacementSpec.Unbound allowed) PinDecision.DoNotPin "DoNotPin")

            testPropertyWithConfig quick "Fixed pins to exactly that CPU when it is allowed, and names it when not"
            <| Prop.forAll (Arb.fromGen (Gen.zip allowed cpu)) (fun (allowed, c) ->
                match Affinity.resolve (PlacementSpec.Fixed c) allowed with
                | PinDecision.PinTo cpus when Array.contains c allowed -> Expect.equal cpus [| c |] "just that CPU"
                | PinDecision.Invalid reason when not (Array.contains c allowed) ->
                    Expect.stringStarts reason $"CPU {c} " "names the CPU first"
                    Expect.isTrue (names reason c) $"names CPU {c}: {reason}"
                | other -> failtest $"Fixed {c} with allowed %A{allowed} resolved to %A{other}")

            testPropertyWithConfig quick "Fenced pins to its CPUs sorted and distinct when all are allowed"
            <| Prop.forAll (Arb.fromGen (Gen.zip allowed (Gen.listOf cpu))) (fun (allowed, wanted) ->
                // Mostly subsets of the allowed CPUs, with repeats, so that the successful branch is exercised.
                let fence =
                    if allowed.Length = 0 then
                        Array.ofList wanted
                    else
                        wanted |> List.map (fun c -> allowed[abs c % allowed.Length]) |> Array.ofList

                match Affinity.resolve (PlacementSpec.Fenced fence) allowed with
                | PinDecision.PinTo cpus ->
                    Expect.isNonEmpty fence "only a non-empty fence pins"
                    Expect.equal cpus (fence |> Array.distinct |> Array.sort) "sorted, distinct"
                    Expect.all cpus (fun c -> Array.contains c allowed) "all allowed"
                | PinDecision.Invalid _ ->
                    let refusable =
                        fence.Length = 0
                        || fence |> Array.exists (fun c -> not (Array.contains c allowed))

                    Expect.isTrue refusable "refused only when empty or not allowed"
                | PinDecision.DoNotPin -> failtest "a fence always pins or is refused")

            testPropertyWithConfig quick "Fenced with a CPU that is not allowed is refused, naming every such CPU"
            <| Prop.forAll (Arb.fromGen (Gen.zip allowed (Gen.nonEmptyListOf cpu))) (fun (allowed, fence) ->
                let fence = Array.ofList fence
                let missing = fence |> Array.filter (fun c -> not (Array.contains c allowed))

                match Affinity.resolve (PlacementSpec.Fenced fence) allowed with
                | PinDecision.Invalid reason when missing.Length > 0 ->
                    for c in missing do
                        Expect.isTrue (names reason c) $"names CPU {c}: {reason}"

                    for c in fence |> Array.except missing do
                        Expect.isFalse (names reason c) $"does not blame allowed CPU {c}: {reason}"
                | PinDecision.PinTo _ when missing.Length = 0 -> ()
                | other -> failtest $"Fenced %A{fence} with allowed %A{allowed} resolved to %A{other}")

            testCase "an empty fence is refused"
            <| fun () ->
                match Affinity.resolve (PlacementSpec.Fenced [||]) [| 0; 1 |] with
                | PinDecision.Invalid reason -> Expect.stringContains reason "at least one CPU" "says what is missing"
                | other -> failtest $"resolved to %A{other}"
        ]

module Scipio.Property.Tests.SharesLatencyTests

open System
open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

/// The CPU time of one run, up to a day: far below where `elapsed * ShareMath.Max` would overflow (about 106 days).
let private elapsed = Gen.choose64 (0L, 86_400L * Second)

/// Any int, with the neighbourhoods of the bounds and the extremes much more likely than a uniform draw would make
/// them.
let private anyInt =
    Gen.frequency
        [
            3, Gen.choose (-5, 1005)
            1,
            Gen.elements
                [
                    Int32.MinValue
                    Int32.MinValue + 1
                    -1
                    0
                    Int32.MaxValue - 1
                    Int32.MaxValue
                ]
            1, Gen.choose (Int32.MinValue, Int32.MaxValue)
        ]

let tests =
    testList
        "Shares and Latency"
        [
            testCase "isValid holds exactly on Min..Max (exhaustive around the bounds)"
            <| fun () ->
                for s in -100 .. 2000 do
                    Expect.equal (ShareMath.isValid s) (s >= 1 && s <= 1000) $"isValid {s}"

            testPropertyWithConfig quick "isValid holds exactly on Min..Max (any int)"
            <| Prop.forAll (Arb.fromGen anyInt) (fun s ->
                Expect.equal (ShareMath.isValid s) (s >= 1 && s <= 1000) $"isValid {s}")

            testPropertyWithConfig quick "virtualRuntime is monotone in elapsed"
            <| Prop.forAll (Arb.fromGen (Gen.zip3 shares elapsed elapsed)) (fun (s, a, b) ->
                let lo, hi = min a b, max a b
                Expect.isLessThanOrEqual (ShareMath.virtualRuntime s lo) (ShareMath.virtualRuntime s hi) $"shares {s}")

            testPropertyWithConfig quick "virtualRuntime scales elapsed by Max / shares, rounded down"
            <| Prop.forAll (Arb.fromGen (Gen.zip shares elapsed)) (fun (s, e) ->
                let v = ShareMath.virtualRuntime s e
                // v = floor(e * Max / s), i.e. v * s <= e * Max < (v + 1) * s.
                Expect.isLessThanOrEqual (v * int64 s) (e * int64 ShareMath.Max) "not rounded up"
                Expect.isLessThan (e * int64 ShareMath.Max) ((v + 1L) * int64 s) "rounded down by less than one")

            testPropertyWithConfig quick "a queue with k times the shares is charged 1/k, within integer rounding"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! s = Gen.choose (ShareMath.Min, ShareMath.Max / 2)
                        let! k = Gen.choose (2, ShareMath.Max / s)
                        let! e = elapsed
                        return s, k, e
                    }
                ))
                (fun (s, k, e) ->
                    let single = ShareMath.virtualRuntime s e
                    let multiple = ShareMath.virtualRuntime (k * s) e
                    // floor(x / ks) = floor(floor(x / s) / k), so k times it falls short of floor(x / s) by less than k.
                    Expect.isLessThanOrEqual (int64 k * multiple) single "never charged more than 1/k"
                    Expect.isGreaterThan (int64 k * multiple) (single - int64 k) "short of 1/k only by rounding")

            testPropertyWithConfig quick "a queue with Max shares advances its vruntime at wall-clock speed"
            <| Prop.forAll (Arb.fromGen elapsed) (fun e ->
                Expect.equal (ShareMath.virtualRuntime ShareMath.Max e) e "vruntime = elapsed")

            testPropertyWithConfig quick "LatencyClass.budget and LatencyClass.matters agree with the class"
            <| Prop.forAll (Arb.fromGen latency) (fun l ->
                match l with
                | LatencyClass.NotImportant ->
                    Expect.equal (LatencyClass.budget l) Time.Never "no budget"
                    Expect.isFalse (LatencyClass.matters l) "does not matter"
                | LatencyClass.Matters b ->
                    Expect.equal (LatencyClass.budget l) b "its budget"
                    Expect.isTrue (LatencyClass.matters l) "matters")

            testPropertyWithConfig quick "Time.addSaturating adds, or clamps to Never instead of wrapping"
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.zip
                        (Gen.oneof [ instant; Gen.choose64 (Time.Never - Second, Time.Never) ])
                        (Gen.oneof [ Gen.choose64 (-Second, Second); Gen.choose64 (0L, Time.Never) ])
                ))
                (fun (a, b) ->
                    let sum = Time.addSaturating a b
                    let exact = decimal a + decimal b

                    if exact > decimal Time.Never then
                        Expect.equal sum Time.Never "clamped"
                    else
                        Expect.equal (decimal sum) exact "exact")

            testPropertyWithConfig quick "Time.ofTicksSaturating converts exactly, or clamps instead of overflowing"
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.oneof
                        [
                            Gen.choose64 (-Second, Second)
                            Gen.choose64 (Int64.MinValue, Int64.MaxValue)
                            Gen.elements
                                [
                                    Int64.MaxValue
                                    Int64.MinValue
                                    TimeSpan.MaxValue.Ticks
                                    TimeSpan.MinValue.Ticks
                                    Time.Never / 100L
                                    Time.Never / 100L + 1L
                                    Int64.MinValue / 100L
                                    Int64.MinValue / 100L - 1L
                                ]
                        ]
                ))
                (fun ticks ->
                    let ns = Time.ofTicksSaturating ticks
                    let exact = decimal ticks * 100m

                    if exact > decimal Time.Never then
                        Expect.equal ns Time.Never "clamped to Never"
                    elif exact < decimal Int64.MinValue then
                        Expect.equal ns Int64.MinValue "clamped to MinValue"
                    else
                        Expect.equal (decimal ns) exact "exact")

            testCase "Time.ofTicksSaturating: TimeSpan.MaxValue is Never"
            <| fun () -> Expect.equal (Time.ofTicksSaturating TimeSpan.MaxValue.Ticks) Time.Never "no overflow"
        ]

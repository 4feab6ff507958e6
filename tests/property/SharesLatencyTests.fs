module Scipio.Property.Tests.SharesLatencyTests

open System
open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

/// The CPU time of one run, up to a day: far below where `elapsed * Shares.Max` would overflow (about 106 days).
let private elapsed = Gen.choose64 (0L, 86_400L * Second)

/// Any int, with the neighbourhoods of the bounds and the extremes much more likely than a uniform draw would make
/// them.
let private anyInt =
    Gen.frequency
        [ 3, Gen.choose (-5, 1005)
          1, Gen.elements [ Int32.MinValue; Int32.MinValue + 1; -1; 0; Int32.MaxValue - 1; Int32.MaxValue ]
          1, Gen.choose (Int32.MinValue, Int32.MaxValue) ]

let tests =
    testList
        "Shares and Latency"
        [ testCase "isValid holds exactly on Min..Max (exhaustive around the bounds)"
          <| fun () ->
              for s in -100..2000 do
                  Expect.equal (Shares.isValid s) (s >= 1 && s <= 1000) $"isValid {s}"

          testPropertyWithConfig quick "isValid holds exactly on Min..Max (any int)"
          <| Prop.forAll (Arb.fromGen anyInt) (fun s ->
              Expect.equal (Shares.isValid s) (s >= 1 && s <= 1000) $"isValid {s}")

          testPropertyWithConfig quick "virtualRuntime is monotone in elapsed"
          <| Prop.forAll (Arb.fromGen (Gen.zip3 shares elapsed elapsed)) (fun (s, a, b) ->
              let lo, hi = min a b, max a b
              Expect.isLessThanOrEqual (Shares.virtualRuntime s lo) (Shares.virtualRuntime s hi) $"shares {s}")

          testPropertyWithConfig quick "virtualRuntime scales elapsed by Max / shares, rounded down"
          <| Prop.forAll (Arb.fromGen (Gen.zip shares elapsed)) (fun (s, e) ->
              let v = Shares.virtualRuntime s e
              // v = floor(e * Max / s), i.e. v * s <= e * Max < (v + 1) * s.
              Expect.isLessThanOrEqual (v * int64 s) (e * int64 Shares.Max) "not rounded up"
              Expect.isLessThan (e * int64 Shares.Max) ((v + 1L) * int64 s) "rounded down by less than one")

          testPropertyWithConfig quick "a queue with k times the shares is charged 1/k, within integer rounding"
          <| Prop.forAll
              (Arb.fromGen (
                  gen {
                      let! s = Gen.choose (Shares.Min, Shares.Max / 2)
                      let! k = Gen.choose (2, Shares.Max / s)
                      let! e = elapsed
                      return s, k, e
                  }
              ))
              (fun (s, k, e) ->
                  let single = Shares.virtualRuntime s e
                  let multiple = Shares.virtualRuntime (k * s) e
                  // floor(x / ks) = floor(floor(x / s) / k), so k times it falls short of floor(x / s) by less than k.
                  Expect.isLessThanOrEqual (int64 k * multiple) single "never charged more than 1/k"
                  Expect.isGreaterThan (int64 k * multiple) (single - int64 k) "short of 1/k only by rounding")

          testPropertyWithConfig quick "a queue with Max shares advances its vruntime at wall-clock speed"
          <| Prop.forAll (Arb.fromGen elapsed) (fun e ->
              Expect.equal (Shares.virtualRuntime Shares.Max e) e "vruntime = elapsed")

          testPropertyWithConfig quick "Latency.budget and Latency.matters agree with the class"
          <| Prop.forAll (Arb.fromGen latency) (fun l ->
              match l with
              | LatencyClass.NotImportant ->
                  Expect.equal (Latency.budget l) Time.Never "no budget"
                  Expect.isFalse (Latency.matters l) "does not matter"
              | LatencyClass.Matters b ->
                  Expect.equal (Latency.budget l) b "its budget"
                  Expect.isTrue (Latency.matters l) "matters")

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
                      Expect.equal (decimal sum) exact "exact") ]

/// Properties of ring routing: which ring an operation goes to, and the poll ring's fallback.
module Scipio.Property.Tests.RoutingTests

open Expecto
open FsCheck.FSharp
open Scipio.Core
open Scipio.Property.Tests.Generators

let private support =
    Gen.elements [ PollSupport.Unknown; PollSupport.Polls; PollSupport.DoesNotPoll ]

let private latencyClass =
    Gen.elements [ LatencyClass.NotImportant; LatencyClass.Matters Milli ]

/// A device's poll support after a sequence of poll-ring completions, and how many operations were resent.
let private replay (initial: PollSupport) (results: int list) =
    results
    |> List.fold
        (fun (device, resent) res ->
            // An operation goes to the poll ring only while the device may poll.
            if Routing.route true device LatencyClass.NotImportant = RingKind.Poll then
                let struct (after, resend) = Routing.onPollCompletion res device
                after, (if resend then resent + 1 else resent)
            else
                device, resent)
        (initial, 0)

let tests =
    testList
        "Routing"
        [
            testPropertyWithConfig quick "only O_DIRECT I/O on a device that may poll goes to the poll ring"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 (Gen.elements [ true; false ]) support latencyClass))
                (fun (direct, device, latency) ->
                    let ring = Routing.route direct device latency
                    Expect.equal (ring = RingKind.Poll) (direct && device <> PollSupport.DoesNotPoll) "poll ring"

                    if ring <> RingKind.Poll then
                        Expect.equal
                            (ring = RingKind.Latency)
                            (LatencyClass.matters latency)
                            "latency ring for latency-sensitive queues")

            testPropertyWithConfig
                quick
                "an operation that picks a provided buffer goes to the main ring; any other as route says"
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.zip
                        (Gen.elements [ true; false ])
                        (Gen.zip3 (Gen.elements [ true; false ]) support latencyClass)
                ))
                (fun (selects, (direct, device, latency)) ->
                    let ring = Routing.routeSelecting selects direct device latency

                    Expect.equal
                        ring
                        (if selects then
                             RingKind.Main
                         else
                             Routing.route direct device latency)
                        "the ring")

            testPropertyWithConfig
                quick
                "EOPNOTSUPP sends the operation again and the device off the poll ring for good"
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.zip
                        support
                        (Gen.listOf (
                            Gen.frequency
                                [
                                    4, Gen.choose (0, 4096)
                                    1, Gen.constant -Routing.EOPNOTSUPP
                                    1, Gen.constant -5
                                ]
                        ))
                ))
                (fun (initial, results) ->
                    let device, resent = replay initial results

                    let failedOnPoll =
                        initial <> PollSupport.DoesNotPoll && List.contains -Routing.EOPNOTSUPP results

                    if failedOnPoll then
                        Expect.equal device PollSupport.DoesNotPoll "the device no longer polls"
                        // Only the first EOPNOTSUPP reaches the poll ring: everything after goes to the main ring.
                        Expect.equal resent 1 "exactly one operation resent"
                    else
                        Expect.equal device initial "other results teach nothing"
                        Expect.equal resent 0 "nothing resent")

            test "sysfs io_poll decides when present" {
                Expect.equal (Routing.ofSysfs "1\n") PollSupport.Polls "1"
                Expect.equal (Routing.ofSysfs "0\n") PollSupport.DoesNotPoll "0"
                Expect.equal (Routing.ofSysfs null) PollSupport.Unknown "absent"
                Expect.equal (Routing.ofSysfs "garbage") PollSupport.Unknown "unreadable"
            }
        ]

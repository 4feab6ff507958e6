module Scipio.Property.Tests.Main

open Expecto
open Scipio.Core

let smoke =
    testList "smoke" [ test "an idle queue is not picked" { Expect.equal (TaskQueues.pickNext (System.ReadOnlySpan [| TaskQueues.create 100 LatencyClass.NotImportant |])) -1 "idle" } ]

[<EntryPoint>]
let main argv = runTestsWithCLIArgs [] argv smoke

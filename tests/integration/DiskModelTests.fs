/// The device model: given by hand (validated), saved and loaded as JSON (exact round trip, clear errors), and
/// measured on this machine's disk off a shard and on one — with a shortened calibration — leaving no scratch file,
/// also when canceled.
module Scipio.Integration.Tests.DiskModelTests

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio.IO
open Scipio.Integration.Tests.Helpers

/// Runs `f` with the calibration shortened to `phase` per phase on a scratch file of at most `size` bytes.
let private withCalibration (phase: TimeSpan) (size: int64) (f: unit -> 'T) : 'T =
    let savedPhase, savedSize = DiskModel.PhaseDuration, DiskModel.ScratchFileSize
    DiskModel.PhaseDuration <- phase
    DiskModel.ScratchFileSize <- size

    try
        f ()
    finally
        DiskModel.PhaseDuration <- savedPhase
        DiskModel.ScratchFileSize <- savedSize

/// A short calibration: 100 ms phases on a 16 MiB file.
let private short f =
    withCalibration (ms 100.0) (16L <<< 20) f

/// The figures of a measured model are positive, finite and sane for a disk, and it names where it was measured.
let private expectSane (dir: string) (model: DiskModel) =
    for name, value in
        [
            "ReadIops", model.ReadIops
            "WriteIops", model.WriteIops
            "ReadBandwidth", model.ReadBandwidth
            "WriteBandwidth", model.WriteBandwidth
        ] do
        Expect.isTrue (Double.IsFinite value && value > 0.0) $"{name} is positive and finite: {value}"

    Expect.isGreaterThan model.ReadIops 100.0 "more than 100 random reads a second"
    Expect.isGreaterThan model.WriteIops 100.0 "more than 100 random writes a second"
    Expect.isGreaterThan model.ReadBandwidth 1e6 "more than 1 MB/s sequential reads"
    Expect.isGreaterThan model.WriteBandwidth 1e6 "more than 1 MB/s sequential writes"
    Expect.isGreaterThan model.ReadLatency TimeSpan.Zero "a positive read latency"
    Expect.isLessThan model.ReadLatency (TimeSpan.FromSeconds 1.0) "a 4 KiB read takes under a second"
    Expect.equal model.Directory (Some(Path.GetFullPath dir) |> Option.toObj) "the directory measured"
    Expect.isNotNull model.Device "the device is named"
    Expect.isTrue model.MeasuredAt.HasValue "the time it was measured"

let private expectEmpty (dir: string) (what: string) =
    Expect.isEmpty (Directory.GetFileSystemEntries dir) $"{what}: no scratch file is left in the directory"

let private sample () =
    DiskModel(12345.678, 2345.5, 1.5e9, 7.25e8 + 0.125, TimeSpan.FromTicks 1234L)

let tests =
    testSequenced
    <| testList
        "diskmodel"
        [
            test "a model given by hand keeps its figures and has no directory, device or time" {
                let model = sample ()
                Expect.equal model.ReadIops 12345.678 "ReadIops"
                Expect.equal model.WriteIops 2345.5 "WriteIops"
                Expect.equal model.ReadBandwidth 1.5e9 "ReadBandwidth"
                Expect.equal model.WriteBandwidth (7.25e8 + 0.125) "WriteBandwidth"
                Expect.equal model.ReadLatency (TimeSpan.FromTicks 1234L) "ReadLatency"
                Expect.isNull model.Directory "no directory"
                Expect.isNull model.Device "no device"
                Expect.isFalse model.MeasuredAt.HasValue "no time"
            }

            test "a model given by hand with a figure not positive or not finite throws, naming the figure" {
                let good = [| 1.0; 1.0; 1.0; 1.0 |]
                let names = [| "readIops"; "writeIops"; "readBandwidth"; "writeBandwidth" |]

                for i in 0..3 do
                    for bad in [ 0.0; -1.0; nan; infinity; -infinity ] do
                        let v = Array.copy good
                        v[i] <- bad

                        let e =
                            thrownBy (fun () -> DiskModel(v[0], v[1], v[2], v[3], TimeSpan.FromMicroseconds 100.0))
                            |> expectExn<ArgumentOutOfRangeException> $"{names[i]} = {bad}"

                        Expect.equal e.ParamName names[i] $"the exception names {names[i]}"

                for bad in [ TimeSpan.Zero; TimeSpan.FromTicks -1L ] do
                    let e =
                        thrownBy (fun () -> DiskModel(1.0, 1.0, 1.0, 1.0, bad))
                        |> expectExn<ArgumentOutOfRangeException> $"readLatency = {bad}"

                    Expect.equal e.ParamName "readLatency" "the exception names readLatency"
            }

            test "Save then Load gives back exactly the same figures, for a model by hand and a measured one" {
                withTempDir (fun dir ->
                    let measured =
                        DiskModel(
                            98765.4321,
                            1.0 / 3.0,
                            Math.PI * 1e9,
                            Double.Epsilon,
                            TimeSpan.FromTicks 987654321L,
                            "/some/dir \"quoted\" é",
                            "vda (254:0)",
                            Nullable(DateTimeOffset(2026, 12, 1, 19, 52, 18, TimeSpan.Zero).AddTicks 5805748L)
                        )

                    for name, model in [ "by hand", sample (); "measured", measured ] do
                        let path = Path.Combine(dir, $"{name}.json")
                        model.Save path
                        let back = DiskModel.Load path
                        Expect.equal back.ReadIops model.ReadIops $"{name}: ReadIops"
                        Expect.equal back.WriteIops model.WriteIops $"{name}: WriteIops"
                        Expect.equal back.ReadBandwidth model.ReadBandwidth $"{name}: ReadBandwidth"
                        Expect.equal back.WriteBandwidth model.WriteBandwidth $"{name}: WriteBandwidth"
                        Expect.equal back.ReadLatency model.ReadLatency $"{name}: ReadLatency"
                        Expect.equal back.Directory model.Directory $"{name}: Directory"
                        Expect.equal back.Device model.Device $"{name}: Device"
                        Expect.equal back.MeasuredAt model.MeasuredAt $"{name}: MeasuredAt"

                    Expect.stringContains
                        (File.ReadAllText(Path.Combine(dir, "measured.json")))
                        "\"version\": 1"
                        "a version field")
            }

            test "Load of a bad file throws InvalidDataException naming the file and the field" {
                withTempDir (fun dir ->
                    let good =
                        "\"readIops\": 1000, \"writeIops\": 500, \"readBandwidth\": 1e8, \"writeBandwidth\": 5e7, \"readLatencyNs\": 100000"

                    let v1 (fields: string) = "{ \"version\": 1, " + fields + " }"

                    let cases =
                        [
                            "not JSON", "{ this is not json", "JSON"
                            "an array", "[1, 2]", "object"
                            "no version", "{ " + good + " }", "version"
                            "another version", "{ \"version\": 2, " + good + " }", "version"
                            "no readIops", v1 (good.Replace("\"readIops\": 1000, ", "")), "readIops"
                            "a negative writeIops", v1 (good.Replace("500", "-500")), "writeIops"
                            "a string for readBandwidth", v1 (good.Replace("1e8", "\"fast\"")), "readBandwidth"
                            "a zero readLatencyNs", v1 (good.Replace("100000", "0")), "readLatencyNs"
                            "a bad measuredAt", v1 (good + ", \"measuredAt\": \"yesterday\""), "measuredAt"
                            "a number for device", v1 (good + ", \"device\": 7"), "device"
                        ]

                    for name, text, field in cases do
                        let path = Path.Combine(dir, "bad.json")
                        File.WriteAllText(path, text)

                        let e =
                            thrownBy (fun () -> DiskModel.Load path) |> expectExn<InvalidDataException> name

                        Expect.stringContains e.Message field $"{name}: the message names '{field}'"
                        Expect.stringContains e.Message path $"{name}: the message names the file"

                    let path = Path.Combine(dir, "good.json")
                    File.WriteAllText(path, v1 good)
                    let model = DiskModel.Load path
                    Expect.equal model.ReadLatency (TimeSpan.FromMicroseconds 100.0) "a hand-written file loads"
                    Expect.isNull model.Device "without a device"

                    thrownBy (fun () -> DiskModel.Load(Path.Combine(dir, "missing.json")))
                    |> expectExn<FileNotFoundException> "a missing file"
                    |> ignore)
            }

            test "MeasureAsync off a shard gives sane figures and leaves no file behind" {
                withTempDir (fun dir ->
                    let model =
                        short (fun () ->
                            DiskModel.MeasureAsync dir
                            |> awaitBounded "MeasureAsync" (TimeSpan.FromSeconds 30.0))

                    expectSane dir model
                    expectEmpty dir "after measuring")
            }

            test "MeasureAsync on a shard runs there and gives sane figures" {
                withTempDir (fun dir ->
                    let model = short (fun () -> runShard (fun () -> DiskModel.MeasureAsync dir))
                    expectSane dir model
                    expectEmpty dir "after measuring on a shard")
            }

            test "MeasureAsync of a missing directory throws DirectoryNotFoundException" {
                withTempDir (fun dir ->
                    let missing = Path.Combine(dir, "nope")

                    thrownBy (fun () -> (DiskModel.MeasureAsync missing).GetAwaiter().GetResult())
                    |> expectExn<DirectoryNotFoundException> "a missing directory"
                    |> ignore)
            }

            test "MeasureAsync with a canceled token throws OperationCanceledException and leaves no file behind" {
                withTempDir (fun dir ->
                    // Already canceled: nothing starts.
                    thrownBy (fun () ->
                        (DiskModel.MeasureAsync(dir, CancellationToken(true))).GetAwaiter().GetResult())
                    |> expectExn<OperationCanceledException> "a token canceled before"
                    |> ignore

                    expectEmpty dir "canceled before"

                    // Canceled during the calibration, off a shard and on one.
                    withCalibration (TimeSpan.FromSeconds 2.0) (16L <<< 20) (fun () ->
                        use cts = new CancellationTokenSource(ms 300.0)

                        thrownBy (fun () ->
                            DiskModel.MeasureAsync(dir, cts.Token)
                            |> awaitBounded "MeasureAsync" (TimeSpan.FromSeconds 10.0))
                        |> expectExn<OperationCanceledException> "a token canceled during the calibration"
                        |> ignore

                        expectEmpty dir "canceled during the calibration"

                        let thrown =
                            runShard (fun () ->
                                task {
                                    use cts = new CancellationTokenSource(ms 300.0)
                                    return! thrownByTask (fun () -> DiskModel.MeasureAsync(dir, cts.Token))
                                })

                        thrown
                        |> expectExn<OperationCanceledException> "canceled during the calibration on a shard"
                        |> ignore

                        expectEmpty dir "canceled on a shard"))
            }
        ]

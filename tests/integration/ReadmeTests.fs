/// The README shows the samples verbatim, and the samples are built with the solution: so its code compiles.
module Scipio.Integration.Tests.ReadmeTests

open System
open System.IO
open System.Text.RegularExpressions
open Expecto

/// The repository's root: the first directory up from the test binary that holds Scipio.sln.
let private root () =
    let rec up (dir: DirectoryInfo | null) =
        match dir with
        | null -> failtest "Scipio.sln not found above the test binary"
        | d when File.Exists(Path.Combine(d.FullName, "Scipio.sln")) -> d.FullName
        | d -> up d.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

/// The fenced code blocks of `language` in the README.
let private blocks (language: string) =
    let readme = File.ReadAllText(Path.Combine(root (), "README.md"))

    [
        for m in Regex.Matches(readme, $"```{language}\\n(.*?)```", RegexOptions.Singleline) -> m.Groups[1].Value
    ]

let tests =
    testList
        "README"
        [
            for language, sample in
                [
                    "csharp", "samples/QuickStart/Program.cs"
                    "fsharp", "samples/QuickStart.FSharp/Program.fs"
                    "csharp", "samples/Pool/Program.cs"
                    "fsharp", "samples/Pool.FSharp/Program.fs"
                    "csharp", "samples/Echo/Program.cs"
                    "fsharp", "samples/Echo.FSharp/Program.fs"
                    "fsharp", "samples/Simulation/Program.fs"
                    "csharp", "samples/WebApi/Program.cs"
                ] do
                test $"its {language} block is {sample}, which the build compiles" {
                    let code = File.ReadAllText(Path.Combine(root (), sample))
                    Expect.contains (blocks language) code $"the README's {language} code is {sample}, verbatim"
                }
        ]

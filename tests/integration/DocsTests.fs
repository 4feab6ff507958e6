/// The pages of docs/ show code that compiles: every ```csharp block of a page is the text of a region of
/// docs/snippets (a project this one references, so building the tests compiles it), and cannot drift from it. The
/// pages link each other and the index lists them all. And the examples run: those that need nothing but a temporary
/// directory and loopback ports are run here, on both backends.
module Scipio.Integration.Tests.DocsTests

open System
open System.IO
open System.Text.RegularExpressions
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.Integration.Tests.Helpers

/// The repository's root: the first directory up from the test binary that holds Scipio.sln.
let private root () =
    let rec up (dir: DirectoryInfo | null) =
        match dir with
        | null -> failtest "Scipio.sln not found above the test binary"
        | d when File.Exists(Path.Combine(d.FullName, "Scipio.sln")) -> d.FullName
        | d -> up d.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

let private docs () = Path.Combine(root (), "docs")

/// Lines without trailing whitespace and without the indentation they all share; blank lines at either end dropped.
let private normalize (lines: string seq) =
    let trimmed = lines |> Seq.map (fun l -> l.TrimEnd()) |> Array.ofSeq
    let first = trimmed |> Array.tryFindIndex (fun l -> l <> "")
    let last = trimmed |> Array.tryFindIndexBack (fun l -> l <> "")

    match first, last with
    | Some f, Some l ->
        let body = trimmed[f..l]

        let indent =
            body
            |> Array.filter (fun l -> l <> "")
            |> Array.map (fun l -> l.Length - l.TrimStart().Length)
            |> Array.min

        body |> Array.map (fun l -> if l = "" then "" else l.Substring indent)
    | _ -> [||]

/// A using directive at the start of a file or of a block (not a using statement or declaration).
let private isUsingDirective (line: string) =
    Regex.IsMatch(line.Trim(), @"^(global\s+)?using\s+(static\s+)?[A-Za-z_][\w.]*(\s*=\s*[\w.<>, ]+)?;$")

type private Region =
    {
        File: string
        Name: string
        Lines: string[]
        Usings: Set<string>
    }

/// The files under `dir` matching `pattern`, outside build output (bin, obj): each path relative to the repository
/// with its lines.
let private sourceFiles (dir: string) (pattern: string) =
    [
        for file in Directory.EnumerateFiles(dir, pattern, SearchOption.AllDirectories) do
            let relative = Path.GetRelativePath(root (), file)
            let parts = relative.Split(Path.DirectorySeparatorChar)

            if not (Array.contains "bin" parts || Array.contains "obj" parts) then
                yield relative, File.ReadAllLines file
    ]

/// A C# file's using directives (those at the start of a line).
let private usingsOf (lines: string[]) =
    lines
    |> Array.filter (fun l -> l = l.TrimStart() && isUsingDirective l)
    |> Array.map (fun l -> l.Trim())
    |> Set.ofArray

/// The regions `// <snippet:name>` … `// </snippet>` of every C# file under docs/snippets, with the using directives
/// of their file.
let private regions () =
    [
        for relative, lines in sourceFiles (Path.Combine(docs (), "snippets")) "*.cs" do
            let usings = usingsOf lines

            let mutable current: (string * int) option = None

            for i in 0 .. lines.Length - 1 do
                let line = lines[i].Trim()
                let start = Regex.Match(line, @"^// <snippet:([\w.-]+)>$")

                if start.Success then
                    if current.IsSome then
                        failtest $"{relative}:{i + 1}: a snippet region starts inside another"

                    current <- Some(start.Groups[1].Value, i)
                elif line = "// </snippet>" then
                    match current with
                    | None -> failtest $"{relative}:{i + 1}: '// </snippet>' without a region to end"
                    | Some(name, s) ->
                        current <- None

                        yield
                            {
                                File = relative
                                Name = name
                                Lines = normalize lines[s + 1 .. i - 1]
                                Usings = usings
                            }

            match current with
            | Some(name, s) -> failtest $"{relative}:{s + 1}: region '{name}' is not ended by '// </snippet>'"
            | None -> ()
    ]

/// The samples' source files, each whole as one region: the build compiles them (and the README shows them), so a
/// page may show a window of one — the F# pages do, and the ASP.NET Core page shows the web sample.
let private sampleFiles (extension: string) =
    [
        for relative, lines in sourceFiles (Path.Combine(root (), "samples")) ("*" + extension) ->
            {
                File = relative
                Name = relative
                Lines = normalize lines
                Usings = usingsOf lines
            }
    ]

type private Block =
    {
        Page: string
        Line: int
        Language: string
        Lines: string[]
    }

/// The fenced code blocks of a page, each with the line its fence is on.
let private blocksOf (page: string) =
    let lines = File.ReadAllLines page
    let name = nonNull (Path.GetFileName page)

    [
        let mutable i = 0

        while i < lines.Length do
            let fence = Regex.Match(lines[i], @"^(\s*)```\s*([^\s`]*)\s*$")

            if fence.Success then
                let start = i
                i <- i + 1
                let body = ResizeArray()

                while i < lines.Length && lines[i].Trim() <> "```" do
                    body.Add lines[i]
                    i <- i + 1

                if i = lines.Length then
                    failtest $"{name}:{start + 1}: a code block is not closed"

                yield
                    {
                        Page = name
                        Line = start + 1
                        Language = fence.Groups[2].Value
                        Lines = normalize body
                    }

            i <- i + 1
    ]

let private pages () =
    Directory.EnumerateFiles(docs (), "*.md") |> Seq.sort |> List.ofSeq

/// Whether `block` is `window` of `region` lines, up to a shift of indentation.
let private containsAt (region: string[]) (block: string[]) =
    block.Length > 0
    && block.Length <= region.Length
    && Seq.exists (fun i -> normalize region[i .. i + block.Length - 1] = block) [ 0 .. region.Length - block.Length ]

/// How a block is compiled: as the text of a region; or, for a block that opens with using directives (a whole
/// program), its other lines as the text of a region in a file whose using directives are exactly those.
let private compiledBy (all: Region list) (block: Block) =
    match all |> List.tryFind (fun r -> containsAt r.Lines block.Lines) with
    | Some r -> Some r
    | None ->
        let usings = block.Lines |> Array.takeWhile (fun l -> l = "" || isUsingDirective l)
        let body = normalize block.Lines[usings.Length ..]

        let wanted =
            usings
            |> Array.filter (fun l -> l <> "")
            |> Array.map (fun l -> l.Trim())
            |> Set.ofArray

        if wanted.IsEmpty then
            None
        else
            all |> List.tryFind (fun r -> r.Usings = wanted && containsAt r.Lines body)

let private csharpBlocks () =
    [
        for page in pages () do
            for block in blocksOf page do
                if block.Language = "csharp" then
                    yield block
    ]

/// One test per page: its csharp and fsharp blocks are compiled code.
let private pageTest (page: string) =
    test $"every csharp and fsharp block of docs/{Path.GetFileName page} is code the build compiles" {
        let csharp = regions () @ sampleFiles ".cs"
        let fsharp = sampleFiles ".fs"

        let compiled (block: Block) =
            match block.Language with
            | "csharp" -> (compiledBy csharp block).IsSome
            | "fsharp" -> fsharp |> List.exists (fun r -> containsAt r.Lines block.Lines)
            | _ -> true

        let wrong =
            [
                for block in blocksOf page do
                    if not (compiled block) then
                        let first =
                            block.Lines
                            |> Array.tryFind (fun l -> l <> "" && not (isUsingDirective l))
                            |> Option.defaultValue ""

                        yield $"  line {block.Line}: {first.Trim()}"
            ]

        if not wrong.IsEmpty then
            let lines = String.Join("\n", wrong)

            failtest (
                $"docs/{Path.GetFileName page}: these blocks are not compiled code. A csharp block is the text of a "
                + "region `// <snippet:name>` … `// </snippet>` of docs/snippets/*.cs (a block that opens with usings: "
                + "of a file with exactly those usings) or lines of a samples/ .cs file; an fsharp block is lines of "
                + $"a samples/ .fs file. Copy the block into one, or the code into the page:\n{lines}"
            )
    }

let tests =
    testList
        "docs"
        [
            for page in pages () do
                yield pageTest page

            yield
                test "C# and F# blocks are marked csharp and fsharp, the languages the check reads" {
                    for page in pages () do
                        for block in blocksOf page do
                            let language = block.Language.ToLowerInvariant()

                            if List.contains language [ "cs"; "c#"; "c-sharp"; "csharp-interactive" ] then
                                failtest
                                    $"{block.Page}:{block.Line}: mark C# blocks ```csharp, so that they are checked"

                            if List.contains language [ "fs"; "f#"; "f-sharp"; "fsx" ] then
                                failtest
                                    $"{block.Page}:{block.Line}: mark F# blocks ```fsharp, so that they are checked"
                }

            yield
                test "snippet regions have unique names, and each is shown on a page" {
                    let all = regions ()
                    Expect.isNonEmpty all "docs/snippets has regions"

                    for name, regions in all |> List.groupBy (fun r -> r.Name) do
                        if regions.Length > 1 then
                            let files = regions |> List.map (fun r -> r.File)
                            failtest $"region '{name}' is defined more than once: {files}"

                    let blocks = csharpBlocks ()

                    for region in all do
                        let shown = blocks |> List.exists (fun b -> (compiledBy [ region ] b).IsSome)

                        if not shown then
                            failtest
                                $"{region.File}: region '{region.Name}' is shown on no page of docs/ (remove it, or show it)"
                }

            yield
                test "links between pages resolve, and the index links every page" {
                    let names = pages () |> List.map Path.GetFileName |> Set.ofList

                    for page in pages () do
                        let text = File.ReadAllText page

                        for m in Regex.Matches(text, @"\]\(([^)#\s]+)(#[^)\s]*)?\)") do
                            let target = m.Groups[1].Value

                            if not (Regex.IsMatch(target, "^[a-z]+:")) then
                                let full = Path.GetFullPath(Path.Combine(docs (), target))

                                if not (File.Exists full || Directory.Exists full) then
                                    failtest $"{Path.GetFileName page}: the link to {target} leads nowhere"

                    let index = File.ReadAllText(Path.Combine(docs (), "README.md"))

                    for name in names |> Set.remove "README.md" do
                        Expect.stringContains index $"]({name})" $"docs/README.md links {name}"


                    let readme = File.ReadAllText(Path.Combine(root (), "README.md"))
                    Expect.stringContains readme "](docs/README.md)" "the README links the documentation's index"
                }
        ]

/// Runs `f` with what it writes to standard output and error captured (the examples print what they show), and
/// returns that.
let private quietly (f: unit -> 'T) : 'T * string =
    let out, error = Console.Out, Console.Error
    use captured = new StringWriter()
    let writer = TextWriter.Synchronized captured
    Console.SetOut writer
    Console.SetError writer

    try
        let result = f ()
        result, captured.ToString()
    finally
        Console.SetOut out
        Console.SetError error

/// An example that is a whole program (it starts its own shard or pool).
let private program name (f: unit -> unit) (expect: string -> unit) =
    test $"the example {name} runs" {
        let (), output = quietly f
        expect output
    }

/// An example that is a fragment of code on a shard.
let private onShard name (f: string -> Task<'T>) (expect: 'T -> string -> unit) =
    test $"the example {name} runs on a shard" {
        withTempDir (fun dir ->
            let result, output = quietly (fun () -> runShard (fun () -> f dir))
            expect result output)
    }

/// The examples that need nothing but a temporary directory and loopback ports (not a fixed path or port, which a
/// concurrent run elsewhere on the machine could hold), run as the pages show them; one at a time, since each
/// captures the console.
let examples =
    testSequenced
    <| testList
        "docs examples"
        [
            program "getting-started: the first shard" Snippets.GettingStartedFirstShard.FirstShard (fun out ->
                Expect.stringContains out "the shard returned 42" "it returns")
            program
                "getting-started: the first task queues"
                Snippets.GettingStartedFirstShard.FirstTaskQueues
                (fun out -> Expect.stringContains out "foreground  300 shares" "it prints the queues")
            program "getting-started: a socket" Snippets.GettingStartedSocket.ASocket (fun out ->
                Expect.stringContains out "echoed \"ping\"" "the echo came back")
            program "concepts: spawn" Snippets.Concepts.StartAndSpawn (fun out -> Expect.equal (out.Trim()) "3" "1 + 2")
            onShard "concepts: SpawnBlocking" (fun _ -> Snippets.Concepts.Blocking()) (fun addresses _ ->
                Expect.isNonEmpty addresses "localhost resolves")
            onShard "concepts: ConfigureAwait(false)" (fun _ -> Snippets.Concepts.LeavingTheShard()) (fun left _ ->
                Expect.isTrue left "on the shard before, off it after")
            onShard "files: BufferedFile" Snippets.Files.Buffered (fun length _ -> Expect.equal length 11L "one record")
            onShard "files: DmaFile" Snippets.Files.DmaZeroCopy (fun text _ -> Expect.equal text "ello" "bytes 1 to 4")
            onShard
                "files: ReadManyAsync"
                (fun dir ->
                    task {
                        let! _ = Snippets.Files.DmaZeroCopy dir
                        return! Snippets.Files.ReadMany dir
                    })
                (fun total _ -> Expect.equal total (100 + 512 + 64 + 4096) "every range, exactly")
            onShard "files: DMA streams" Snippets.Files.Streams (fun lines _ ->
                Expect.equal lines 100_000 "every line back")
            onShard
                "files: save atomically, FileSystem"
                (fun dir ->
                    task {
                        do! Snippets.Files.SaveAtomically dir
                        return! Snippets.Files.Metadata dir
                    })
                (fun _ out -> Expect.stringContains out "File, 14 bytes" "the file saved, then described")
            onShard
                "networking: AsStream and AsPipe"
                (fun _ -> Snippets.Networking.Adapters())
                (fun (struct (bytes, lines)) out ->
                    Expect.equal (bytes, lines) (12, 3) "upper-cased lines back; three lines counted"
                    Expect.stringContains out "HELLO" "upper case")
            onShard "networking: UDP" (fun _ -> Snippets.Networking.Udp()) (fun second _ ->
                Expect.equal second "pong" "both datagrams")
            onShard "many shards: a local channel" (fun _ -> Snippets.ManyShards.Local()) (fun total _ ->
                Expect.equal total 5050L "1 to 100")
            onShard
                "many shards: semaphore, lock, gate"
                (fun _ ->
                    task {
                        do! Snippets.ManyShards.Sync(fun () -> Shard.Sleep(TimeSpan.FromMilliseconds 1.0).AsTask())
                        return Shard.CurrentTaskQueue.Stats.TasksRun
                    })
                (fun tasks _ -> Expect.isGreaterThan tasks 0L "it ran")
            test "the example many shards: pool, ownership, shared channel, mesh, router runs" {
                let results, _ =
                    quietly (fun () ->
                        let run =
                            task {
                                let! owned = Snippets.ManyShards.PoolAndOwnership()
                                let pool = ShardPool.Start()

                                try
                                    let! heard = Snippets.ManyShards.Mesh pool
                                    let! routed = Snippets.ManyShards.Router pool
                                    return owned, heard, routed, pool.Count
                                finally
                                    pool.DisposeAsync().AsTask().Wait()
                            }

                        run |> awaitBounded "the pool examples" shardTimeout)

                let owned, heard, routed, count = results
                Expect.equal owned 1001L "one hit, 1000 lines"
                Expect.equal heard (count * (count - 1)) "every shard heard every other"
                Expect.equal routed (10_000L * int64 count) "every increment counted once, by its owner"
            }
            onShard
                "observability: Shard.Stats"
                (fun _ -> Task.FromResult(Snippets.Observability.Stats()))
                (fun stats out ->
                    Expect.stringContains out "main ring:" "printed"
                    Expect.isGreaterThanOrEqual stats.TasksRun 1L "counted")
            program "observability: a stall" Snippets.Observability.Stalls ignore
            program
                "observability: a MeterListener"
                (fun () -> Snippets.ObservabilityMeter.Listen().GetAwaiter().GetResult())
                (fun out ->
                    Expect.stringContains out "scipio.queue.tasks [shard=0, queue=default]" "the meter was read")
        ]

/// The pages of docs/ show code that compiles: every ```csharp block of a page is the text of a region of
/// docs/snippets (a project of the solution, so the build compiles it), and cannot drift from it. The pages link each
/// other and the index lists them all.
module Scipio.Integration.Tests.DocsTests

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

let private docs () = Path.Combine(root (), "docs")

/// Pages other branches are writing: the index links them before they arrive.
let private pagesOnTheirWay = set [ "aspnetcore.md"; "fsharp.md" ]

/// Lines without trailing whitespace and without the indentation they all share; blank lines at either end dropped.
let private normalize (lines: string seq) =
    let trimmed = lines |> Seq.map (fun l -> l.TrimEnd()) |> Array.ofSeq
    let first = trimmed |> Array.tryFindIndex (fun l -> l <> "")
    let last = trimmed |> Array.tryFindIndexBack (fun l -> l <> "")

    match first, last with
    | Some f, Some l ->
        let body = trimmed[f..l]
        let indent = body |> Array.filter (fun l -> l <> "") |> Array.map (fun l -> l.Length - l.TrimStart().Length) |> Array.min
        body |> Array.map (fun l -> if l = "" then "" else l.Substring indent)
    | _ -> [||]

/// A using directive at the start of a file or of a block (not a using statement or declaration).
let private isUsingDirective (line: string) =
    Regex.IsMatch(line.Trim(), @"^(global\s+)?using\s+(static\s+)?[A-Za-z_][\w.]*(\s*=\s*[\w.<>, ]+)?;$")

type private Region = { File: string; Name: string; Lines: string[]; Usings: Set<string> }

/// The regions `// <snippet:name>` … `// </snippet>` of every C# file under docs/snippets, with the using directives
/// of their file.
let private regions () =
    let dir = Path.Combine(docs (), "snippets")

    [ for file in Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories) do
          let relative = Path.GetRelativePath(root (), file)
          let parts = relative.Split(Path.DirectorySeparatorChar)

          if not (Array.contains "bin" parts || Array.contains "obj" parts) then
              let lines = File.ReadAllLines file
              let usings = lines |> Array.filter (fun l -> l = l.TrimStart() && isUsingDirective l) |> Array.map (fun l -> l.Trim()) |> Set.ofArray
              let mutable current: (string * int) option = None

              for i in 0 .. lines.Length - 1 do
                  let line = lines[i].Trim()
                  let start = Regex.Match(line, @"^// <snippet:([\w.-]+)>$")

                  if start.Success then
                      if current.IsSome then failtest $"{relative}:{i + 1}: a snippet region starts inside another"
                      current <- Some(start.Groups[1].Value, i)
                  elif line = "// </snippet>" then
                      match current with
                      | None -> failtest $"{relative}:{i + 1}: '// </snippet>' without a region to end"
                      | Some(name, s) ->
                          current <- None
                          yield { File = relative; Name = name; Lines = normalize lines[s + 1 .. i - 1]; Usings = usings }

              match current with
              | Some(name, s) -> failtest $"{relative}:{s + 1}: region '{name}' is not ended by '// </snippet>'"
              | None -> () ]

type private Block = { Page: string; Line: int; Language: string; Lines: string[] }

/// The fenced code blocks of a page, each with the line its fence is on.
let private blocksOf (page: string) =
    let lines = File.ReadAllLines page
    let name = nonNull (Path.GetFileName page)

    [ let mutable i = 0

      while i < lines.Length do
          let fence = Regex.Match(lines[i], @"^(\s*)```\s*([^\s`]*)\s*$")

          if fence.Success then
              let start = i
              i <- i + 1
              let body = ResizeArray()

              while i < lines.Length && lines[i].Trim() <> "```" do
                  body.Add lines[i]
                  i <- i + 1

              if i = lines.Length then failtest $"{name}:{start + 1}: a code block is not closed"
              yield { Page = name; Line = start + 1; Language = fence.Groups[2].Value; Lines = normalize body }

          i <- i + 1 ]

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
        let wanted = usings |> Array.filter (fun l -> l <> "") |> Array.map (fun l -> l.Trim()) |> Set.ofArray

        if wanted.IsEmpty then
            None
        else
            all |> List.tryFind (fun r -> r.Usings = wanted && containsAt r.Lines body)

let private csharpBlocks () =
    [ for page in pages () do
          for block in blocksOf page do
              if block.Language = "csharp" then yield block ]

/// One test per page: its csharp blocks are compiled code.
let private pageTest (page: string) =
    test $"every csharp block of docs/{Path.GetFileName page} is code of docs/snippets, which the build compiles" {
        let all = regions ()

        let wrong =
            [ for block in blocksOf page do
                  if block.Language = "csharp" && (compiledBy all block).IsNone then
                      let first = block.Lines |> Array.tryFind (fun l -> l <> "" && not (isUsingDirective l)) |> Option.defaultValue ""
                      yield $"  line {block.Line}: {first.Trim()}" ]

        if not wrong.IsEmpty then
            let lines = String.Join("\n", wrong)

            failtest (
                $"docs/{Path.GetFileName page}: these csharp blocks are not the text of a region "
                + "`// <snippet:name>` … `// </snippet>` of docs/snippets/*.cs (a block that opens with usings: "
                + $"of a file with exactly those usings). Copy the block into a region, or the region into the page:\n{lines}"
            )
    }

let tests =
    testList
        "docs"
        [ for page in pages () do
              yield pageTest page

          yield test "C# blocks are marked csharp, the language the check reads" {
              for page in pages () do
                  for block in blocksOf page do
                      if List.contains (block.Language.ToLowerInvariant()) [ "cs"; "c#"; "c-sharp"; "csharp-interactive" ] then
                          failtest $"{block.Page}:{block.Line}: mark C# blocks ```csharp, so that they are checked"
          }

          yield test "snippet regions have unique names, and each is shown on a page" {
              let all = regions ()
              Expect.isNonEmpty all "docs/snippets has regions"

              for name, regions in all |> List.groupBy (fun r -> r.Name) do
                  if regions.Length > 1 then
                      let files = regions |> List.map (fun r -> r.File)
                      failtest $"region '{name}' is defined more than once: {files}"

              let blocks = csharpBlocks ()

              for region in all do
                  let shown =
                      blocks |> List.exists (fun b -> (compiledBy [ region ] b).IsSome)

                  if not shown then
                      failtest $"{region.File}: region '{region.Name}' is shown on no page of docs/ (remove it, or show it)"
          }

          yield test "links between pages resolve, and the index links every page" {
              let names = pages () |> List.map Path.GetFileName |> Set.ofList

              for page in pages () do
                  let text = File.ReadAllText page

                  for m in Regex.Matches(text, @"\]\(([^)#\s]+)(#[^)\s]*)?\)") do
                      let target = m.Groups[1].Value

                      if not (Regex.IsMatch(target, "^[a-z]+:")) then
                          let full = Path.GetFullPath(Path.Combine(docs (), target))

                          if not (File.Exists full || Directory.Exists full || pagesOnTheirWay.Contains(nonNull (Path.GetFileName full))) then
                              failtest $"{Path.GetFileName page}: the link to {target} leads nowhere"

              let index = File.ReadAllText(Path.Combine(docs (), "README.md"))

              for name in names |> Set.remove "README.md" do
                  Expect.stringContains index $"]({name})" $"docs/README.md links {name}"

              for name in pagesOnTheirWay do
                  Expect.stringContains index $"]({name})" $"docs/README.md links {name}"

              let readme = File.ReadAllText(Path.Combine(root (), "README.md"))
              Expect.stringContains readme "](docs/README.md)" "the README links the documentation's index"
          } ]

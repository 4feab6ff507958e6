/// Every public type and member of every package has XML docs. The C# compiler enforces it already (CS1591 is an
/// error); the F# compiler has no such warning, so this reads each assembly's documentation file beside it and
/// fails with the list of what is undocumented.
module Scipio.Integration.Tests.XmlDocTests

// Reflection answers null for "none" (a declaring type, a namespace): checked where it matters.
#nowarn "3261"

open System
open System.IO
open System.Reflection
open System.Runtime.CompilerServices
open System.Xml.Linq
open Expecto

/// A type's name as documentation IDs write it: namespace, nesting with dots, generic arity kept (List`1).
let private docTypeName (t: Type) =
    (if isNull t.FullName then t.Name else t.FullName).Replace('+', '.')

/// The part of a documentation ID that names a member, without its parameters or generic arity: overloads share it.
let private keyOf (id: string) =
    let name =
        match id.IndexOf '(' with
        | -1 -> id
        | i -> id.Substring(0, i)

    match name.IndexOf "``" with
    | -1 -> name
    | i -> name.Substring(0, i)

/// How many documented entries (some text, or an <inheritdoc/>) each key has.
let private documented (xmlPath: string) =
    XDocument.Load(xmlPath).Descendants(XName.Get "member")
    |> Seq.filter (fun m ->
        not (String.IsNullOrWhiteSpace(m.Value))
        || not (Seq.isEmpty (m.Descendants(XName.Get "inheritdoc"))))
    |> Seq.choose (fun m ->
        match m.Attribute(XName.Get "name") with
        | null -> None
        | a -> Some(keyOf a.Value))
    |> Seq.countBy id
    |> Map.ofSeq

let private generated (m: MemberInfo) =
    m.IsDefined(typeof<CompilerGeneratedAttribute>, false)

let private isFSharpType (t: Type) =
    t.GetCustomAttributes(false)
    |> Array.exists (fun a -> a.GetType().Name = "CompilationMappingAttribute")

/// What F# generates for records and unions (comparison, equality, union case tests and tags) and the witness-passing
/// twins of inline members (Bind$W): nothing anyone wrote, nothing to document. `fsharp`: t is an F# type.
let private fsharpGenerated (fsharp: bool) (t: Type) (m: MemberInfo) =
    m.Name.Contains '$'
    || fsharp
       && (match m.Name with
           | "Equals"
           | "GetHashCode"
           | "CompareTo"
           | "ToString"
           | "Tag" -> true
           | name ->
               name.StartsWith "Is"
               && t.GetProperty(name) <> null
               && t.GetNestedType("Tags") <> null)

/// An override takes the documentation of what it overrides (the C# compiler asks for none either).
let private isOverride (m: MethodInfo) = m.GetBaseDefinition() <> m

/// The keys, one per public type and member (overloads repeat theirs), that need a summary.
let private wanted (assembly: Assembly) =
    [
        for t in assembly.GetExportedTypes() do
            let tn = docTypeName t
            let fsharp = isFSharpType t

            if not (generated t) && t.Name <> "Tags" then
                yield "T:" + tn

                if t.IsEnum then
                    for name in Enum.GetNames t do
                        yield $"F:{tn}.{name}"
                elif not (typeof<Delegate>.IsAssignableFrom t) then
                    // A constructor with no parameters that nobody wrote (a class without one) has nothing to say;
                    // an F# type's constructor is its declaration's, documented with the type.
                    for c in t.GetConstructors PublicApiTests.flags do
                        if c.IsPublic && c.GetParameters().Length > 0 && not (generated c) && not fsharp then
                            yield $"M:{tn}.#ctor"

                    for m in t.GetMethods PublicApiTests.flags do
                        if
                            m.IsPublic
                            && not m.IsSpecialName
                            && not (generated m)
                            && not (fsharpGenerated fsharp t m)
                            && not (isOverride m)
                        then
                            yield $"M:{tn}.{m.Name}"

                    for p in t.GetProperties PublicApiTests.flags do
                        let getter = p.GetMethod

                        if
                            not (isNull getter)
                            && getter.IsPublic
                            && not (generated p)
                            && not (generated getter)
                            && not (fsharpGenerated fsharp t p)
                        then
                            yield $"P:{tn}.{p.Name}"

                    for e in t.GetEvents PublicApiTests.flags do
                        yield $"E:{tn}.{e.Name}"

                    // F# documents a [<Literal>] as a property (P:), C# a const as a field (F:): either will do.
                    for f in t.GetFields PublicApiTests.flags do
                        if f.IsPublic && not (generated f) then
                            yield $"F:{tn}.{f.Name}"
    ]

let private check (assembly: Assembly) =
    test $"every public type and member of {assembly.GetName().Name} has XML docs" {
        let xmlPath = Path.ChangeExtension(assembly.Location, ".xml")
        Expect.isTrue (File.Exists xmlPath) $"the documentation file {xmlPath} is built (GenerateDocumentationFile)"
        let docs = documented xmlPath

        let count (key: string) =
            let found key =
                docs.TryFind key |> Option.defaultValue 0

            if key.StartsWith "F:" then
                found key + found ("P:" + key.Substring 2)
            else
                found key

        let missing =
            wanted assembly
            |> List.countBy id
            |> List.filter (fun (key, n) -> count key < n)
            |> List.map fst

        Expect.isNonEmpty (wanted assembly) "the assembly has a public surface"

        Expect.isEmpty
            missing
            $"""public members without a /// summary in {assembly.GetName().Name}:
{String.concat "\n" missing}"""
    }

let tests =
    testList
        "XML docs"
        [
            check typeof<Scipio.Core.RingKind>.Assembly
            check typeof<Scipio.Shard>.Assembly
            check (Assembly.Load "Scipio.FSharp")
            check (Assembly.Load "Scipio.Simulation")
            check (Assembly.Load "Scipio.Hosting")
        ]

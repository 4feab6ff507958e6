/// The public surface of each package, compared with the file checked in beside its project (PublicAPI.txt): an
/// accidental break — a member removed, renamed, or its signature changed — fails the suite and prints the difference.
/// After an intended change, regenerate the files: SCIPIO_UPDATE_PUBLIC_API=1 ./test.sh (then review the diff).
/// Reflection, not Roslyn's PublicApiAnalyzers: it reads F# and C# assemblies alike.
module Scipio.Integration.Tests.PublicApiTests

// Reflection answers null for "none" everywhere (a base type, a namespace, an accessor): checked where it matters.
#nowarn "3261"

open System
open System.IO
open System.Reflection
open Expecto

/// The public members, instance and static, that a type declares itself (inherited ones are its base type's).
let flags =
    BindingFlags.Public
    ||| BindingFlags.Instance
    ||| BindingFlags.Static
    ||| BindingFlags.DeclaredOnly

let rec private typeName (t: Type) : string =
    if t.IsGenericParameter then
        t.Name
    elif t.IsArray then
        typeName (t.GetElementType()) + "[]"
    elif t.IsByRef then
        typeName (t.GetElementType()) + "&"
    elif t.IsPointer then
        typeName (t.GetElementType()) + "*"
    elif t.IsGenericType then
        let name =
            (if t.IsNested then
                 typeName t.DeclaringType + "."
             else
                 t.Namespace + ".")
            + t.Name

        let name = name.Substring(0, max 0 (name.IndexOf '`'))
        let args = t.GetGenericArguments() |> Array.map typeName |> String.concat ", "
        $"{name}<{args}>"
    elif t.IsNested then
        typeName t.DeclaringType + "." + t.Name
    else
        t.Namespace + "." + t.Name

let private parameters (ps: ParameterInfo[]) =
    ps
    |> Array.map (fun p ->
        let prefix =
            if p.IsOut then "out "
            elif p.ParameterType.IsByRef && p.IsIn then "in "
            else ""

        let optional = if p.IsOptional then " = ..." else ""
        $"{prefix}{typeName p.ParameterType} {p.Name}{optional}")
    |> String.concat ", "

let private visible (m: MethodBase) =
    m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly

/// One line per public type and member, sorted: what a user of the assembly can name.
let surface (assembly: Assembly) =
    [
        for t in assembly.GetExportedTypes() do
            let kind =
                if t.IsInterface then "interface"
                elif t.IsEnum then "enum"
                elif t.IsValueType then "struct"
                elif typeof<Delegate>.IsAssignableFrom t then "delegate"
                elif t.IsAbstract && t.IsSealed then "static class"
                elif t.IsAbstract then "abstract class"
                elif t.IsSealed then "sealed class"
                else "class"

            let tn = typeName t

            let bases =
                [
                    if
                        not (isNull t.BaseType)
                        && t.BaseType <> typeof<obj>
                        && t.BaseType <> typeof<ValueType>
                        && not t.IsEnum
                    then
                        typeName t.BaseType
                    for i in t.GetInterfaces() do
                        if i.IsPublic || i.IsNestedPublic then
                            typeName i
                ]
                |> List.sort

            yield
                $"{kind} {tn}"
                + (if bases.IsEmpty then
                       ""
                   else
                       " : " + String.concat ", " bases)

            if t.IsEnum then
                for name in Enum.GetNames t do
                    yield $"{tn}.{name}"
            else
                for c in t.GetConstructors flags do
                    if visible c then
                        yield $"{tn}.ctor({parameters (c.GetParameters())})"

                for m in t.GetMethods flags do
                    if visible m && not m.IsSpecialName then
                        let generic =
                            if m.IsGenericMethodDefinition then
                                "<" + (m.GetGenericArguments() |> Array.map _.Name |> String.concat ", ") + ">"
                            else
                                ""

                        let isStatic = if m.IsStatic then "static " else ""

                        yield
                            $"{isStatic}{typeName m.ReturnType} {tn}.{m.Name}{generic}({parameters (m.GetParameters())})"

                for p in t.GetProperties flags do
                    let accessors =
                        [
                            if not (isNull p.GetMethod) && visible p.GetMethod then
                                "get"
                            if not (isNull p.SetMethod) && visible p.SetMethod then
                                (if
                                     p.SetMethod.ReturnParameter.GetRequiredCustomModifiers()
                                     |> Array.exists (fun m -> m.Name = "IsExternalInit")
                                 then
                                     "init"
                                 else
                                     "set")
                        ]

                    if not accessors.IsEmpty then
                        let index = p.GetIndexParameters()
                        let indexer = if index.Length = 0 then "" else $"[{parameters index}]"
                        let accessorList = String.concat "; " accessors
                        yield $"{typeName p.PropertyType} {tn}.{p.Name}{indexer} {{ {accessorList} }}"

                for e in t.GetEvents flags do
                    yield $"event {typeName e.EventHandlerType} {tn}.{e.Name}"

                for f in t.GetFields flags do
                    if f.IsPublic || f.IsFamily then
                        let modifier =
                            if f.IsLiteral then "const "
                            elif f.IsStatic then "static "
                            else ""

                        yield $"{modifier}{typeName f.FieldType} {tn}.{f.Name}"
    ]
    |> List.distinct
    |> List.sort

/// The repository's root: the nearest folder above the test binaries that holds Scipio.sln.
let repositoryRoot () =
    let rec up (dir: DirectoryInfo | null) =
        match dir with
        | null -> failtest "Scipio.sln not found above the test binaries"
        | dir when File.Exists(Path.Combine(dir.FullName, "Scipio.sln")) -> dir.FullName
        | dir -> up dir.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

let private check (project: string) (assembly: Assembly) =
    test $"the public API of {assembly.GetName().Name} matches {project}/PublicAPI.txt" {
        let path = Path.Combine(repositoryRoot (), project, "PublicAPI.txt")
        let actual = surface assembly

        if Environment.GetEnvironmentVariable "SCIPIO_UPDATE_PUBLIC_API" = "1" then
            File.WriteAllLines(path, actual)
            printfn $"wrote {path} ({actual.Length} lines)"
        else
            let expected =
                if File.Exists path then
                    File.ReadAllLines path |> List.ofArray
                else
                    []

            let removed = expected |> List.except actual
            let added = actual |> List.except expected

            if not (removed.IsEmpty && added.IsEmpty) then
                let lines (sign: string) (xs: string list) =
                    xs |> List.map (fun x -> sign + x) |> String.concat "\n"

                failtestf
                    "the public API of %s changed (regenerate with SCIPIO_UPDATE_PUBLIC_API=1 ./test.sh if intended):\n%s\n%s"
                    (assembly.GetName().Name)
                    (lines "- " removed)
                    (lines "+ " added)
    }

let tests =
    testList
        "public API"
        [
            check "src/Scipio.Core.fs" typeof<Scipio.Core.RingKind>.Assembly
            check "src/Scipio.CSharp" typeof<Scipio.Shard>.Assembly
            check "src/Scipio.FSharp" (Assembly.Load "Scipio.FSharp")
            check "src/Scipio.Simulation" (Assembly.Load "Scipio.Simulation")
            check "src/Scipio.Hosting" (Assembly.Load "Scipio.Hosting")
        ]

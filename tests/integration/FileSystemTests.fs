/// FileSystem on a real /tmp: each call does what System.IO sees from outside, kernel errors arrive as the exceptions
/// the API documents (naming the path), a canceled token does nothing, and calls off a shard say so.
module Scipio.Integration.Tests.FileSystemTests

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio.IO
open Scipio.Integration.Tests.Helpers

let private roundTrip =
    test "create a directory, rename a file into it, sync, delete both: System.IO sees each step" {
        withTempDir (fun dir ->
            let sub = Path.Combine(dir, "sub")
            let source = Path.Combine(dir, "a.txt")
            let target = Path.Combine(sub, "b.txt")
            File.WriteAllText(source, "hello")

            let seen =
                runShard (fun () ->
                    task {
                        do! FileSystem.CreateDirectoryAsync sub
                        let made = Directory.Exists sub
                        do! FileSystem.RenameAsync(source, target)
                        let moved = not (File.Exists source) && File.ReadAllText target = "hello"
                        do! FileSystem.SyncDirectoryAsync sub
                        do! FileSystem.SyncDirectoryAsync dir
                        do! FileSystem.DeleteAsync target
                        let deleted = not (File.Exists target)
                        do! FileSystem.DeleteDirectoryAsync sub
                        return made, moved, deleted, Directory.Exists sub
                    })

            let made, moved, deleted, subLeft = seen
            Expect.isTrue made "CreateDirectoryAsync should make the directory"
            Expect.isTrue moved "RenameAsync should move the file with its contents"
            Expect.isTrue deleted "DeleteAsync should remove the file"
            Expect.isFalse subLeft "DeleteDirectoryAsync should remove the directory")
    }

let private relativePaths =
    test "a relative path is resolved against the current directory" {
        withTempDir (fun dir ->
            let previous = Environment.CurrentDirectory
            Environment.CurrentDirectory <- dir

            try
                runShard (fun () ->
                    task {
                        do! FileSystem.CreateDirectoryAsync "rel"
                        let! info = FileSystem.GetInfoAsync "rel"
                        return info.Kind
                    })
                |> fun kind -> Expect.equal kind FileType.Directory "the relative directory was made and stat'ed"

                Expect.isTrue (Directory.Exists(Path.Combine(dir, "rel"))) "it is under the current directory"
            finally
                Environment.CurrentDirectory <- previous)
    }

let private renameReplace =
    test "rename onto an existing file: replaces by default, fails with EEXIST when replace is false" {
        withTempDir (fun dir ->
            let a = Path.Combine(dir, "a")
            let b = Path.Combine(dir, "b")
            let c = Path.Combine(dir, "c")
            File.WriteAllText(a, "A")
            File.WriteAllText(b, "B")
            File.WriteAllText(c, "C")

            let thrown =
                runShard (fun () ->
                    task {
                        let! thrown =
                            thrownByTask (fun () -> task { do! FileSystem.RenameAsync(a, b, replace = false) })

                        do! FileSystem.RenameAsync(c, b)
                        return thrown
                    })

            let e =
                expectExn<Scipio.KernelIOException> "rename without replace onto an existing file" thrown

            Expect.equal e.Errno 17 "EEXIST"
            Expect.stringContains e.Message b "the message names the destination"
            Expect.stringContains e.Message "exists" "the message says it exists"
            Expect.equal (File.ReadAllText a) "A" "the source is untouched"
            Expect.equal (File.ReadAllText b) "C" "the default rename replaced the destination"
            Expect.isFalse (File.Exists c) "the replacing file moved")
    }

let private renameMissing =
    test "rename of a missing file: FileNotFoundException naming it" {
        withTempDir (fun dir ->
            let missing = Path.Combine(dir, "missing")

            let thrown =
                runShard (fun () ->
                    thrownByTask (fun () -> task { do! FileSystem.RenameAsync(missing, Path.Combine(dir, "x")) }))

            let e = expectExn<FileNotFoundException> "rename of a missing file" thrown
            Expect.equal e.FileName missing "FileName is the missing source")
    }

let private infoOfFile =
    test "GetInfoAsync of a file: length, kind, mode, times, inode and links agree with System.IO" {
        withTempDir (fun dir ->
            let path = Path.Combine(dir, "f.bin")
            File.WriteAllBytes(path, Array.zeroCreate 12345)
            File.SetUnixFileMode(path, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.GroupRead)
            let info = runShard (fun () -> task { return! FileSystem.GetInfoAsync path })
            let fi = FileInfo path

            Expect.equal info.Length 12345L "Length"
            Expect.equal info.Kind FileType.File "Kind"
            Expect.equal info.Mode (File.GetUnixFileMode path) "Mode"
            let written = DateTimeOffset(File.GetLastWriteTimeUtc path)

            Expect.isLessThan
                (abs (info.LastWriteTime - written).TotalMilliseconds)
                1.0
                "LastWriteTime is the file's mtime"

            Expect.equal info.LastWriteTime.Offset TimeSpan.Zero "times are UTC"

            Expect.isLessThan
                (abs (info.LastAccessTime - DateTimeOffset(fi.LastAccessTimeUtc)).TotalMilliseconds)
                1.0
                "LastAccessTime"

            Expect.isGreaterThanOrEqual info.ChangeTime info.LastWriteTime "the chmod came after the write"

            if info.CreationTime.HasValue then
                Expect.isLessThanOrEqual info.CreationTime.Value info.LastWriteTime "created before written"

            Expect.isGreaterThan info.BlockSize 0 "BlockSize"
            Expect.isGreaterThan info.Inode 0L "Inode"
            Expect.equal info.LinkCount 1L "one link"
            Expect.equal info.OwnerId (int (Helpers.Libc.getuid ())) "the file is ours")
    }

let private infoOfOthers =
    test "GetInfoAsync of a directory, a FIFO, a symbolic link (not followed) and a hard link" {
        withTempDir (fun dir ->
            let fifo = Path.Combine(dir, "fifo")
            Libc.makeFifo fifo
            let file = Path.Combine(dir, "file")
            File.WriteAllText(file, "x")
            let link = Path.Combine(dir, "link")
            File.CreateSymbolicLink(link, file) |> ignore

            let dirInfo, fifoInfo, linkInfo, fileInfo =
                runShard (fun () ->
                    task {
                        let! d = FileSystem.GetInfoAsync dir
                        let! f = FileSystem.GetInfoAsync fifo
                        let! l = FileSystem.GetInfoAsync link
                        let! x = FileSystem.GetInfoAsync file
                        return d, f, l, x
                    })

            Expect.equal dirInfo.Kind FileType.Directory "a directory"
            Expect.equal fifoInfo.Kind FileType.Fifo "a FIFO (stat'ed, not opened: it does not block)"
            Expect.equal fifoInfo.Mode (File.GetUnixFileMode fifo) "the FIFO's mode"
            Expect.equal linkInfo.Kind FileType.SymbolicLink "the link itself, not its target"
            Expect.equal linkInfo.Length (int64 file.Length) "a link's length is that of the path it holds"
            Expect.notEqual linkInfo.Inode fileInfo.Inode "the link is its own inode"

            Expect.equal
                (dirInfo.DeviceMajor, dirInfo.DeviceMinor)
                (fileInfo.DeviceMajor, fileInfo.DeviceMinor)
                "one device")
    }

let private infoOfMissing =
    test "GetInfoAsync of a missing path: FileNotFoundException naming it" {
        withTempDir (fun dir ->
            let missing = Path.Combine(dir, "nope")

            let thrown =
                runShard (fun () -> thrownByTask (fun () -> task { return! FileSystem.GetInfoAsync missing }))

            let e = expectExn<FileNotFoundException> "GetInfoAsync of a missing path" thrown
            Expect.equal e.FileName missing "FileName"
            Expect.stringContains e.Message missing "the message names the path")
    }

let private directoryErrors =
    test
        "directory errors: create twice (EEXIST), delete a non-empty one (ENOTEMPTY), delete a file as a directory and a directory as a file" {
        withTempDir (fun dir ->
            let sub = Path.Combine(dir, "d")
            let full = Path.Combine(dir, "full")
            Directory.CreateDirectory full |> ignore
            File.WriteAllText(Path.Combine(full, "inside"), "x")
            let file = Path.Combine(dir, "plain")
            File.WriteAllText(file, "x")

            let twice, notEmpty, fileAsDir, dirAsFile, missingFile =
                runShard (fun () ->
                    task {
                        do! FileSystem.CreateDirectoryAsync sub

                        let! twice =
                            thrownByTask (fun () -> task { do! FileSystem.CreateDirectoryAsync sub })

                        let! notEmpty =
                            thrownByTask (fun () -> task { do! FileSystem.DeleteDirectoryAsync full })

                        let! fileAsDir =
                            thrownByTask (fun () -> task { do! FileSystem.DeleteDirectoryAsync file })

                        let! dirAsFile = thrownByTask (fun () -> task { do! FileSystem.DeleteAsync sub })

                        let! missing =
                            thrownByTask (fun () -> task { do! FileSystem.DeleteAsync(Path.Combine(dir, "gone")) })

                        return twice, notEmpty, fileAsDir, dirAsFile, missing
                    })

            let e = expectExn<Scipio.KernelIOException> "CreateDirectoryAsync twice" twice
            Expect.equal e.Errno 17 "EEXIST"
            Expect.stringContains e.Message "already exists" "the message says it exists"
            Expect.stringContains e.Message sub "and names it"

            let e =
                expectExn<IOException> "DeleteDirectoryAsync of a non-empty directory" notEmpty

            Expect.stringContains e.Message "not empty" "the message says it is not empty"
            Expect.stringContains e.Message full "and names it"
            Expect.isTrue (File.Exists(Path.Combine(full, "inside"))) "nothing in it was deleted"

            let e =
                expectExn<DirectoryNotFoundException> "DeleteDirectoryAsync of a file (ENOTDIR)" fileAsDir

            Expect.stringContains e.Message file "names the file"
            Expect.isTrue (File.Exists file) "the file is still there"

            let e =
                expectExn<Scipio.KernelIOException> "DeleteAsync of a directory (EISDIR)" dirAsFile

            Expect.equal e.Errno 21 "EISDIR"
            Expect.isTrue (Directory.Exists sub) "the directory is still there"

            expectExn<FileNotFoundException> "DeleteAsync of a missing file" missingFile
            |> ignore)
    }

let private syncErrors =
    test
        "SyncDirectoryAsync of a missing directory: FileNotFoundException naming it; of a file: DirectoryNotFoundException" {
        withTempDir (fun dir ->
            let missing = Path.Combine(dir, "missing")
            let file = Path.Combine(dir, "file")
            File.WriteAllText(file, "x")

            let ofMissing, ofFile =
                runShard (fun () ->
                    task {
                        let! m = thrownByTask (fun () -> task { do! FileSystem.SyncDirectoryAsync missing })
                        let! f = thrownByTask (fun () -> task { do! FileSystem.SyncDirectoryAsync file })
                        // The shard still works, and no descriptor leaked into a failed state.
                        do! FileSystem.SyncDirectoryAsync dir
                        return m, f
                    })

            let e =
                expectExn<FileNotFoundException> "SyncDirectoryAsync of a missing directory" ofMissing

            Expect.equal e.FileName missing "FileName"
            let e = expectExn<DirectoryNotFoundException> "SyncDirectoryAsync of a file" ofFile
            Expect.stringContains e.Message file "names the path")
    }

let private canceled =
    test "a token canceled before the call: OperationCanceledException and nothing done" {
        withTempDir (fun dir ->
            let a = Path.Combine(dir, "a")
            let d = Path.Combine(dir, "d")
            let newDir = Path.Combine(dir, "new")
            File.WriteAllText(a, "x")
            Directory.CreateDirectory d |> ignore
            use cts = new CancellationTokenSource()
            cts.Cancel()
            let ct = cts.Token

            let results =
                runShard (fun () ->
                    task {
                        let! r =
                            thrownByTask (fun () ->
                                task { do! FileSystem.RenameAsync(a, Path.Combine(dir, "b"), ct) })

                        let! del = thrownByTask (fun () -> task { do! FileSystem.DeleteAsync(a, ct) })

                        let! mk =
                            thrownByTask (fun () -> task { do! FileSystem.CreateDirectoryAsync(newDir, ct) })

                        let! rm =
                            thrownByTask (fun () -> task { do! FileSystem.DeleteDirectoryAsync(d, ct) })

                        let! info = thrownByTask (fun () -> task { return! FileSystem.GetInfoAsync(a, ct) })

                        let! sync =
                            thrownByTask (fun () -> task { do! FileSystem.SyncDirectoryAsync(d, ct) })

                        return
                            [
                                "RenameAsync", r
                                "DeleteAsync", del
                                "CreateDirectoryAsync", mk
                                "DeleteDirectoryAsync", rm
                                "GetInfoAsync", info
                                "SyncDirectoryAsync", sync
                            ]
                    })

            for name, thrown in results do
                expectExn<OperationCanceledException> name thrown |> ignore

            Expect.equal (File.ReadAllText a) "x" "the file was neither renamed nor deleted"
            Expect.isFalse (Directory.Exists newDir) "no directory was created"
            Expect.isTrue (Directory.Exists d) "the directory was not deleted")
    }

let private arguments =
    test "off a shard: InvalidOperationException; a null or empty path: ArgumentException" {
        withTempDir (fun dir ->
            let p = Path.Combine(dir, "x")

            let calls: (string * (unit -> ValueTask)) list =
                [
                    "RenameAsync", (fun () -> FileSystem.RenameAsync(p, p + "2"))
                    "DeleteAsync", (fun () -> FileSystem.DeleteAsync p)
                    "CreateDirectoryAsync", (fun () -> FileSystem.CreateDirectoryAsync p)
                    "DeleteDirectoryAsync", (fun () -> FileSystem.DeleteDirectoryAsync p)
                    "GetInfoAsync",
                    (fun () ->
                        FileSystem.GetInfoAsync p |> ignore
                        ValueTask.CompletedTask)
                    "SyncDirectoryAsync", (fun () -> FileSystem.SyncDirectoryAsync dir)
                ]

            for name, call in calls do
                let e = expectExn<InvalidOperationException> $"{name} off a shard" (thrownBy call)
                Expect.stringContains e.Message $"FileSystem.{name}" "the message names the call"

            Expect.isFalse (Directory.Exists p) "nothing was done"

            let badPaths =
                runShard (fun () ->
                    task {
                        return
                            [
                                thrownBy (fun () -> FileSystem.DeleteAsync "")
                                thrownBy (fun () -> FileSystem.CreateDirectoryAsync(Unchecked.defaultof<string>))
                                thrownBy (fun () -> FileSystem.RenameAsync("", p))
                                thrownBy (fun () -> FileSystem.RenameAsync(p, Unchecked.defaultof<string>))
                                thrownBy (fun () -> FileSystem.GetInfoAsync "")
                                thrownBy (fun () -> FileSystem.SyncDirectoryAsync(Unchecked.defaultof<string>))
                            ]
                    })

            for thrown in badPaths do
                expectExn<ArgumentException> "a null or empty path" thrown |> ignore)
    }

let tests =
    testSequenced
    <| testList
        "FileSystem"
        [
            roundTrip
            relativePaths
            renameReplace
            renameMissing
            infoOfFile
            infoOfOthers
            infoOfMissing
            directoryErrors
            syncErrors
            canceled
            arguments
        ]

/// io_uring unavailable: a thread installs a seccomp filter that fails io_uring_setup (as Docker's default profile
/// does), then starts a shard. The filter is inherited by the shard thread the runtime creates from it, so the
/// shard cannot set up its rings, and Shard.Run must say which error and how to fix it. The filter only ever
/// applies to the dedicated thread and the shard thread it creates, never to the test runner's threads.
module Scipio.Integration.Tests.UnavailableTests

open System
open System.IO
open System.Net
open System.Runtime.InteropServices
open System.Threading.Tasks
open Expecto
open Scipio
open Scipio.IO
open Scipio.Net
open Scipio.Integration.Tests.Helpers

// include/uapi/linux/prctl.h, seccomp.h, filter.h, bpf_common.h; arch/x86/entry/syscalls/syscall_64.tbl
let private PR_SET_SECCOMP = 22
let private PR_SET_NO_NEW_PRIVS = 38
let private SECCOMP_MODE_FILTER = 2un
let private SYS_io_uring_setup = 425u
let private BPF_LD_W_ABS = 0x20us // BPF_LD | BPF_W | BPF_ABS
let private BPF_JMP_JEQ_K = 0x15us // BPF_JMP | BPF_JEQ | BPF_K
let private BPF_RET_K = 0x06us // BPF_RET | BPF_K
let private SECCOMP_RET_ERRNO = 0x00050000u
let private SECCOMP_RET_ALLOW = 0x7fff0000u

/// Installs on the calling thread a seccomp filter that fails io_uring_setup with `errno` and allows every other
/// system call. Irreversible for this thread and the threads it creates afterwards.
let private denyIoUringSetup (errno: int) =
    // struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }: 8 bytes each.
    let program =
        [|
            BPF_LD_W_ABS, 0uy, 0uy, 0u // A = seccomp_data.nr
            BPF_JMP_JEQ_K, 0uy, 1uy, SYS_io_uring_setup // A == io_uring_setup ? next : skip one
            BPF_RET_K, 0uy, 0uy, SECCOMP_RET_ERRNO ||| uint errno
            BPF_RET_K, 0uy, 0uy, SECCOMP_RET_ALLOW
        |]

    let filter = Marshal.AllocHGlobal(program.Length * 8)
    // struct sock_fprog { unsigned short len; /* 6 bytes padding */ struct sock_filter *filter; }: 16 bytes.
    let fprog = Marshal.AllocHGlobal 16

    try
        program
        |> Array.iteri (fun i (code, jt, jf, k) ->
            let at = filter + nativeint (i * 8)
            Marshal.WriteInt16(at, int16 code)
            Marshal.WriteByte(at + 2n, jt)
            Marshal.WriteByte(at + 3n, jf)
            Marshal.WriteInt32(at + 4n, int k))

        Marshal.WriteInt64(fprog, 0L)
        Marshal.WriteInt16(fprog, int16 program.Length)
        Marshal.WriteIntPtr(fprog + 8n, filter)

        if Libc.prctl (PR_SET_NO_NEW_PRIVS, 1un, 0un, 0un, 0un) <> 0 then
            failtestf "prctl(PR_SET_NO_NEW_PRIVS) failed: errno %d" (Marshal.GetLastPInvokeError())

        if
            Libc.prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, unativeint fprog, 0un, 0un)
            <> 0
        then
            failtestf "prctl(PR_SET_SECCOMP) failed: errno %d" (Marshal.GetLastPInvokeError())
    finally
        // The kernel copied the program when it installed it.
        Marshal.FreeHGlobal fprog
        Marshal.FreeHGlobal filter

let private refused (errnoName: string) (errno: int) (mentions: string list) =
    test
        $"io_uring_setup failing with %s{errnoName}: Shard.Run with ShardBackend.IoUring throws IoUringUnavailableException that says so" {
        let thrown =
            thrownBy (fun () ->
                onNewThread "seccomp-restricted Shard.Run caller" (fun () ->
                    denyIoUringSetup errno

                    Shard.Run(
                        Func<Task<int>>(fun () -> Task.FromResult 0),
                        ShardOptions(Backend = ShardBackend.IoUring)
                    )))

        let e =
            expectExactExn<IoUringUnavailableException> $"Shard.Run with io_uring_setup denied (%s{errnoName})" thrown

        Expect.equal e.Errno errno $"IoUringUnavailableException.Errno should be %s{errnoName}"

        for word in mentions do
            Expect.stringContains e.Message word $"the message should mention %s{word}"

        // The restriction stayed with the threads that had it: a shard started from here works.
        Expect.equal (runShard (fun () -> task { return 5 })) 5 "a shard started from the test runner still works"
    }

/// On a shard: a file written and read back, and a TCP echo through a listener of its own.
let private fileAndEcho (dir: string) =
    task {
        let! file = BufferedFile.CreateAsync(Path.Combine(dir, "auto.bin"))
        do! file.WriteAtAsync(ReadOnlyMemory "through epoll"B, 0L)
        let back = Array.zeroCreate<byte> 13
        let! n = file.ReadAtAsync(Memory back, 0L)
        do! file.DisposeAsync()
        let listener = TcpListener.Bind(IPEndPoint(IPAddress.Loopback, 0))

        let server =
            Shard.Spawn(fun () ->
                task {
                    let! connection = listener.AcceptAsync()
                    let buffer = Array.zeroCreate<byte> 16
                    let! got = connection.ReadAsync(Memory buffer)
                    do! connection.WriteAsync(ReadOnlyMemory(buffer, 0, got))
                    do! connection.DisposeAsync()
                    return got
                })

        let! client = TcpStream.ConnectAsync(listener.LocalEndPoint)
        do! client.WriteAsync(ReadOnlyMemory "ping"B)
        let echoed = Array.zeroCreate<byte> 4
        let! m = client.ReadAsync(Memory echoed)
        let! _ = server
        do! client.DisposeAsync()
        do! listener.DisposeAsync()

        return
            (Text.Encoding.ASCII.GetString(back, 0, n), Text.Encoding.ASCII.GetString(echoed, 0, m), Shard.Stats.Backend)
    }

let private fallsBack =
    test
        "io_uring_setup failing with EPERM: ShardBackend.Auto runs on epoll (a file, a TCP echo, a pool of 2) and says why on stderr" {
        withTempDir (fun dir ->
            let notice = new StringWriter()
            let stderr = Console.Error
            Scipio.Runtime.BackendChoice.ResetNotice()
            Console.SetError notice

            let lone, pooled =
                try
                    onNewThread "seccomp-restricted Auto caller" (fun () ->
                        denyIoUringSetup 1
                        let auto = ShardOptions(Backend = ShardBackend.Auto)
                        let lone = Shard.Run(Func<Task<_>>(fun () -> fileAndEcho dir), auto)
                        let pool = ShardPool.Start(ShardPoolOptions(Shards = 2, PerShard = auto))

                        try
                            let pooled =
                                pool.RunOnAll(fun () -> task { return Shard.Id, Shard.Stats.Backend })
                                |> awaitBounded "RunOnAll on the fallen-back pool" shardTimeout

                            lone, pooled
                        finally
                            task { do! pool.DisposeAsync() }
                            |> awaitBounded "the pool's disposal" shardTimeout)
                finally
                    Console.SetError stderr

            let text, echoed, backend = lone
            Expect.equal text "through epoll" "the file round trip"
            Expect.equal echoed "ping" "the TCP echo"
            Expect.equal backend ShardBackend.Epoll "Shard.Stats.Backend says epoll"

            Expect.equal
                (pooled |> Array.sort)
                [| 0, ShardBackend.Epoll; 1, ShardBackend.Epoll |]
                "both shards of the pool run, on epoll"

            let said = notice.ToString()
            Expect.stringContains said "epoll backend" "the notice says which backend"
            Expect.stringContains said "EPERM" "and names the cause"

            Expect.equal
                (said.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length)
                1
                "one line, once per process")
    }

let tests =
    testSequenced
    <| testList
        "io_uring unavailable"
        [
            refused "EPERM" 1 [ "EPERM"; "seccomp" ]
            refused "ENOSYS" 38 [ "ENOSYS"; "kernel" ]
            fallsBack
        ]

/// io_uring unavailable: a thread installs a seccomp filter that fails io_uring_setup (as Docker's default profile
/// does), then starts a shard. The filter is inherited by the shard thread the runtime creates from it, so the
/// shard cannot set up its rings, and Shard.Run must say which error and how to fix it. The filter only ever
/// applies to the dedicated thread and the shard thread it creates, never to the test runner's threads.
module Scipio.Integration.Tests.UnavailableTests

open System
open System.Runtime.InteropServices
open System.Threading.Tasks
open Expecto
open Scipio
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

        if Libc.prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, unativeint fprog, 0un, 0un) <> 0 then
            failtestf "prctl(PR_SET_SECCOMP) failed: errno %d" (Marshal.GetLastPInvokeError())
    finally
        // The kernel copied the program when it installed it.
        Marshal.FreeHGlobal fprog
        Marshal.FreeHGlobal filter

let private refused (errnoName: string) (errno: int) (mentions: string list) =
    test $"io_uring_setup failing with %s{errnoName}: Shard.Run throws IoUringUnavailableException that says so" {
        let thrown =
            thrownBy (fun () ->
                onNewThread "seccomp-restricted Shard.Run caller" (fun () ->
                    denyIoUringSetup errno
                    Shard.Run(Func<Task<int>>(fun () -> Task.FromResult 0))))

        let e =
            expectExactExn<IoUringUnavailableException> $"Shard.Run with io_uring_setup denied (%s{errnoName})" thrown

        Expect.equal e.Errno errno $"IoUringUnavailableException.Errno should be %s{errnoName}"

        for word in mentions do
            Expect.stringContains e.Message word $"the message should mention %s{word}"

        // The restriction stayed with the threads that had it: a shard started from here works.
        Expect.equal (runShard (fun () -> task { return 5 })) 5 "a shard started from the test runner still works"
    }

let tests =
    testSequenced
    <| testList "io_uring unavailable" [
        refused "EPERM" 1 [ "EPERM"; "seccomp" ]
        refused "ENOSYS" 38 [ "ENOSYS"; "kernel" ]
    ]

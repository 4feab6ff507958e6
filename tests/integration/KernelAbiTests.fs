/// The kernel ABI: the interop structs have the sizes and offsets of include/uapi/linux/io_uring.h and
/// include/uapi/linux/stat.h (values from `offsetof` on this machine's headers), and rings set up on this kernel
/// get the flags the design asks for.
module Scipio.Integration.Tests.KernelAbiTests

open System
open System.Runtime.CompilerServices
open System.Runtime.InteropServices
open Expecto
open Scipio
open Scipio.Interop
open Scipio.Integration.Tests.Helpers

/// Checks the marshalled and managed size of 'T and the offset of each named field against the uapi values.
let private layout<'T when 'T: struct and 'T: (new: unit -> 'T) and 'T :> ValueType>
    (uapiName: string)
    (size: int)
    (fields: (string * int) list)
    =
    test $"%s{typeof<'T>.Name} matches %s{uapiName}" {
        let problems =
            [
                let marshalled = Marshal.SizeOf<'T>()

                if marshalled <> size then
                    $"Marshal.SizeOf = %d{marshalled}, the kernel's sizeof = %d{size}"

                let managed = Unsafe.SizeOf<'T>()

                if managed <> size then
                    $"Unsafe.SizeOf = %d{managed}, the kernel's sizeof = %d{size}"

                for name, expected in fields do
                    let actual =
                        try
                            int (Marshal.OffsetOf<'T> name)
                        with :? ArgumentException ->
                            -1

                    if actual <> expected then
                        $"%s{name} at %d{actual}, the kernel's offset is %d{expected}"
            ]

        if not problems.IsEmpty then
            failtestf "%s does not match %s: %s" typeof<'T>.Name uapiName (String.concat "; " problems)
    }

let private structs =
    testList
        "struct layout"
        [
            layout<IoUringParams>
                "struct io_uring_params"
                120
                [
                    "SqEntries", 0
                    "CqEntries", 4
                    "Flags", 8
                    "SqThreadCpu", 12
                    "SqThreadIdle", 16
                    "Features", 20
                    "WqFd", 24
                    "SqOff", 40
                    "CqOff", 80
                ]
            layout<IoUringSqe>
                "struct io_uring_sqe"
                64
                [
                    "Opcode", 0
                    "Flags", 1
                    "IoPrio", 2
                    "Fd", 4
                    "Off", 8
                    "Addr", 16
                    "Len", 24
                    "OpFlags", 28
                    "UserData", 32
                    "BufIndex", 40
                    "Personality", 42
                    "FileIndex", 44
                    "Addr3", 48
                ]
            layout<IoUringCqe> "struct io_uring_cqe" 16 [ "UserData", 0; "Res", 8; "Flags", 12 ]
            layout<RsrcRegister>
                "struct io_uring_rsrc_register"
                32
                [ "Nr", 0; "Flags", 4; "Resv2", 8; "Data", 16; "Tags", 24 ]
            layout<RsrcUpdate2>
                "struct io_uring_rsrc_update2"
                32
                [ "Offset", 0; "Resv", 4; "Data", 8; "Tags", 16; "Nr", 24; "Resv2", 28 ]
            layout<IoVec> "struct iovec" 16 [ "Base", 0; "Length", 8 ]
            layout<SqRingOffsets>
                "struct io_sqring_offsets"
                40
                [
                    "Head", 0
                    "Tail", 4
                    "RingMask", 8
                    "RingEntries", 12
                    "Flags", 16
                    "Dropped", 20
                    "Array", 24
                    "UserAddr", 32
                ]
            layout<CqRingOffsets>
                "struct io_cqring_offsets"
                40
                [
                    "Head", 0
                    "Tail", 4
                    "RingMask", 8
                    "RingEntries", 12
                    "Overflow", 16
                    "Cqes", 20
                    "Flags", 24
                    "UserAddr", 32
                ]
            layout<KernelTimespec> "struct __kernel_timespec" 16 [ "Sec", 0; "Nsec", 8 ]
            layout<GetEventsArg> "struct io_uring_getevents_arg" 24 [ "Sigmask", 0; "SigmaskSize", 8; "Ts", 16 ]
            layout<ProbeHeader> "struct io_uring_probe" 16 [ "LastOp", 0; "OpsLen", 1 ]
            layout<ProbeOp> "struct io_uring_probe_op" 8 [ "Op", 0; "Flags", 2 ]
            layout<Statx>
                "struct statx"
                256
                [
                    "Mask", 0
                    "BlockSize", 4
                    "Mode", 28
                    "Inode", 32
                    "Size", 40
                    "Blocks", 48
                    "MtimeSec", 112
                    "MtimeNsec", 120
                    "DevMajor", 136
                    "DevMinor", 140
                    "LinkCount", 16
                    "Uid", 20
                    "Gid", 24
                    "AtimeSec", 64
                    "AtimeNsec", 72
                    "BtimeSec", 80
                    "BtimeNsec", 88
                    "CtimeSec", 96
                    "CtimeNsec", 104
                    "RdevMajor", 128
                    "RdevMinor", 132
                ]
        ]

let private constants =
    test "setup flags and opcodes have the kernel's values" {
        // include/uapi/linux/io_uring.h
        Expect.equal (uint SetupFlags.CoopTaskRun) 0x100u "IORING_SETUP_COOP_TASKRUN"
        Expect.equal (uint SetupFlags.TaskRunFlag) 0x200u "IORING_SETUP_TASKRUN_FLAG"
        Expect.equal (uint SetupFlags.SingleIssuer) 0x1000u "IORING_SETUP_SINGLE_ISSUER"
        Expect.equal (uint SetupFlags.DeferTaskRun) 0x2000u "IORING_SETUP_DEFER_TASKRUN"
        Expect.equal (uint SetupFlags.NoSqArray) 0x10000u "IORING_SETUP_NO_SQARRAY"
        Expect.equal (byte Opcode.OpenAt) 18uy "IORING_OP_OPENAT"
        Expect.equal (byte Opcode.Statx) 21uy "IORING_OP_STATX"
        Expect.equal (byte Opcode.Read) 22uy "IORING_OP_READ"
        Expect.equal (byte Opcode.Write) 23uy "IORING_OP_WRITE"
        Expect.equal (byte Opcode.ReadFixed) 4uy "IORING_OP_READ_FIXED"
        Expect.equal (byte Opcode.WriteFixed) 5uy "IORING_OP_WRITE_FIXED"
        Expect.equal FixedBufferAbi.UnregisterBuffers 1u "IORING_UNREGISTER_BUFFERS"
        Expect.equal FixedBufferAbi.RegisterBuffers2 15u "IORING_REGISTER_BUFFERS2"
        Expect.equal FixedBufferAbi.RegisterBuffersUpdate 16u "IORING_REGISTER_BUFFERS_UPDATE"
        Expect.equal FixedBufferAbi.RsrcRegisterSparse 1u "IORING_RSRC_REGISTER_SPARSE"
        Expect.equal (byte Opcode.RenameAt) 35uy "IORING_OP_RENAMEAT"
        Expect.equal (byte Opcode.LinkAt) 39uy "IORING_OP_LINKAT"
        Expect.equal (byte Opcode.MsgRing) 40uy "IORING_OP_MSG_RING"
        Expect.equal (byte Opcode.UnlinkAt) 36uy "IORING_OP_UNLINKAT"
        Expect.equal (byte Opcode.MkdirAt) 37uy "IORING_OP_MKDIRAT"
        Expect.equal Statx.MaskBtime 0x800u "STATX_BTIME"
        Expect.equal Libc.AtRemoveDir 0x200 "AT_REMOVEDIR"
        Expect.equal Libc.RenameNoReplace 1u "RENAME_NOREPLACE"
        Expect.equal (uint SetupFlags.CqSize) 8u "IORING_SETUP_CQSIZE"
        Expect.equal IoUringConst.TimeoutMultishot 64u "IORING_TIMEOUT_MULTISHOT"
        Expect.equal IoUringConst.AsyncCancelFd 2u "IORING_ASYNC_CANCEL_FD"
        Expect.equal IoUringConst.AsyncCancelAny 4u "IORING_ASYNC_CANCEL_ANY"
        Expect.equal IoUringConst.PollAddMulti 1u "IORING_POLL_ADD_MULTI"
    }

let private rings =
    testSequenced
    <| testList
        "rings on this kernel"
        [
            test "a main ring gets SINGLE_ISSUER and DEFER_TASKRUN, and its probe knows READ" {
                use ring = Scipio.Ring.Ring.Create(Scipio.Ring.RingRole.Main, 8u)

                Expect.isTrue
                    (ring.Flags.HasFlag SetupFlags.SingleIssuer)
                    $"the main ring should have SINGLE_ISSUER on this kernel, got {ring.Flags}"

                Expect.isTrue
                    (ring.Flags.HasFlag SetupFlags.DeferTaskRun)
                    $"the main ring should have DEFER_TASKRUN on this kernel, got {ring.Flags}"

                Expect.equal ring.SqEntries 8u "SQ entries as asked"
                Expect.equal ring.CqEntries 1024u "the CQ is sized with CQSIZE: 16 × the SQ, at least 1024"
                Expect.isTrue (ring.Features.HasFlag RingFeatures.NoDrop) "the kernel keeps overflowing CQEs (NODROP)"
                Expect.isTrue (ring.Supports Opcode.Read) "the probe should report IORING_OP_READ as supported"
                Expect.isTrue (ring.Supports Opcode.Statx) "the probe should report IORING_OP_STATX as supported"
            }

            test "a latency ring has neither COOP_TASKRUN nor DEFER_TASKRUN (completions must show while code runs)" {
                use ring = Scipio.Ring.Ring.Create(Scipio.Ring.RingRole.Latency, 8u)

                Expect.isFalse
                    (ring.Flags.HasFlag SetupFlags.CoopTaskRun)
                    $"the latency ring must not have COOP_TASKRUN, got {ring.Flags}"

                Expect.isFalse
                    (ring.Flags.HasFlag SetupFlags.DeferTaskRun)
                    $"the latency ring must not have DEFER_TASKRUN, got {ring.Flags}"
            }

            test "a shard's Stats report the main ring's flags" {
                requireIoUring "the rings' setup flags"

                let main, latency =
                    runShard (fun () -> task { return Shard.Stats.Main.SetupFlags, Shard.Stats.Latency.SetupFlags })

                Expect.stringContains main "DeferTaskRun" "Stats.Main.SetupFlags"
                Expect.stringContains main "SingleIssuer" "Stats.Main.SetupFlags"

                Expect.isFalse
                    (latency.Contains "DeferTaskRun")
                    $"Stats.Latency.SetupFlags has DeferTaskRun: %s{latency}"

                Expect.isFalse (latency.Contains "CoopTaskRun") $"Stats.Latency.SetupFlags has CoopTaskRun: %s{latency}"
            }
        ]

let tests = testList "kernel ABI" [ structs; constants; rings ]

namespace Scipio.Core

/// The three rings of a shard.
[<Struct; RequireQualifiedAccess>]
type RingKind =
    /// Most operations; the ring the shard blocks on when it parks.
    | Main
    /// Operations of latency-sensitive task queues, and the preemption timer: any completion here makes
    /// NeedPreempt true.
    | Latency
    /// IORING_SETUP_IOPOLL: O_DIRECT reads and writes on devices that complete by polling (NVMe).
    | Poll

/// What the shard knows about whether a block device completes I/O by polling.
[<Struct; RequireQualifiedAccess>]
type PollSupport =
    /// No sysfs answer (no block device behind the file, or no io_poll attribute): try the poll ring; the first
    /// EOPNOTSUPP decides.
    | Unknown
    /// /sys/block/<dev>/queue/io_poll is 1.
    | Polls
    /// io_poll is 0, or a polled operation failed with EOPNOTSUPP: the device's I/O goes to the main ring for good.
    | DoesNotPoll

/// Which ring an operation goes to, and what a poll-ring completion teaches about its device.
[<RequireQualifiedAccess>]
module Routing =
    /// errno of a polled operation on a device (or file system) that cannot poll.
    [<Literal>]
    let EOPNOTSUPP = 95

    /// The poll support sysfs reports: io_poll's text ("1", "0"), or null when there is none to read.
    let ofSysfs (ioPoll: string | null) =
        match ioPoll with
        | null -> PollSupport.Unknown
        | text when text.Trim() = "0" -> PollSupport.DoesNotPoll
        | text when text.Trim() = "1" -> PollSupport.Polls
        | _ -> PollSupport.Unknown

    /// The ring for an operation: O_DIRECT I/O on a device that may poll goes to the poll ring; otherwise an
    /// operation of a latency-sensitive queue goes to the latency ring; everything else to the main ring.
    let route (directIo: bool) (device: PollSupport) (latency: LatencyClass) =
        if directIo && device <> PollSupport.DoesNotPoll then
            RingKind.Poll
        elif LatencyClass.matters latency then
            RingKind.Latency
        else
            RingKind.Main

    /// The ring for an operation that may pick its buffer from the main ring's provided buffers (a socket receive):
    /// the main ring when it does, whatever its queue — the buffers are registered there only, and its CQEs serve
    /// whichever queue reads next, so the latency ring has no claim on them; `route` otherwise.
    let routeSelecting (selectsBuffer: bool) (directIo: bool) (device: PollSupport) (latency: LatencyClass) =
        if selectsBuffer then
            RingKind.Main
        else
            route directIo device latency

    /// A completion `res` arrived on the poll ring for a device with `device` support. EOPNOTSUPP: the device
    /// cannot poll — the operation must go again, elsewhere, and so must the device's I/O from now on.
    /// Returns the device's new support and whether to resubmit the operation.
    let onPollCompletion (res: int) (device: PollSupport) =
        if res = -EOPNOTSUPP then
            struct (PollSupport.DoesNotPoll, true)
        else
            struct (device, false)

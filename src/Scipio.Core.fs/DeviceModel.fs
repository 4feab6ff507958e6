namespace Scipio.Core

/// What the I/O scheduler knows of a storage device: its capacity in each direction, measured once (fio, or the
/// shell's own probe) and handed in. Small random I/O is bounded by IOPS, large sequential I/O by bandwidth; the cost
/// model below takes whichever bound a request hits first.
type DeviceModel =
    {
        /// 4 KiB random reads per second at full depth (the device's peak, e.g. 98k at QD128 on the test VM).
        ReadIops: int64
        /// 4 KiB random writes per second at full depth.
        WriteIops: int64
        /// Large sequential read bandwidth, bytes per second.
        ReadBandwidth: int64
        /// Large sequential write bandwidth, bytes per second.
        WriteBandwidth: int64
        /// Unloaded latency of one 4 KiB read at QD1, nanoseconds (e.g. 45–55 µs on the test VM). At least
        /// 1 / ReadIops on any real device (QD1 cannot beat the peak); the scheduler uses the larger of the two.
        ReadLatencyNs: int64
    }

/// Functions over DeviceModel. F# compiles this module as `DeviceModelModule` beside the type of the same name.
[<RequireQualifiedAccess>]
module DeviceModel =
    /// True when every field is positive: a model with a zero rate would make every request cost forever.
    let isValid (model: DeviceModel) =
        model.ReadIops > 0L
        && model.WriteIops > 0L
        && model.ReadBandwidth > 0L
        && model.WriteBandwidth > 0L
        && model.ReadLatencyNs > 0L

/// The cost of a request: how much of the device's capacity it uses, in device-nanoseconds — the time the whole
/// device would be busy with it. A device serves at most one second of cost per second, whatever the mix, which is
/// what lets reads and writes, small and large, share one token bucket and one virtual time.
[<RequireQualifiedAccess>]
module IoCost =
    /// Nanoseconds per second.
    [<Literal>]
    let private NanosPerSecond = 1_000_000_000.0

    /// Cost of one request of `bytes` in the given direction: max(1 / iops, bytes / bandwidth) seconds, in
    /// nanoseconds, at least 1. A 4 KiB random read costs 1/ReadIops (the IOPS bound); a 1 MiB read costs
    /// 1 MiB / ReadBandwidth (the bandwidth bound); in between, whichever is larger — a request is never cheaper than
    /// the per-request overhead nor than moving its bytes. (Random reads of 16–64 KiB fall between the two bounds on
    /// real devices; the max is the simple, slightly optimistic estimate.) Requires a valid model.
    let ofRequest (model: DeviceModel) (isWrite: bool) (bytes: int64) =
        let iops, bandwidth =
            if isWrite then
                model.WriteIops, model.WriteBandwidth
            else
                model.ReadIops, model.ReadBandwidth

        let perRequest = NanosPerSecond / float iops
        let transfer = float (max 0L bytes) * NanosPerSecond / float bandwidth
        let cost = ceil (max perRequest transfer)
        // Clamp: a request of petabytes on a slow device must not wrap around.
        if cost >= 4.0e18 then
            4_000_000_000_000_000_000L
        else
            max 1L (int64 cost)

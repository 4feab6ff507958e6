/// What every area of the suite shares: running a shard with a time bound, catching exceptions on and off a
/// shard, temporary directories, and the few libc calls the tests make to check the runtime from outside.
module Scipio.Integration.Tests.Helpers

open System
open System.IO
open System.Runtime.InteropServices
open System.Threading
open System.Threading.Tasks
open Expecto
open Scipio

/// The longest any shard (or helper thread) in this suite may run before its test fails.
let shardTimeout = TimeSpan.FromSeconds 30.0

/// The backend this run of the suite starts shards on: ./test.sh runs the suite twice, the second time with
/// SCIPIO_BACKEND=epoll (ShardOptions.Backend's default follows it).
let onEpoll = ShardOptions().Backend = ShardBackend.Epoll

/// Skips, saying why, a test of something only the io_uring backend has (its rings, registered buffers, CQ sizes).
let requireIoUring (what: string) =
    if onEpoll then
        // Expecto counts the test ignored without printing why at its default verbosity: say it here.
        printfn "skipped, io_uring only (this run is SCIPIO_BACKEND=epoll): %s" what
        skiptestf "io_uring only (this run is SCIPIO_BACKEND=epoll): %s" what

/// Waits for `task` at most `timeout`: fails the test when it has not finished, otherwise returns its result or
/// rethrows its exception with its own type (as Shard.Run does).
let awaitBounded (what: string) (timeout: TimeSpan) (task: Task<'T>) : 'T =
    let finished =
        try
            task.Wait timeout
        with :? AggregateException ->
            true

    if not finished then
        failtestf "%s did not finish within %O: the runtime hung (or the test's own bound is too tight)" what timeout

    task.GetAwaiter().GetResult()

/// Runs `work` on shard `shard` of `pool` and waits for its result, at most `shardTimeout`.
let submit (pool: ShardPool) (shard: int) (work: unit -> Task<'T>) : 'T =
    pool.SubmitTo(shard, Func<Task<'T>>(work))
    |> awaitBounded $"a call to shard {shard}" shardTimeout

/// Runs `main` on a new shard started with `options` and returns its result, failing the test if the shard runs
/// longer than `shardTimeout`. Equivalent to Shard.Run, but bounded.
let runShardWith (options: ShardOptions) (main: unit -> Task<'T>) : 'T =
    Shard.Start(Func<Task<'T>>(main), options).Completion
    |> awaitBounded "the shard" shardTimeout

/// `runShardWith` with default options.
let runShard (main: unit -> Task<'T>) : 'T = runShardWith (ShardOptions()) main

/// Runs `f` on a new, dedicated thread (never the test runner's own) and returns what it returns or rethrows what it
/// threw; bounded by `shardTimeout`. Nothing here touches the ThreadPool from the new thread, so a thread that
/// restricts itself (seccomp) passes the restriction on to no thread but the ones it creates itself.
let onNewThread (name: string) (f: unit -> 'T) : 'T =
    let finished = TaskCompletionSource<'T>()

    let thread =
        Thread(
            (fun () ->
                try
                    finished.SetResult(f ())
                with e ->
                    finished.SetException e),
            IsBackground = true,
            Name = name
        )

    thread.Start()
    awaitBounded name shardTimeout finished.Task

/// What `f` threw, if anything.
let thrownBy (f: unit -> 'T) : exn option =
    try
        f () |> ignore
        None
    with e ->
        Some e

/// What the task `f` makes threw, when created or when awaited, if anything. For use on a shard.
let thrownByTask (f: unit -> Task<'T>) : Task<exn option> =
    task {
        try
            let! _ = f ()
            return None
        with e ->
            return Some e
    }

/// Asserts that `thrown` is an 'E (or a subtype) and returns it.
let expectExn<'E when 'E :> exn> (what: string) (thrown: exn option) : 'E =
    match thrown with
    | Some(:? 'E as e) -> e
    | Some e -> failtestf "%s: expected %s, but got %s: %s" what typeof<'E>.FullName (e.GetType().FullName) e.Message
    | None -> failtestf "%s: expected %s, but nothing was thrown" what typeof<'E>.FullName

/// Asserts that `thrown` is exactly an 'E (not a subtype) and returns it.
let expectExactExn<'E when 'E :> exn> (what: string) (thrown: exn option) : 'E =
    let e = expectExn<'E> what thrown

    if e.GetType() <> typeof<'E> then
        failtestf "%s: expected exactly %s, but got the subtype %s" what typeof<'E>.FullName (e.GetType().FullName)

    e

/// Reasons of the tests that are pending or skipped, printed by Main so a skipped test always says why.
let pendingReasons = Collections.Concurrent.ConcurrentQueue<string>()

/// A test that cannot pass until the runtime is fixed: pending (Expecto's ptestCase, so the suite stays green),
/// with its reason printed at the start of every run.
let pendingBecause (reason: string) (name: string) (body: unit -> unit) =
    pendingReasons.Enqueue $"PENDING '%s{name}': %s{reason}"
    ptestCase name body

/// Skips the running test, printing why (Expecto itself shows a skip's reason only in debug output).
let skipBecause (reason: string) : 'T =
    printfn "SKIPPED: %s" reason
    skiptest reason

/// Runs `f` with a fresh temporary directory that is deleted afterwards, whatever happens.
let withTempDir (f: string -> 'T) : 'T =
    let dir = Directory.CreateTempSubdirectory "scipio-int-"

    try
        f dir.FullName
    finally
        dir.Delete true

/// Spawns `work` on the current shard.
let spawn (work: unit -> Task<'T>) : Task<'T> = Shard.Spawn(Func<Task<'T>>(work))

/// Spawns `work` into `queue` on the current shard.
let spawnInto (queue: TaskQueue) (work: unit -> Task<'T>) : Task<'T> =
    Shard.SpawnInto(queue, Func<Task<'T>>(work))

/// Milliseconds as a TimeSpan.
let ms (x: float) = TimeSpan.FromMilliseconds x

/// Busy-waits for `span` without yielding: the shard runs nothing else meanwhile (a slow work item).
let spin (span: TimeSpan) =
    let until =
        Diagnostics.Stopwatch.GetTimestamp()
        + int64 (span.TotalSeconds * float Diagnostics.Stopwatch.Frequency)

    while Diagnostics.Stopwatch.GetTimestamp() < until do
        Thread.SpinWait 20

/// The shard's armed timers (Shard.Stats.PendingTimers): live ones only, since a cancel removes at once.
let pendingTimers () = Shard.Stats.PendingTimers

/// A flag shared by work on one shard (one thread: no synchronization needed).
type Flag = { mutable IsSet: bool }

/// libc, called directly so that the tests check the runtime from outside rather than through its own interop.
module Libc =
    [<DllImport("libc", SetLastError = true)>]
    extern int sched_getcpu()

    [<DllImport("libc", SetLastError = true)>]
    extern int sched_getaffinity(int pid, unativeint cpusetsize, uint64[] mask)

    /// prctl is variadic in C; every argument is passed as a full register here, which is what the kernel reads.
    [<DllImport("libc", SetLastError = true)>]
    extern int prctl(int option, unativeint arg2, unativeint arg3, unativeint arg4, unativeint arg5)

    [<DllImport("libc", SetLastError = true)>]
    extern int mkfifo(string path, uint32 mode)

    /// Makes a FIFO at `path` (reads from it block until someone writes: an operation that stays in flight).
    let makeFifo (path: string) =
        if mkfifo (path, 0o600u) <> 0 then
            failtestf "mkfifo %s failed: errno %d" path (Marshal.GetLastPInvokeError())

    [<DllImport("libc", SetLastError = true)>]
    extern int gettid()

    [<DllImport("libc")>]
    extern uint32 getuid()

    /// The system calls a parked shard blocks in: io_uring_enter (426), and for the epoll backend epoll_pwait2 (441)
    /// or epoll_wait / epoll_pwait (232 / 281 on x86-64; arm64 has only epoll_pwait, 22).
    let private parkCalls =
        if RuntimeInformation.ProcessArchitecture = Architecture.Arm64 then
            [ "426 "; "441 "; "22 " ]
        else
            [ "426 "; "441 "; "232 "; "281 " ]

    /// Whether thread `tid` of this process is blocked where a parked shard blocks (io_uring_enter, or epoll's
    /// wait on the epoll backend), read from /proc: a parked shard, seen from outside without waking it.
    let isInIoUringEnter (tid: int) =
        try
            let text = File.ReadAllText $"/proc/self/task/%d{tid}/syscall"
            parkCalls |> List.exists text.StartsWith
        with :? IOException ->
            false

    /// Waits (spinning with Thread.Yield, bounded by `shardTimeout`) until thread `tid` is blocked in
    /// io_uring_enter: the shard has parked. Fails the test if it never does.
    let waitUntilParked (what: string) (tid: int) =
        let until =
            Diagnostics.Stopwatch.GetTimestamp()
            + int64 shardTimeout.TotalSeconds * Diagnostics.Stopwatch.Frequency

        while not (isInIoUringEnter tid) do
            if Diagnostics.Stopwatch.GetTimestamp() > until then
                failtestf "%s: the shard thread %d never parked in io_uring_enter within %O" what tid shardTimeout

            Thread.Yield() |> ignore

    /// The CPUs thread (or process) `tid` may run on; 0 is the calling thread.
    let affinityOf (tid: int) : int array =
        let mask = Array.zeroCreate<uint64> 16

        if sched_getaffinity (tid, unativeint (mask.Length * 8), mask) <> 0 then
            failtestf "sched_getaffinity(%d) failed: errno %d" tid (Marshal.GetLastPInvokeError())

        [|
            for cpu in 0 .. mask.Length * 64 - 1 do
                if mask[cpu / 64] &&& (1UL <<< (cpu % 64)) <> 0UL then
                    cpu
        |]

    /// The CPUs the process may use: the main thread's mask, which the runtime must never change.
    let processCpus () = affinityOf Environment.ProcessId

let describeCpus (cpus: int array) =
    cpus |> Array.map string |> String.concat ","

/// Samples the process's allocations by type (the runtime's AllocationTick event, about one per 100 KB), so a test
/// that finds allocations can say what they were.
type AllocationSampler() =
    inherit Diagnostics.Tracing.EventListener()
    let types = Collections.Concurrent.ConcurrentDictionary<string, int>()

    /// "Type × ticks, …" of what was sampled so far.
    member _.Summary =
        types |> Seq.map (fun kv -> $"{kv.Key} × {kv.Value}") |> String.concat ", "

    override this.OnEventSourceCreated(source) =
        if source.Name = "Microsoft-Windows-DotNETRuntime" then
            this.EnableEvents(
                source,
                Diagnostics.Tracing.EventLevel.Verbose,
                LanguagePrimitives.EnumOfValue<int64, Diagnostics.Tracing.EventKeywords> 1L
            )

    override _.OnEventWritten(e) =
        let name = e.EventName

        if not (isNull name) && (nonNull name).StartsWith "GCAllocationTick" then
            let payload = nonNull e.Payload
            let typeName = string payload.[(nonNull e.PayloadNames).IndexOf "TypeName"]
            types.AddOrUpdate(typeName, 1, fun _ v -> v + 1) |> ignore

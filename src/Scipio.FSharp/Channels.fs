namespace Scipio.Channels

open System.Threading.Channels
open System.Threading.Tasks
open Scipio

/// Channels of one shard from F# (LocalChannel: no atomics; both ends on the shard that creates it).
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module LocalChannel =
    /// A channel of at most `capacity` items on this shard: writers wait while it is full.
    let bounded (capacity: int) : Channel<'T> = LocalChannel.CreateBounded<'T> capacity

    /// A channel without a bound on this shard.
    let unbounded () : Channel<'T> = LocalChannel.CreateUnbounded<'T>()

/// Channels between two shards from F# (SharedChannel: single producer, single consumer).
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module SharedChannel =
    /// A channel of at most `capacity` items (rounded up to a power of two) from one shard to another: the writer
    /// binds to the shard that writes first, the reader to the one that reads first.
    let bounded (capacity: int) : Channel<'T> =
        SharedChannel.CreateBounded<'T> capacity

/// Pipe-friendly operations on any channel (Scipio's or .NET's): `channel |> Channel.write item`.
/// <remarks>iter, iterAsync and fold read on the shard in a `shard { }` loop, so a long stream of items stays fair
/// to the shard's other task queues.</remarks>
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Channel =
    /// Writes `item`, waiting while the channel is full; ChannelClosedException once it is completed.
    let write (item: 'T) (channel: Channel<'T>) : ValueTask = channel.Writer.WriteAsync item

    /// Writes `item` if there is room now.
    let tryWrite (item: 'T) (channel: Channel<'T>) : bool = channel.Writer.TryWrite item

    /// Reads the next item, waiting for one; ChannelClosedException once it is completed and empty.
    let read (channel: Channel<'T>) : ValueTask<'T> = channel.Reader.ReadAsync()

    /// The next item if one is there now (no allocation: a ValueOption).
    let tryRead (channel: Channel<'T>) : 'T voption =
        match channel.Reader.TryRead() with
        | true, item -> ValueSome item
        | _ -> ValueNone

    /// Says that no more items will be written: readers end once they have read what is left.
    let complete (channel: Channel<'T>) : unit = channel.Writer.Complete()

    /// Runs `action` on each item until the channel is completed and empty (on a shard).
    let iter (action: 'T -> unit) (channel: Channel<'T>) : Task<unit> =
        shard {
            let reader = channel.Reader
            let mutable more = true

            while more do
                match reader.TryRead() with
                | true, item -> action item
                | _ ->
                    let! waited = reader.WaitToReadAsync()
                    more <- waited
        }

    /// Runs the asynchronous `action` on each item, one at a time, until the channel is completed and empty (on a
    /// shard).
    let iterAsync (action: 'T -> Task<unit>) (channel: Channel<'T>) : Task<unit> =
        shard {
            let reader = channel.Reader
            let mutable more = true

            while more do
                match reader.TryRead() with
                | true, item -> do! action item
                | _ ->
                    let! waited = reader.WaitToReadAsync()
                    more <- waited
        }

    /// Folds `folder` over the items until the channel is completed and empty (on a shard).
    let fold (folder: 'State -> 'T -> 'State) (state: 'State) (channel: Channel<'T>) : Task<'State> =
        shard {
            let reader = channel.Reader
            let mutable acc = state
            let mutable more = true

            while more do
                match reader.TryRead() with
                | true, item -> acc <- folder acc item
                | _ ->
                    let! waited = reader.WaitToReadAsync()
                    more <- waited

            return acc
        }

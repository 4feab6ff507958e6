namespace Scipio.Simulation

/// SplitMix64 (Steele, Lea and Flood): a tiny deterministic generator. The simulator draws every task length, burst
/// size and sleep from one of these, seeded by the scenario, so that a whole simulated run replays from its seed
/// (and from FsCheck's replay line, without FsCheck generating and printing a hundred thousand numbers).
[<Struct>]
type Rng =
    {
        /// The generator's whole state.
        State: uint64
    }

    /// A generator that starts from `seed`.
    static member Create(seed: uint64) = { State = seed }

    /// The next 64 random bits and the generator that follows.
    member r.Next() =
        let state = r.State + 0x9E3779B97F4A7C15UL
        let mutable z = state
        z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
        z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        struct (z ^^^ (z >>> 31), { State = state })

    /// A value in lo..hi (inclusive; lo when hi ≤ lo) and the generator that follows. The modulo bias is irrelevant
    /// for ranges this small against 2^64.
    member r.Range(lo: int64, hi: int64) =
        if hi <= lo then
            struct (lo, r)
        else
            let struct (bits, next) = r.Next()
            struct (lo + int64 (bits % uint64 (hi - lo + 1L)), next)

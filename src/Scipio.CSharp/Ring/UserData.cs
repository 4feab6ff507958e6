namespace Scipio.Ring;

/// <summary>The shard's own events, told apart from operations by bit 63 of their user_data.</summary>
internal enum InternalEvent : byte
{
    /// <summary>The preemption timer (a TIMEOUT on the latency ring) fired or was removed.</summary>
    Preempt = 1,
    /// <summary>The TIMEOUT_REMOVE (update) that moved the preemption timer.</summary>
    PreemptUpdate,
    /// <summary>The read of the shard's eventfd: another thread woke it.</summary>
    Wake,
    /// <summary>The POLL_ADD of the latency ring's fd from the main ring, armed before parking.</summary>
    LatencyPoll,
    /// <summary>A wake-up another shard posted to this main ring with IORING_OP_MSG_RING.</summary>
    MsgWake,
    /// <summary>The sender's own completion of a MSG_RING it issued.</summary>
    MsgSent,
}

/// <summary>The one codec of io_uring's 64-bit user_data. An operation's: slot in the shard's operation table (bits
/// 0–31) and the 16-bit version of the slot's current use (bits 32–47), so a CQE for an earlier use of a reused
/// slot is recognised and dropped. An internal event's: bit 63 set and its <see cref="InternalEvent"/> in the low
/// byte.</summary>
internal static class UserData
{
    private const ulong InternalBit = 1ul << 63;

    /// <summary>The user_data of use <paramref name="version"/> of operation slot <paramref name="slot"/>.</summary>
    public static ulong Of(int slot, short version) => (uint)slot | ((ulong)(ushort)version << 32);

    /// <summary>The user_data of an internal event.</summary>
    public static ulong Of(InternalEvent e) => InternalBit | (byte)e;

    public static bool IsInternal(ulong userData) => (userData & InternalBit) != 0;

    public static InternalEvent Event(ulong userData) => (InternalEvent)(byte)userData;

    public static int Slot(ulong userData) => (int)(uint)userData;

    public static short Version(ulong userData) => (short)(ushort)(userData >> 32);
}

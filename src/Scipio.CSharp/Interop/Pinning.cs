using System.Buffers;

namespace Scipio.Interop;

/// <summary>Addresses of pinned and native memory, for SQE fields that carry pointers.</summary>
internal static unsafe class Pinning
{
    /// <summary>The address of pinned memory.</summary>
    public static ulong Address(in MemoryHandle handle) => (ulong)handle.Pointer;

    /// <summary>Allocates zeroed native memory that never moves (for buffers the kernel writes into later).</summary>
    public static nint AllocZeroed(int bytes) => (nint)System.Runtime.InteropServices.NativeMemory.AllocZeroed((nuint)bytes);

    public static void Free(nint p) => System.Runtime.InteropServices.NativeMemory.Free((void*)p);

    /// <summary>A span over native memory allocated by <see cref="AllocZeroed"/>.</summary>
    public static Span<byte> Span(nint p, int bytes) => new((void*)p, bytes);

    /// <summary>Reads a struct from native memory.</summary>
    public static T Read<T>(nint p) where T : unmanaged => *(T*)p;
}

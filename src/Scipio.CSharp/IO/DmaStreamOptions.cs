namespace Scipio.IO;

/// <summary>How a <see cref="DmaStreamReader"/> or <see cref="DmaStreamWriter"/> buffers: the size of each buffer,
/// how many reads or writes it keeps in flight, and where in the file it starts. Setters validate.</summary>
/// <remarks>Defaults: <see cref="BufferSize"/> 128 KiB, <see cref="InFlight"/> 4, <see cref="Position"/> 0. A stream
/// holds <c>InFlight + 1</c> buffers of <c>BufferSize</c> (rounded up to the file's
/// <see cref="DmaFile.Alignment"/>): <c>InFlight</c> in the kernel's hands, one being filled or drained by the
/// caller — 640 KiB with the defaults. The stream reads its options once, at construction.</remarks>
public sealed class DmaStreamOptions
{
    /// <summary>The smallest <see cref="BufferSize"/>: 4 KiB.</summary>
    public const int MinBufferSize = 4 << 10;

    /// <summary>The largest <see cref="BufferSize"/>: 64 MiB.</summary>
    public const int MaxBufferSize = 64 << 20;

    /// <summary>The largest <see cref="InFlight"/>: 64.</summary>
    public const int MaxInFlight = 64;

    private int _bufferSize = 128 << 10;
    private int _inFlight = 4;
    private long _position;

    /// <summary>The bytes of each read or write the stream submits; default 128 KiB, 4 KiB to 64 MiB. Rounded up to
    /// the file's <see cref="DmaFile.Alignment"/> by the stream.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Outside 4 KiB to 64 MiB.</exception>
    public int BufferSize
    {
        get => _bufferSize;
        set => _bufferSize = value is >= MinBufferSize and <= MaxBufferSize
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, $"A DMA stream's BufferSize is {MinBufferSize} (4 KiB) to {MaxBufferSize} (64 MiB) bytes.");
    }

    /// <summary>How many reads (read-ahead) or writes (write-behind) the stream keeps in flight at once; default 4,
    /// 1 to 64.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Outside 1 to 64.</exception>
    public int InFlight
    {
        get => _inFlight;
        set => _inFlight = value is >= 1 and <= MaxInFlight
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, $"A DMA stream keeps 1 to {MaxInFlight} operations in flight.");
    }

    /// <summary>The file offset the stream starts at; default 0. Any offset: the stream reads or writes the aligned
    /// block around it and skips (or keeps) the bytes before it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative.</exception>
    public long Position
    {
        get => _position;
        set => _position = value >= 0
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "A DMA stream's start Position is 0 or more.");
    }
}

namespace Scipio.IO;

/// <summary>A range of a file: <paramref name="Length"/> bytes from <paramref name="Offset"/>.</summary>
/// <param name="Offset">The first byte, from the start of the file; not negative.</param>
/// <param name="Length">How many bytes; not negative.</param>
public readonly record struct FileRange(long Offset, int Length);

/// <summary>One result of <see cref="DmaFile.ReadManyAsync"/>: the range asked for and a buffer holding its bytes
/// (shorter only at the end of the file). Dispose the buffer when done with it.</summary>
/// <param name="Range">The range, as asked.</param>
/// <param name="Buffer">Its bytes.</param>
public readonly record struct DmaReadResult(FileRange Range, DmaBuffer Buffer);

/// <summary>How <see cref="DmaFile.ReadManyAsync"/> merges and issues its reads. Setters validate.</summary>
/// <remarks>Defaults: <see cref="MaxMergedSize"/> null (the device's largest request, sysfs <c>max_sectors_kb</c>,
/// else 128 KiB); <see cref="MaxReadAmplification"/> 1.5; <see cref="MaxInFlight"/> 32.</remarks>
public sealed class ReadManyOptions
{
    private int? _maxMergedSize;
    private double _maxReadAmplification = 1.5;
    private int _maxInFlight = 32;

    /// <summary>The largest merged read in bytes (rounded down to the file's alignment); null: the device's own
    /// maximum request size. 4 KiB to 64 MiB.</summary>
    public int? MaxMergedSize
    {
        get => _maxMergedSize;
        set => _maxMergedSize = value is null or (>= 4096 and <= 64 << 20)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxMergedSize must be from 4 KiB to 64 MiB (null: the device's maximum).");
    }

    /// <summary>How much more a merged read may read than its ranges need (counted in whole alignment blocks); 1.0
    /// merges only ranges whose blocks overlap or touch. 1.0 to 16.</summary>
    public double MaxReadAmplification
    {
        get => _maxReadAmplification;
        set => _maxReadAmplification = value is >= 1.0 and <= 16.0
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxReadAmplification must be from 1.0 to 16.");
    }

    /// <summary>The most reads in flight at once; 1 to 1024.</summary>
    public int MaxInFlight
    {
        get => _maxInFlight;
        set => _maxInFlight = value is >= 1 and <= 1024
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxInFlight must be from 1 to 1024.");
    }
}

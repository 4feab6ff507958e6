namespace Scipio.Hosting;

/// <summary>How the Kestrel transport on Scipio shards (<c>UseScipio</c>) listens and buffers. Setters validate.</summary>
/// <remarks>Defaults, as Kestrel's Sockets transport has them: <see cref="Backlog"/> 512, <see cref="NoDelay"/> true,
/// <see cref="MaxReadBufferSize"/> 1 MiB, <see cref="MaxWriteBufferSize"/> 64 KiB. The shards are the
/// <see cref="ShardPool"/> that <c>AddScipio</c> registers (configure it there).</remarks>
public sealed class ScipioTransportOptions
{
    private int _backlog = 512;
    private long? _maxReadBufferSize = 1024 * 1024;
    private long? _maxWriteBufferSize = 64 * 1024;

    /// <summary>How many connections the kernel queues for each shard's listener before they are accepted
    /// (listen(2)'s backlog, capped by net.core.somaxconn). Default 512.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive.</exception>
    public int Backlog
    {
        get => _backlog;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            _backlog = value;
        }
    }

    /// <summary>TCP_NODELAY on every accepted TCP connection: small responses go out at once instead of waiting to
    /// be coalesced (Nagle). Default true.</summary>
    public bool NoDelay { get; set; } = true;

    /// <summary>How many received bytes a connection buffers before it stops reading from the socket until the
    /// application has consumed half of them (backpressure). Null or 0: no limit. Default 1 MiB.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative.</exception>
    public long? MaxReadBufferSize
    {
        get => _maxReadBufferSize;
        set => _maxReadBufferSize = value is null or >= 0
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "A buffer limit is 0 or more bytes (null or 0: no limit).");
    }

    /// <summary>How many bytes of responses a connection buffers before the application's flushes wait for the
    /// socket to take half of them (backpressure). Null or 0: no limit. Default 64 KiB.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative.</exception>
    public long? MaxWriteBufferSize
    {
        get => _maxWriteBufferSize;
        set => _maxWriteBufferSize = value is null or >= 0
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "A buffer limit is 0 or more bytes (null or 0: no limit).");
    }
}

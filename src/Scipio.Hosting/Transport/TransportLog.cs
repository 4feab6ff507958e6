using Microsoft.Extensions.Logging;

namespace Scipio.Hosting.Transport;

/// <summary>What the transport logs, under the category "Scipio.Hosting.Transport" (Kestrel's Sockets transport logs
/// the same events, at the same levels, under its own).</summary>
internal static partial class TransportLog
{
    public const string Category = "Scipio.Hosting.Transport";

    [LoggerMessage(1, LogLevel.Debug, "Connection id \"{ConnectionId}\" received FIN.", EventName = "ConnectionReadFin")]
    public static partial void ConnectionReadFin(ILogger logger, string connectionId);

    [LoggerMessage(2, LogLevel.Debug, "Connection id \"{ConnectionId}\" sending FIN because: \"{Reason}\"", EventName = "ConnectionWriteFin")]
    public static partial void ConnectionWriteFin(ILogger logger, string connectionId, string reason);

    [LoggerMessage(3, LogLevel.Debug, "Connection id \"{ConnectionId}\" sending RST because: \"{Reason}\"", EventName = "ConnectionWriteRst")]
    public static partial void ConnectionWriteRst(ILogger logger, string connectionId, string reason);

    [LoggerMessage(4, LogLevel.Debug, "Connection id \"{ConnectionId}\" reset.", EventName = "ConnectionReset")]
    public static partial void ConnectionReset(ILogger logger, string connectionId);

    [LoggerMessage(5, LogLevel.Debug, "Connection id \"{ConnectionId}\" communication error.", EventName = "ConnectionError")]
    public static partial void ConnectionError(ILogger logger, string connectionId, Exception error);

    [LoggerMessage(6, LogLevel.Error, "Unexpected exception in the Scipio transport ({What}).", EventName = "UnexpectedError")]
    public static partial void Unexpected(ILogger logger, string what, Exception error);

    [LoggerMessage(7, LogLevel.Warning, "Shard {Shard} could not accept a connection on {EndPoint}; it keeps accepting.", EventName = "AcceptFailed")]
    public static partial void AcceptFailed(ILogger logger, int shard, string endPoint, Exception error);

    [LoggerMessage(8, LogLevel.Debug, "Listening on {EndPoint} on {Shards} shard(s).", EventName = "Bound")]
    public static partial void Bound(ILogger logger, string endPoint, int shards);
}

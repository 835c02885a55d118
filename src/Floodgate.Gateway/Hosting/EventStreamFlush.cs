using Yarp.ReverseProxy.Transforms;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Sends the headers of a <c>text/event-stream</c> response to the client as soon as the upstream sent them. YARP sends
/// headers with the first byte of the body, so a browser's <c>EventSource</c> would stay connecting (no <c>onopen</c>)
/// until the first event, which may be minutes away. Other responses keep YARP's behaviour: a response with no body (a
/// gRPC error's trailers-only answer, say) must go out as headers that end the stream.
/// </summary>
internal sealed class EventStreamFlush : ResponseTransform
{
    public static EventStreamFlush Instance { get; } = new();

    /// <inheritdoc/>
    public override async ValueTask ApplyAsync(ResponseTransformContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var response = context.HttpContext.Response;
        if (context.ProxyResponse?.Content.Headers.ContentType?.MediaType is { } type
            && string.Equals(type, "text/event-stream", StringComparison.OrdinalIgnoreCase)
            && !response.HasStarted)
        {
            // Starting the response only makes the headers final; the flush sends them.
            await response.StartAsync(context.CancellationToken).ConfigureAwait(false);
            await response.Body.FlushAsync(context.CancellationToken).ConfigureAwait(false);
        }
    }
}

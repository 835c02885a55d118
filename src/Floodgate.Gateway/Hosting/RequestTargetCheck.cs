using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Refuses, with 400 and before the rate limiter or the proxy sees it, a request whose target holds a control character:
/// a raw one anywhere in the target (HTTP allows none there, but Kestrel passes them on), or one the path decodes to
/// (<c>%01</c>, <c>%7F</c>, <c>%C2%85</c>: Kestrel decodes the path before routing). Such a path is never a resource, and an
/// upstream, its logs or a redirect it builds from the path may take a control character for a line break or a
/// terminator. A percent-encoded control character in the query is left alone: the query is not decoded here, and the
/// upstream receives it encoded, as the client sent it.
/// </summary>
internal static class RequestTargetCheck
{
    /// <summary>The middleware: answers 400 to such a request, and passes every other one on.</summary>
    public static Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (HasControl(context.Request.Path.Value) || HasControl(context.Request.PathBase.Value)
            || HasControl(context.Features.Get<IHttpRequestFeature>()?.RawTarget))
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return Task.CompletedTask;
        }

        return next(context);
    }

    /// <summary>Whether <paramref name="text"/> holds a C0 control, DEL or a C1 control (what <see cref="char.IsControl(char)"/> says).</summary>
    private static bool HasControl(string? text) =>
        text is not null && (text.AsSpan().ContainsAnyInRange('\u0000', '\u001F') || text.AsSpan().ContainsAnyInRange('\u007F', '\u009F'));
}

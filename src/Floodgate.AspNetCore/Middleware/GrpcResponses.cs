using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Middleware;

/// <summary>
/// Floodgate's answers to gRPC calls (a request whose content type is <c>application/grpc</c>, <c>+proto</c>,
/// <c>-web</c>…). A gRPC client reads a non-200 HTTP status as a broken call (UNAVAILABLE, "Bad gRPC response") and may
/// retry at once; so a refused call is answered as gRPC servers answer one, and as Envoy's rate limit filter does
/// (with <c>rate_limited_as_resource_exhausted</c>): HTTP 200, and a trailers-only response whose <c>grpc-status</c> is
/// RESOURCE_EXHAUSTED (8) for a limit (the 429s), UNAVAILABLE (14) for capacity or an outage (the 503s), UNAUTHENTICATED
/// (16) for a 401; <c>grpc-message</c> says why and names the rule, and <c>grpc-retry-pushback-ms</c> (gRPC's retry
/// delay; negative for "do not retry") carries the retry, next to the same limit headers and <c>Retry-After</c>.
/// </summary>
internal static class GrpcResponses
{
    /// <summary>RESOURCE_EXHAUSTED: a limit of the caller's.</summary>
    public const int ResourceExhausted = 8;

    /// <summary>PERMISSION_DENIED: a 403, such as a deny list's or a distinct rule's.</summary>
    public const int PermissionDenied = 7;

    /// <summary>UNAVAILABLE: capacity, or the rate limit store or the identity provider unreachable.</summary>
    public const int Unavailable = 14;

    /// <summary>UNAUTHENTICATED: no credentials where they are required, or credentials refused.</summary>
    public const int Unauthenticated = 16;

    /// <summary>Whether <paramref name="request"/> is a gRPC call.</summary>
    public static bool IsGrpc(HttpRequest request) =>
        request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Answers the call with the gRPC status that stands for the HTTP <paramref name="status"/> Floodgate would answer
    /// (429, 503 or 401), <paramref name="message"/>, and the retry delay: <paramref name="retryAfter"/>, or none
    /// (pushback -1, "do not retry") when <see langword="null"/> for a limit the call can never fit.
    /// </summary>
    public static void Write(HttpContext context, int status, string message, TimeSpan? retryAfter)
    {
        var response = context.Response;
        var code = status switch
        {
            StatusCodes.Status429TooManyRequests => ResourceExhausted,
            StatusCodes.Status401Unauthorized => Unauthenticated,
            StatusCodes.Status403Forbidden => PermissionDenied,
            _ => Unavailable,
        };
        response.StatusCode = StatusCodes.Status200OK;

        // The request's own gRPC content type (application/grpc, +proto, -web…): a grpc-web client expects grpc-web back.
        response.ContentType = context.Request.ContentType;
        var headers = response.Headers;
        headers["grpc-status"] = code.ToString(CultureInfo.InvariantCulture);
        headers["grpc-message"] = PercentEncode(message);
        if (code != Unauthenticated)
        {
            // Milliseconds, rounded up so a retry is never early.
            headers["grpc-retry-pushback-ms"] = retryAfter is { } retry
                ? Math.Max(0, (long)Math.Ceiling(retry.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture)
                : "-1";
        }

        // Trailers-only: no body, so the status travels in the headers and the stream ends with them.
    }

    /// <summary>
    /// <c>grpc-message</c>'s encoding: UTF-8, with every byte outside printable ASCII, and '%', percent-encoded.
    /// </summary>
    internal static string PercentEncode(string message)
    {
        var bytes = Encoding.UTF8.GetBytes(message);
        var text = new StringBuilder(bytes.Length);
        foreach (var b in bytes)
        {
            if (b is >= 0x20 and <= 0x7E and not (byte)'%')
            {
                text.Append((char)b);
            }
            else
            {
                text.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return text.ToString();
    }
}

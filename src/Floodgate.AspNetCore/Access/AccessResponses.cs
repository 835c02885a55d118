using System.Buffers;
using System.Text.Json;
using Floodgate.AspNetCore.Middleware;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Access;

/// <summary>The 403 of a deny list: problem details naming the list, never the entry that matched.</summary>
internal static class AccessResponses
{
    public static async Task WriteDeniedAsync(HttpContext context, string list)
    {
        if (GrpcResponses.IsGrpc(context.Request))
        {
            // A gRPC caller gets PERMISSION_DENIED as gRPC answers (trailers-only), as a rejection gets its gRPC status;
            // a retry pushback of -1: retrying will not help.
            GrpcResponses.Write(context, StatusCodes.Status403Forbidden, $"The {list} is on a deny list.", null);
            return;
        }

        var response = context.Response;
        response.StatusCode = StatusCodes.Status403Forbidden;
        response.ContentType = RateLimitResponses.ProblemJson;
        response.Headers.CacheControl = "no-store";
        var buffer = new ArrayBufferWriter<byte>(160);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("type", "about:blank");
            json.WriteString("title", "Forbidden");
            json.WriteNumber("status", StatusCodes.Status403Forbidden);
            json.WriteString("detail", $"The {list} is on a deny list.");
            json.WriteString("tier", "access");
            json.WriteEndObject();
        }

        response.ContentLength = buffer.WrittenCount;
        await response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }
}

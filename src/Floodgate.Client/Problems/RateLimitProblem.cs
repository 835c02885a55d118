using System.Text.Json;

namespace Floodgate.Client;

/// <summary>
/// The problem details (RFC 9457) of a rejection: what Floodgate's gateway, and many other servers, send as
/// <c>application/problem+json</c> with a 429 or 503.
/// </summary>
public sealed class RateLimitProblem
{
    private RateLimitProblem(int status, string? title, string? detail, string? rule, string? tier, TimeSpan? retryAfter)
    {
        Status = status;
        Title = title;
        Detail = detail;
        Rule = rule;
        Tier = tier;
        RetryAfter = retryAfter;
    }

    /// <summary>The HTTP status of the rejection.</summary>
    public int Status { get; }

    /// <summary>The problem's title, such as "Too Many Requests".</summary>
    public string? Title { get; }

    /// <summary>What happened, in words: Floodgate names the rule and the wait.</summary>
    public string? Detail { get; }

    /// <summary>The rule that refused (Floodgate's <c>rule</c> member), when named.</summary>
    public string? Rule { get; }

    /// <summary>The tier that refused (Floodgate's <c>tier</c> member: edge, user, service, global, identity), when named.</summary>
    public string? Tier { get; }

    /// <summary>When to try again: the body's <c>retryAfter</c> (seconds), else the Retry-After field; none when retrying cannot help.</summary>
    public TimeSpan? RetryAfter { get; }

    /// <summary>
    /// Reads the problem details of a 429 or 503 answer. The content is buffered first, so the body can still be read
    /// afterwards.
    /// </summary>
    /// <returns>The problem, or <see langword="null"/> when the response is not a 429 or 503 with a problem+json body.</returns>
    public static async Task<RateLimitProblem?> ReadAsync(HttpResponseMessage response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(response);
        var status = (int)response.StatusCode;
        if (status is not (429 or 503) || response.Content.Headers.ContentType?.MediaType is not "application/problem+json")
        {
            return null;
        }

        await response.Content.LoadIntoBufferAsync(cancellationToken).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var document = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            TimeSpan? retry = root.TryGetProperty("retryAfter", out var seconds) && seconds.TryGetDouble(out var s) && s >= 0
                ? TimeSpan.FromSeconds(s)
                : response.Headers.RetryAfter?.Delta;
            return new RateLimitProblem(
                root.TryGetProperty("status", out var st) && st.TryGetInt32(out var code) ? code : status,
                Text(root, "title"),
                Text(root, "detail"),
                Text(root, "rule"),
                Text(root, "tier"),
                retry);
        }
        catch (JsonException)
        {
            return null;
        }
        finally
        {
            // A buffered body reads again from a fresh stream; leave this one at its start for anyone who kept it.
            if (stream.CanSeek)
            {
                stream.Position = 0;
            }
        }
    }

    private static string? Text(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}

using System.Net;

namespace Floodgate.Rules;

/// <summary>A request described by plain values: for tests, tools, and front doors without a request object of their own.</summary>
public sealed class RequestContext : IRequestContext, Costs.IRequestFields
{
    /// <inheritdoc/>
    public string Method { get; init; } = "GET";

    /// <inheritdoc/>
    public string Path { get; init; } = "/";

    /// <inheritdoc/>
    public string? Host { get; init; }

    /// <inheritdoc/>
    public string? RouteTemplate { get; init; }

    /// <inheritdoc/>
    public IPAddress? ClientIp { get; init; }

    /// <inheritdoc/>
    public string? Subject { get; init; }

    /// <inheritdoc/>
    public string? Plan { get; init; }

    /// <summary>The headers, matched case-insensitively.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>The validated claims.</summary>
    public IReadOnlyDictionary<string, string> Claims { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <inheritdoc/>
    public string? GetHeader(string name)
    {
        if (Headers.TryGetValue(name, out var value))
        {
            return value;
        }

        foreach (var (key, v) in Headers)
        {
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase))
            {
                return v;
            }
        }

        return null;
    }

    /// <inheritdoc/>
    public string? GetClaim(string name) => Claims.TryGetValue(name, out var value) ? value : null;

    /// <summary>The top-level fields of the request body, as text, for cost estimates (<see cref="Costs.CostEstimate.FromField"/>).</summary>
    public IReadOnlyDictionary<string, string> Fields { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <inheritdoc/>
    public string? GetField(string name) => Fields.TryGetValue(name, out var value) ? value : null;
}

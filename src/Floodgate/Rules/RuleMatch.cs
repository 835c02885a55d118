namespace Floodgate.Rules;

/// <summary>
/// Which requests a rule applies to. Every condition given must hold; within a list, any entry may match. An empty
/// match applies to every request.
/// </summary>
public sealed class RuleMatch
{
    /// <summary>Matches every request.</summary>
    public static RuleMatch Any { get; } = new();

    /// <summary>Path patterns; see <see cref="PathGlob"/>.</summary>
    public IReadOnlyList<PathGlob> Paths { get; init; } = [];

    /// <summary>The route template; see <see cref="RouteTemplate"/>. It also names the route in the rule's key.</summary>
    public RouteTemplate? Route { get; init; }

    /// <summary>HTTP methods, compared ignoring case.</summary>
    public IReadOnlyList<string> Methods { get; init; } = [];

    /// <summary>Hosts: exact, or <c>*.example.com</c> for any subdomain.</summary>
    public IReadOnlyList<string> Hosts { get; init; } = [];

    /// <summary>Headers that must be present: with a value it must equal (ignoring case), with <c>*</c> any value will do.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// A condition a front door checks itself, such as the ASP.NET Core middleware's "the endpoint routing matched
    /// carries this rule": the rule applies to that endpoint only, whatever other routes match the same paths.
    /// <see langword="null"/>, the default, for none.
    /// </summary>
    /// <remarks>
    /// It is called on every request the other conditions of the match do not rule out first (the methods), so it must
    /// be cheap, thread-safe and never throw. A policy read from a file has none: it is for rules a front door builds.
    /// </remarks>
    public Func<IRequestContext, bool>? Condition { get; init; }

    /// <summary>
    /// What the <c>route</c> key part (<see cref="KeyPartKind.Route"/>) reads for every request the rule matches, such as
    /// the route template of the endpoint a <see cref="Condition"/> stands for. <see langword="null"/>, the default, reads
    /// the <see cref="Route"/>'s template, else the request's route template, else its path.
    /// </summary>
    public string? RouteKey { get; init; }

    /// <summary>Whether <paramref name="request"/> matches.</summary>
    public bool IsMatch(IRequestContext request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (Methods.Count > 0 && !Contains(Methods, request.Method))
        {
            return false;
        }

        if (Condition is not null && !Condition(request))
        {
            return false;
        }

        if (Route is not null && !MatchesRoute(Route, request))
        {
            return false;
        }

        if (Paths.Count > 0 && !MatchesAnyPath(request.Path))
        {
            return false;
        }

        if (Hosts.Count > 0 && !MatchesHost(request.Host))
        {
            return false;
        }

        foreach (var (name, expected) in Headers)
        {
            var actual = request.GetHeader(name);
            if (actual is null || (expected != "*" && !string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase)))
            {
                return false;
            }
        }

        return true;
    }

    private static bool MatchesRoute(RouteTemplate route, IRequestContext request) =>
        (request.RouteTemplate is { } template && string.Equals(template, route.Template, StringComparison.OrdinalIgnoreCase))
        || route.IsMatch(request.Path);

    private static bool Contains(IReadOnlyList<string> values, string value)
    {
        for (var i = 0; i < values.Count; i++)
        {
            if (string.Equals(values[i], value, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    private bool MatchesAnyPath(string path)
    {
        for (var i = 0; i < Paths.Count; i++)
        {
            if (Paths[i].IsMatch(path))
            {
                return true;
            }
        }

        return false;
    }

    private bool MatchesHost(string? host)
    {
        if (host is null)
        {
            return false;
        }

        for (var i = 0; i < Hosts.Count; i++)
        {
            var pattern = Hosts[i];
            if (pattern.StartsWith("*.", StringComparison.Ordinal)
                ? host.EndsWith(pattern.AsSpan(1), StringComparison.OrdinalIgnoreCase)
                : string.Equals(host, pattern, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}

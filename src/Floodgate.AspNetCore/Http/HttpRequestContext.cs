using System.Net;
using System.Security.Claims;
using Floodgate.AspNetCore.Identity;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Floodgate.AspNetCore.Http;

/// <summary>
/// What Floodgate's rules read of an ASP.NET Core request: method, path, host, the route template endpoint routing
/// matched (so <c>/orders/1</c> and <c>/orders/2</c> are both <c>/orders/{id}</c>), headers, the client IP resolved
/// through trusted proxies only, and the validated identity.
/// </summary>
public sealed class HttpRequestContext : IRequestContext, IAnonymousSubject, Floodgate.Costs.IRequestFields
{
    private readonly HttpContext _http;
    private readonly TrustedProxies _proxies;
    private IPAddress? _clientIp;
    private bool _clientIpResolved;
    private string? _routeTemplate;
    private bool _routeResolved;
    private Endpoint? _endpoint;
    private bool _endpointResolved;
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<RouteEndpoint, TemplateBox> Templates = [];
    private ClaimsIdentity? _claims;
    private bool _anonymous;

    /// <summary>Creates the context of <paramref name="http"/>'s request.</summary>
    /// <param name="http">The request.</param>
    /// <param name="proxies">The proxies whose forwarding headers are believed.</param>
    public HttpRequestContext(HttpContext http, TrustedProxies proxies)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(proxies);
        _http = http;
        _proxies = proxies;
    }

    /// <summary>The request.</summary>
    public HttpContext HttpContext => _http;

    /// <inheritdoc/>
    public string Method => _http.Request.Method;

    /// <inheritdoc/>
    public string Path => _http.Request.Path.Value is { Length: > 0 } path ? path : "/";

    /// <inheritdoc/>
    public string? Host => _http.Request.Host.HasValue ? _http.Request.Host.Host : null;

    /// <inheritdoc/>
    public string? RouteTemplate
    {
        get
        {
            if (!_routeResolved)
            {
                _routeTemplate = TemplateOf(Endpoint);
                _routeResolved = true;
            }

            return _routeTemplate;
        }
    }

    /// <summary>The endpoint routing matched; <see langword="null"/> when it matched none.</summary>
    internal Endpoint? Endpoint
    {
        get
        {
            if (!_endpointResolved)
            {
                _endpoint = _http.GetEndpoint();
                _endpointResolved = true;
            }

            return _endpoint;
        }
    }

    /// <inheritdoc/>
    public IPAddress? ClientIp
    {
        get
        {
            if (!_clientIpResolved)
            {
                var headers = _http.Request.Headers;
                _clientIp = _proxies.ResolveClient(_http.Connection.RemoteIpAddress, headers[_proxies.HeaderName]);
                _clientIpResolved = true;
            }

            return _clientIp;
        }
    }

    /// <inheritdoc/>
    public string? Subject { get; private set; }

    /// <inheritdoc/>
    public string? Plan { get; private set; }

    /// <inheritdoc/>
    bool IAnonymousSubject.IsAnonymousSubject => _anonymous;

    /// <summary>Records the validated identity that the user tier keys on.</summary>
    public void SetIdentity(in IdentityResult identity)
    {
        if (identity.Status == IdentityStatus.Valid)
        {
            Subject = identity.Subject;
            Plan = identity.Plan;
            _claims = identity.Claims;
            _anonymous = false;
        }
    }

    /// <summary>Records an identity the application's own authentication validated.</summary>
    public void SetIdentity(string subject, string? plan, ClaimsIdentity? claims)
    {
        ArgumentException.ThrowIfNullOrEmpty(subject);
        Subject = subject;
        Plan = plan;
        _claims = claims;
        _anonymous = false;
    }

    /// <summary>
    /// Records an anonymous caller, known by its client IP as <paramref name="address"/> names it: the subject reads
    /// <c>ip:&lt;address&gt;</c> in logs, and is keyed in a namespace of its own that no validated subject can reach.
    /// </summary>
    internal void SetAnonymous(string address)
    {
        Subject = "ip:" + address;
        Plan = null;
        _claims = null;
        _anonymous = true;
    }

    /// <inheritdoc/>
    public string? GetHeader(string name)
    {
        var values = _http.Request.Headers[name];
        return values.Count switch
        {
            0 => null,
            1 => values[0],
            _ => values.ToString(),
        };
    }

    /// <inheritdoc/>
    public string? GetClaim(string name) => _claims?.FindFirst(name)?.Value;

    /// <inheritdoc/>
    /// <remarks>Read from a JSON body only for policies whose cost rules ask for fields (docs/cost.md).</remarks>
    public string? GetField(string name) => Fields is not null && Fields.TryGetValue(name, out var value) ? value : null;

    /// <summary>The body fields the cost rules read, when the request has any.</summary>
    internal Dictionary<string, string>? Fields { get; set; }

    /// <summary>
    /// The route template of an endpoint: its route pattern, or <see langword="null"/> when it has none or when the pattern
    /// is a bare catch-all (such as a reverse proxy's <c>/{**catch-all}</c>), which names no route.
    /// </summary>
    public static string? TemplateOf(Endpoint? endpoint)
    {
        if (endpoint is not RouteEndpoint route)
        {
            return null;
        }

        if (Templates.TryGetValue(route, out var cached))
        {
            return cached.Template;
        }

        var template = new TemplateBox(ComputeTemplate(route));
        Templates.AddOrUpdate(route, template);
        return template.Template;
    }

    private static string? ComputeTemplate(RouteEndpoint route)
    {

        var pattern = route.RoutePattern;
        if (pattern.PathSegments.Count == 1 && pattern.PathSegments[0].IsSimple && pattern.PathSegments[0].Parts[0] is Microsoft.AspNetCore.Routing.Patterns.RoutePatternParameterPart { IsCatchAll: true })
        {
            return null;
        }

        var raw = pattern.RawText;
        if (string.IsNullOrEmpty(raw))
        {
            return null;
        }

        return raw[0] == '/' ? raw : "/" + raw;
    }

    private sealed record TemplateBox(string? Template);
}

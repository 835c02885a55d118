using System.Net;

namespace Floodgate.Rules;

/// <summary>
/// What rules read of a request. Each front door (the ASP.NET Core middleware, the gateway, the Envoy service)
/// implements it over its own request type, so the engine does not depend on any of them.
/// </summary>
public interface IRequestContext
{
    /// <summary>The HTTP method, upper case.</summary>
    string Method { get; }

    /// <summary>The normalized path, starting with '/'.</summary>
    string Path { get; }

    /// <summary>The host, without port; <see langword="null"/> when unknown.</summary>
    string? Host { get; }

    /// <summary>
    /// The route template the front door matched, such as <c>/orders/{id}</c>; <see langword="null"/> when it matched
    /// none, in which case rules match the path against their own route templates.
    /// </summary>
    string? RouteTemplate { get; }

    /// <summary>The client's IP address, resolved through trusted proxies only; <see langword="null"/> when unknown.</summary>
    IPAddress? ClientIp { get; }

    /// <summary>The stable subject of a validated identity; <see langword="null"/> when anonymous.</summary>
    string? Subject { get; }

    /// <summary>The subject's plan, such as <c>free</c> or <c>pro</c>; <see langword="null"/> for the default plan.</summary>
    string? Plan { get; }

    /// <summary>A request header's value (several values joined by commas); <see langword="null"/> when absent.</summary>
    string? GetHeader(string name);

    /// <summary>A validated claim's value; <see langword="null"/> when absent or when the request is anonymous.</summary>
    string? GetClaim(string name);
}

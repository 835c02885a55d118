using System.Net;
using Floodgate.AspNetCore.Http;
using Floodgate.AspNetCore.Middleware;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Transforms;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Runs before YARP's X-Forwarded transforms, and leaves in the forwarded request only the forwarding headers the gateway
/// itself can vouch for, so that YARP's action (append, set, remove) acts on them and not on what a client wrote:
/// <list type="bullet">
/// <item>from a peer that is not a trusted proxy, none: its <c>X-Forwarded-*</c>, <c>Forwarded</c> and <c>X-Real-IP</c>
/// are claims nobody vouched for, and are removed;</item>
/// <item>from a trusted proxy, <c>X-Forwarded-For</c> becomes the chain the gateway resolved the client from (the client,
/// then the trusted proxies between it and the peer; <see cref="TrustedProxies.ResolveChain"/>), and
/// <c>X-Forwarded-Proto</c>, <c>-Host</c> and <c>-Prefix</c> the one value the peer gave (the last element of each, or the
/// <c>proto</c> and <c>host</c> of the last <c>Forwarded</c> element when that is the header the proxies write), when it
/// is well formed.</item>
/// </list>
/// YARP then appends the peer, the scheme, the host and the path base (append), or replaces them all with its own view
/// (set), or removes them (remove). The trusted proxies are the policy's in force, read at each request.
/// </summary>
internal sealed class TrustedForwarding(FloodgateRuntime floodgate) : RequestTransform
{
    private const string For = "X-Forwarded-For";
    private const string Proto = "X-Forwarded-Proto";
    private const string Host = "X-Forwarded-Host";
    private const string Prefix = "X-Forwarded-Prefix";
    private static readonly string[] Unvouched = [For, Proto, Host, Prefix, "Forwarded", "X-Real-IP"];

    /// <inheritdoc/>
    public override ValueTask ApplyAsync(RequestTransformContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var proxies = floodgate.TrustedProxies;
        var request = context.HttpContext.Request;
        var peer = context.HttpContext.Connection.RemoteIpAddress;
        if (peer is null || !proxies.IsTrusted(peer))
        {
            foreach (var name in Unvouched)
            {
                RemoveHeader(context, name);
            }

            return default;
        }

        var chain = proxies.ResolveChain(peer, request.Headers[proxies.HeaderName]);
        Replace(context, For, chain.Count == 0 ? null : string.Join(", ", chain.Select(Format)));
        if (proxies.Header == ForwardedHeader.Forwarded)
        {
            var element = Last(request.Headers["Forwarded"]);
            Replace(context, Proto, Scheme(Parameter(element, "proto")));
            Replace(context, Host, HostName(Parameter(element, "host")));

            // Forwarded has no prefix: an X-Forwarded-Prefix is not what these proxies write.
            RemoveHeader(context, Prefix);
        }
        else
        {
            Replace(context, Proto, Scheme(Last(request.Headers[Proto])));
            Replace(context, Host, HostName(Last(request.Headers[Host])));
            Replace(context, Prefix, PathPrefix(Last(request.Headers[Prefix])));
        }

        return default;
    }

    private static void Replace(RequestTransformContext context, string name, string? value)
    {
        RemoveHeader(context, name);
        if (value is not null)
        {
            AddHeader(context, name, value);
        }
    }

    // As YARP writes the peer, so that the chain and the appended peer read alike.
    private static string Format(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4().ToString() : address.ToString();

    /// <summary>The last comma-separated element of the header's values: what the nearest proxy wrote.</summary>
    private static string? Last(StringValues values)
    {
        for (var v = values.Count - 1; v >= 0; v--)
        {
            var text = values[v] ?? string.Empty;
            var element = text[(text.LastIndexOf(',') + 1)..].Trim();
            if (element.Length > 0)
            {
                return element;
            }
        }

        return null;
    }

    /// <summary>A parameter of a <c>Forwarded</c> element (<c>for=192.0.2.60;proto=https;host=api.example</c>), unquoted.</summary>
    private static string? Parameter(string? element, string name)
    {
        foreach (var pair in (element ?? string.Empty).Split(';', StringSplitOptions.TrimEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0 && pair.AsSpan(0, equals).Trim().Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                var value = pair[(equals + 1)..].Trim();
                return value.Length >= 2 && value[0] == '"' && value[^1] == '"' ? value[1..^1] : value;
            }
        }

        return null;
    }

    private static string? Scheme(string? value) =>
        string.Equals(value, "https", StringComparison.OrdinalIgnoreCase) ? "https"
        : string.Equals(value, "http", StringComparison.OrdinalIgnoreCase) ? "http"
        : null;

    /// <summary>A host and optional port, as a Host header holds them; anything else (a path, user info, spaces) is dropped.</summary>
    private static string? HostName(string? value) =>
        value is { Length: > 0 } && Uri.TryCreate($"http://{value}/", UriKind.Absolute, out var uri)
            && string.Equals(uri.Authority, value, StringComparison.OrdinalIgnoreCase) && uri.UserInfo.Length == 0
            ? value
            : null;

    private static string? PathPrefix(string? value) =>
        value is { Length: > 1 } && value[0] == '/' && !value.AsSpan().ContainsAnyExceptInRange('!', '~') ? value : null;
}

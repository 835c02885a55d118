using System.CommandLine.Parsing;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Floodgate.Gateway.Cli;

/// <summary>The listening addresses the command line takes, <c>--listen</c>, <c>--admin</c> and <c>--envoy</c>, and what <c>--listen</c> serves.</summary>
internal static class Addresses
{
    /// <summary>An http:// address with no path, such as <c>http://127.0.0.1:9090</c>.</summary>
    public static Uri Parse(ArgumentResult result) => Parse(result, https: false);

    /// <summary>An http:// or https:// address with no path, such as <c>https://0.0.0.0:8443</c>.</summary>
    public static Uri ParseListen(ArgumentResult result) => Parse(result, https: true);

    /// <summary>
    /// The HTTP versions of <c>--listen-protocols</c>: <c>http1</c>, <c>http2</c> (<c>h2c</c> says the same, and reads
    /// better on an http:// address) or <c>http1AndHttp2</c>; whether they suit the address is checked with the address.
    /// </summary>
    public static HttpProtocols? ParseProtocols(ArgumentResult result)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : string.Empty;
        HttpProtocols? protocols = text.ToLowerInvariant() switch
        {
            "http1" => HttpProtocols.Http1,
            "http2" or "h2c" => HttpProtocols.Http2,
            "http1andhttp2" => HttpProtocols.Http1AndHttp2,
            _ => null,
        };
        if (protocols is null)
        {
            result.AddError($"'{text}' is not one of: http1, h2c, http2, http1AndHttp2.");
        }

        return protocols;
    }

    private static Uri Parse(ArgumentResult result, bool https)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : string.Empty;
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || (https && uri.Scheme == Uri.UriSchemeHttps)) && uri.AbsolutePath == "/")
        {
            return uri;
        }

        result.AddError(https
            ? $"'{text}' is not an address such as http://127.0.0.1:8080 or https://0.0.0.0:8443 (http or https, an IP address or localhost, a port, no path)."
            : $"'{text}' is not an address such as http://127.0.0.1:8080 (http, an IP address or localhost, a port, no path).");
        return null!;
    }
}

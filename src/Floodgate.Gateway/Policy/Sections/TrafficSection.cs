using System.Globalization;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Transforms;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// How the proxy carries traffic: the top-level <c>proxy</c> section, whose fields are the defaults of every route and
/// cluster, and each route's and cluster's own fields, written straight onto YARP's <see cref="RouteConfig"/> (body size
/// limit, forwarded headers, original host) and <see cref="ClusterConfig"/> (HTTP version and policy, activity timeout;
/// upstream TLS through <see cref="UpstreamTlsSection"/>).
/// </summary>
internal sealed class TrafficSection
{
    /// <summary>The fields a route may set.</summary>
    public static readonly string[] RouteFields = ["max_request_body_size", "x_forwarded", "original_host"];

    /// <summary>The fields a cluster (or a route with destinations of its own) may set.</summary>
    public static readonly string[] ClusterFields = ["http_version", "version_policy", "activity_timeout", "tls"];

    /// <summary>Route metadata: the route's body size limit again (see <see cref="Route"/>).</summary>
    public const string MaxRequestBodySizeKey = "floodgate.max_request_body_size";

    // YARP refuses a timeout of zero; CancellationTokenSource.CancelAfter takes at most about 24.8 days.
    private static readonly TimeSpan MinimumTimeout = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaximumTimeout = TimeSpan.FromDays(7);

    private readonly YamlReader _reader;
    private readonly long? _maxRequestBodySize;
    private readonly TimeSpan? _activityTimeout;
    private readonly ForwardedTransformActions _xForwarded;
    private readonly bool _originalHost;

    private TrafficSection(YamlReader reader, YamlMappingNode? defaults)
    {
        _reader = reader;
        _maxRequestBodySize = reader.Size(defaults, "max_request_body_size", "proxy", 0, unlimited: true);
        _activityTimeout = reader.Duration(defaults, "activity_timeout", "proxy", MinimumTimeout, MaximumTimeout);
        _xForwarded = XForwarded(defaults, "proxy") ?? ForwardedTransformActions.Append;
        _originalHost = reader.Bool(defaults, "original_host", "proxy") ?? false;
    }

    /// <summary>Reads the <c>proxy</c> section: the defaults of the routes and clusters read next.</summary>
    public static TrafficSection Read(YamlReader reader, YamlMappingNode root) =>
        new(reader, reader.Map(YamlReader.Get(root, "proxy"), "proxy", [.. RouteFields, "activity_timeout"]));

    /// <summary>
    /// <paramref name="route"/> with the traffic fields of <paramref name="map"/> (the route's entry; <see langword="null"/>
    /// for a route the policy makes itself), or the <c>proxy</c> section's where the route sets none.
    /// </summary>
    public RouteConfig Route(RouteConfig route, YamlMappingNode? map, string field)
    {
        var size = _reader.Size(map, "max_request_body_size", field, 0, unlimited: true) ?? _maxRequestBodySize;
        var xForwarded = XForwarded(map, field) ?? _xForwarded;
        var originalHost = _reader.Bool(map, "original_host", field) ?? _originalHost;

        // YARP 2.3's RouteConfig.Equals leaves MaxRequestBodySize out, so a reload that changed only the limit would keep
        // the route as it was: the limit in the metadata makes the change seen.
        var metadata = new Dictionary<string, string>(route.Metadata ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        if (size is not null)
        {
            metadata[MaxRequestBodySizeKey] = size.Value.ToString(CultureInfo.InvariantCulture);
        }

        // Always explicit: without an X-Forwarded transform YARP adds its own, with Set.
        return (route with { MaxRequestBodySize = size, Metadata = metadata.Count > 0 ? metadata : null })
            .WithTransformXForwarded(xDefault: xForwarded)
            .WithTransformUseOriginalHostHeader(originalHost);
    }

    /// <summary>
    /// <paramref name="cluster"/> with the traffic fields of <paramref name="map"/> (a cluster's entry, or a route's with
    /// destinations of its own; <see langword="null"/> for the upstream shortcut's), or the <c>proxy</c> section's.
    /// </summary>
    public ClusterConfig Cluster(ClusterConfig cluster, YamlMappingNode? map, string field)
    {
        var addresses = (cluster.Destinations?.Values ?? []).Select(d => new Uri(d.Address)).ToList();
        var (version, policy) = ReadVersion(map, field, addresses);
        var timeout = _reader.Duration(map, "activity_timeout", field, MinimumTimeout, MaximumTimeout) ?? _activityTimeout;
        if (version is not null || policy is not null || timeout is not null)
        {
            cluster = cluster with { HttpRequest = new ForwarderRequestConfig { Version = version, VersionPolicy = policy, ActivityTimeout = timeout } };
        }

        return UpstreamTlsSection.Apply(_reader, cluster, map, field, addresses);
    }

    /// <summary>Refuses the cluster fields on a route that sends to a named cluster: they belong to that cluster.</summary>
    public void RefuseClusterFields(YamlMappingNode route, string field, string clusterId)
    {
        foreach (var name in ClusterFields)
        {
            if (YamlReader.Get(route, name) is { } node)
            {
                _reader.Error(node, YamlReader.Join(field, name), $"is a setting of the cluster the route sends to: set it on clusters.{clusterId}, or give the route destinations of its own.");
            }
        }
    }

    private ForwardedTransformActions? XForwarded(YamlMappingNode? map, string field) => _reader.Enum(
        map,
        "x_forwarded",
        field,
        ("append", ForwardedTransformActions.Append),
        ("set", ForwardedTransformActions.Set),
        ("remove", ForwardedTransformActions.Remove),
        ("off", ForwardedTransformActions.Off));

    /// <summary>
    /// <c>http_version</c> and <c>version_policy</c>: <c>h2c</c> is HTTP/2 with no fallback, which on an <c>http://</c>
    /// destination means HTTP/2 with prior knowledge (with <c>or_lower</c>, YARP's default, cleartext goes HTTP/1.1).
    /// </summary>
    private (Version? Version, HttpVersionPolicy? Policy) ReadVersion(YamlMappingNode? map, string field, List<Uri> addresses)
    {
        var text = _reader.String(map, "http_version", field);
        var policy = _reader.Enum(
            map,
            "version_policy",
            field,
            ("or_lower", HttpVersionPolicy.RequestVersionOrLower),
            ("or_higher", HttpVersionPolicy.RequestVersionOrHigher),
            ("exact", HttpVersionPolicy.RequestVersionExact));
        if (text is null)
        {
            return (null, policy);
        }

        var node = YamlReader.Get(map, "http_version");
        var versionField = YamlReader.Join(field, "http_version");
        Version? version = text.Trim().ToLowerInvariant() switch
        {
            "1.0" => System.Net.HttpVersion.Version10,
            "1" or "1.1" => System.Net.HttpVersion.Version11,
            "2" or "2.0" or "h2c" => System.Net.HttpVersion.Version20,
            "3" or "3.0" => System.Net.HttpVersion.Version30,
            _ => null,
        };
        if (version is null)
        {
            _reader.Error(node, versionField, $"'{text}' is not one of: 1.0, 1.1, 2, h2c, 3.");
            return (null, policy);
        }

        if (string.Equals(text.Trim(), "h2c", StringComparison.OrdinalIgnoreCase))
        {
            if (policy is not null and not HttpVersionPolicy.RequestVersionExact)
            {
                _reader.Error(YamlReader.Get(map, "version_policy"), YamlReader.Join(field, "version_policy"), "h2c is HTTP/2 with no fallback: leave version_policy out, or make it exact.");
            }

            if (addresses.FirstOrDefault(a => a.Scheme != Uri.UriSchemeHttp) is { } tls)
            {
                _reader.Error(node, versionField, $"h2c is HTTP/2 in cleartext, and {tls} is https: use http_version: 2 for HTTP/2 over TLS.");
            }

            return (version, HttpVersionPolicy.RequestVersionExact);
        }

        if (version.Major == 3 && addresses.FirstOrDefault(a => a.Scheme != Uri.UriSchemeHttps) is { } cleartext)
        {
            _reader.Error(node, versionField, $"HTTP/3 runs over TLS (QUIC) only, and {cleartext} is http.");
        }

        return (version, policy);
    }
}

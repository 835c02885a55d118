using System.Security.Authentication;
using Floodgate.Redis;
using Floodgate.Tls;
using YamlDotNet.RepresentationModel;
using Yarp.ReverseProxy.Configuration;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// A cluster's <c>tls</c> section: how the gateway checks its https upstreams and shows itself to them. The protocols go
/// onto YARP's <see cref="HttpClientConfig.SslProtocols"/>, the server name onto each destination's
/// <see cref="DestinationConfig.Host"/> (the Host header, which the HTTP client also sends as SNI), and what
/// <see cref="HttpClientConfig"/> has no field for (a private CA, a client certificate, the name checked) into the
/// cluster's metadata, which the gateway's HTTP client factory (<c>Hosting/UpstreamClientFactory</c>) reads.
/// </summary>
internal static class UpstreamTlsSection
{
    /// <summary>Metadata: the PEM file of the authorities the cluster's upstreams are checked against, instead of the machine's.</summary>
    public const string AuthorityKey = "floodgate.tls.ca";

    /// <summary>Metadata: the PEM file of the client certificate shown to the upstreams.</summary>
    public const string ClientCertificateKey = "floodgate.tls.client_cert";

    /// <summary>Metadata: the PEM file of the client certificate's key, when it is not in the certificate's file.</summary>
    public const string ClientKeyKey = "floodgate.tls.client_key";

    /// <summary>Metadata: the name the upstreams' certificates must carry.</summary>
    public const string ServerNameKey = "floodgate.tls.server_name";

    private static readonly string[] Fields = ["ca", "client_cert", "client_key", "server_name", "protocols"];

    /// <summary><paramref name="cluster"/> with the <c>tls</c> section of <paramref name="map"/> applied, if it has one.</summary>
    public static ClusterConfig Apply(YamlReader reader, ClusterConfig cluster, YamlMappingNode? map, string field, List<Uri> addresses)
    {
        field = YamlReader.Join(field, "tls");
        var tls = reader.Map(YamlReader.Get(map, "tls"), field, Fields);
        if (tls is null)
        {
            return cluster;
        }

        if (addresses.FirstOrDefault(a => a.Scheme != Uri.UriSchemeHttps) is { } cleartext)
        {
            reader.Error(YamlReader.Get(map, "tls"), field, $"applies to https:// destinations, and {cleartext} is http.");
        }

        var metadata = new Dictionary<string, string>(cluster.Metadata ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        if (ReadablePath(reader, tls, "ca", field, "CA certificate file") is { } ca)
        {
            CheckAuthorities(reader, tls, field, ca);
            metadata[AuthorityKey] = ca;
        }

        var certificate = ReadablePath(reader, tls, "client_cert", field, "client certificate file");
        var key = ReadablePath(reader, tls, "client_key", field, "client key file");
        if (YamlReader.Get(tls, "client_key") is { } keyNode && YamlReader.Get(tls, "client_cert") is null)
        {
            reader.Error(keyNode, YamlReader.Join(field, "client_key"), "a client key needs its certificate: set client_cert too.");
        }

        if (certificate is not null && (key is not null || YamlReader.Get(tls, "client_key") is null))
        {
            CheckClientCertificate(reader, tls, field, certificate, key);
            metadata[ClientCertificateKey] = certificate;
            if (key is not null)
            {
                metadata[ClientKeyKey] = key;
            }
        }

        var serverName = reader.String(tls, "server_name", field);
        if (serverName is not null && Uri.CheckHostName(serverName) is not (UriHostNameType.Dns or UriHostNameType.IPv4 or UriHostNameType.IPv6))
        {
            reader.Error(YamlReader.Get(tls, "server_name"), YamlReader.Join(field, "server_name"), $"'{serverName}' is not a host name such as api.internal.example.");
            serverName = null;
        }

        if (serverName is not null)
        {
            metadata[ServerNameKey] = serverName;
        }

        return cluster with
        {
            Metadata = metadata,
            HttpClient = (cluster.HttpClient ?? new HttpClientConfig()) with { SslProtocols = Protocols(reader, tls, field) },
            Destinations = serverName is null
                ? cluster.Destinations
                : cluster.Destinations?.ToDictionary(d => d.Key, d => d.Value with { Host = serverName }, StringComparer.OrdinalIgnoreCase),
        };
    }

    private static SslProtocols? Protocols(YamlReader reader, YamlMappingNode tls, string field)
    {
        SslProtocols? protocols = null;
        foreach (var (name, node) in reader.StringList(tls, "protocols", field))
        {
            var protocol = name.Trim().ToLowerInvariant() switch
            {
                "tls12" or "tls1.2" => SslProtocols.Tls12,
                "tls13" or "tls1.3" => SslProtocols.Tls13,
                _ => SslProtocols.None,
            };
            if (protocol == SslProtocols.None)
            {
                // TLS 1.0 and 1.1 are deprecated (RFC 8996), and the platform refuses them.
                reader.Error(node, YamlReader.Join(field, "protocols"), $"'{name}' is not one of: tls12, tls13.");
                continue;
            }

            protocols = (protocols ?? SslProtocols.None) | protocol;
        }

        return protocols;
    }

    /// <summary>The path a field names, home expanded, when the file exists and can be opened; otherwise reported.</summary>
    private static string? ReadablePath(YamlReader reader, YamlMappingNode tls, string key, string field, string what)
    {
        if (reader.String(tls, key, field) is not { } path)
        {
            return null;
        }

        var node = YamlReader.Get(tls, key);
        var full = PolicyLoader.ExpandHome(path);
        try
        {
            using var stream = System.IO.File.OpenRead(full);
            return full;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            reader.Error(node, YamlReader.Join(field, key), $"the {what} '{path}' does not exist.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            reader.Error(node, YamlReader.Join(field, key), $"the {what} '{path}' cannot be read: {e.Message}");
        }

        return null;
    }

    private static void CheckAuthorities(YamlReader reader, YamlMappingNode tls, string field, string path)
    {
        var authorities = PemCertificates.ReadAuthorities(path, out var problem);
        if (authorities is null)
        {
            reader.Error(YamlReader.Get(tls, "ca"), YamlReader.Join(field, "ca"), $"'{reader.String(tls, "ca", field)}' {problem}");
            return;
        }

        foreach (var authority in authorities)
        {
            authority.Dispose();
        }
    }

    private static void CheckClientCertificate(YamlReader reader, YamlMappingNode tls, string field, string certificate, string? key)
    {
        using var client = PemCertificates.ReadClientCertificate(certificate, key, out var problem);
        if (client is null)
        {
            var pair = key is null ? $"'{reader.String(tls, "client_cert", field)}' (with its key in the same file)" : $"'{reader.String(tls, "client_cert", field)}' with the key '{reader.String(tls, "client_key", field)}'";
            reader.Error(YamlReader.Get(tls, "client_cert"), YamlReader.Join(field, "client_cert"), $"{pair} {problem}");
        }
    }
}

using Floodgate.Gateway.Policy.Sections;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// YARP's HTTP client factory, plus what <see cref="Yarp.ReverseProxy.Configuration.HttpClientConfig"/> cannot say: a
/// cluster's <c>tls</c> section (a private CA trusted for that cluster only, a client certificate, the name checked),
/// which the policy puts in the cluster's metadata (<see cref="UpstreamTlsSection"/>). Each cluster has its own client,
/// so its trust never reaches another cluster.
/// </summary>
internal sealed class UpstreamClientFactory(ILogger<ForwarderHttpClientFactory> logger, ILoggerFactory loggers) : ForwarderHttpClientFactory(logger)
{
    private static readonly string[] TlsKeys = [UpstreamTlsSection.AuthorityKey, UpstreamTlsSection.ClientCertificateKey, UpstreamTlsSection.ClientKeyKey, UpstreamTlsSection.ServerNameKey];
    private readonly ILogger _tlsLogger = loggers.CreateLogger("Floodgate.Gateway.UpstreamTls");

    /// <summary>The old client serves on only when the TLS settings are the same too (the base compares the client config alone).</summary>
    protected override bool CanReuseOldClient(ForwarderHttpClientContext context) =>
        base.CanReuseOldClient(context) && TlsKeys.All(key => Value(context.OldMetadata, key) == Value(context.NewMetadata, key));

    /// <inheritdoc/>
    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        var authority = Value(context.NewMetadata, UpstreamTlsSection.AuthorityKey);
        var certificate = Value(context.NewMetadata, UpstreamTlsSection.ClientCertificateKey);
        var serverName = Value(context.NewMetadata, UpstreamTlsSection.ServerNameKey);
        if (authority is not null || certificate is not null || serverName is not null)
        {
            UpstreamTls.Configure(handler.SslOptions, context.ClusterId, authority, certificate, Value(context.NewMetadata, UpstreamTlsSection.ClientKeyKey), serverName, _tlsLogger);
        }
    }

    private static string? Value(IReadOnlyDictionary<string, string>? metadata, string key) =>
        metadata is not null && metadata.TryGetValue(key, out var value) ? value : null;
}

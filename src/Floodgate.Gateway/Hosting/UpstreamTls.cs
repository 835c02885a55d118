using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Floodgate.Redis;
using Floodgate.Tls;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// The TLS of one cluster's upstream connections: its upstreams are trusted when their certificate chains to the
/// cluster's own CA file (the machine's trust store is not consulted then) and, with a server name, carries that name;
/// the gateway shows the cluster's client certificate when an upstream asks for one.
/// </summary>
/// <remarks>
/// The files are read when the cluster's HTTP client is built (at start, and by a reload that changes the cluster), and
/// again at the next handshake after they change (by last write time and length), so a renewed client certificate or a
/// rotated CA is used from the next connection on, without a reload; a change that cannot be used is logged and the
/// last good files stay in use. Connections already open keep their handshake.
/// </remarks>
internal static partial class UpstreamTls
{
    /// <summary>Sets <paramref name="ssl"/>'s certificate callbacks for the cluster <paramref name="cluster"/>.</summary>
    public static void Configure(SslClientAuthenticationOptions ssl, string cluster, string? authorityFile, string? certificateFile, string? keyFile, string? serverName, ILogger logger)
    {
        var authorities = authorityFile is null
            ? null
            : Watch<X509Certificate2Collection>(cluster, [authorityFile], (out string? problem) => PemCertificates.ReadAuthorities(authorityFile, out problem), logger);
        if (certificateFile is not null)
        {
            var client = Watch<X509Certificate2>(
                cluster,
                keyFile is null ? [certificateFile] : [certificateFile, keyFile],
                (out string? problem) => PemCertificates.ReadClientCertificate(certificateFile, keyFile, out problem),
                logger);
            ssl.LocalCertificateSelectionCallback = (_, _, _, _, _) => client.Current!;
        }

        ssl.RemoteCertificateValidationCallback = (_, certificate, chain, errors) => IsTrusted(authorities?.Current, authorities is not null, serverName, certificate, chain, errors);
    }

    /// <summary>
    /// Whether an upstream's certificate is trusted: it names <paramref name="serverName"/> when one is given (else the
    /// host the client connected to, as the platform checked), and chains to one of <paramref name="authorities"/> when
    /// the cluster has a CA file (else to the machine's trust store, as the platform checked).
    /// </summary>
    internal static bool IsTrusted(X509Certificate2Collection? authorities, bool hasAuthorityFile, string? serverName, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null)
        {
            return false;
        }

        if (serverName is not null)
        {
            // The platform checked the name the connection was made for (the Host header, which a route forwarding the
            // original host sets); the cluster's name is the one that counts.
            using var copy = certificate is X509Certificate2 ? null : X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            if (!(copy ?? (X509Certificate2)certificate).MatchesHostname(serverName))
            {
                return false;
            }

            errors &= ~SslPolicyErrors.RemoteCertificateNameMismatch;
        }

        if (!hasAuthorityFile)
        {
            return errors == SslPolicyErrors.None;
        }

        // A CA file that never could be read trusts nothing.
        return authorities is not null && PemCertificates.IsTrusted(authorities, certificate, chain, errors);
    }

    /// <summary>Reads the cluster's files now (a failure is logged, and trusts nothing) and watches them.</summary>
    private static WatchedFiles<T> Watch<T>(string cluster, string[] paths, WatchedFiles<T>.Loader load, ILogger logger)
        where T : class
    {
        var watched = new WatchedFiles<T>(
            paths,
            load(out var problem),
            load,
            files => LogReloaded(logger, cluster, files),
            (files, reason) => LogRefused(logger, cluster, reason, files));
        if (watched.Current is null)
        {
            LogRefused(logger, cluster, problem ?? "unreadable", watched.Files);
        }

        return watched;
    }

    [LoggerMessage(60, LogLevel.Information, "The TLS files of cluster {Cluster} changed and were read again: {Files}; new upstream connections use them")]
    private static partial void LogReloaded(ILogger logger, string cluster, string files);

    [LoggerMessage(61, LogLevel.Error, "The TLS files of cluster {Cluster} cannot be used, and the last good ones (if any) stay in use: {Reason} ({Files})")]
    private static partial void LogRefused(ILogger logger, string cluster, string reason, string files);
}

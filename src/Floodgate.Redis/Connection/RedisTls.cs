using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Floodgate.Tls;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// TLS beyond what the configuration string can say: servers whose certificates a private certificate authority
/// signed, and a client certificate for servers that require one (mutual TLS).
/// </summary>
/// <remarks>
/// The files are read again at the next handshake after they change (by last write time and length), so a renewed
/// client certificate or a rotated authority is used from the next connection on, without a restart; a change that
/// cannot be used is logged and the last good files stay in use. Connections already open keep their handshake.
/// </remarks>
internal static partial class RedisTls
{
    /// <summary>Applies <paramref name="options"/>' TLS files to <paramref name="configuration"/>; either file turns TLS on.</summary>
    /// <exception cref="ArgumentException">A file is missing, unreadable or not what it should be.</exception>
    public static void Apply(ConfigurationOptions configuration, RedisStoreOptions options, ILogger logger)
    {
        if (options.TrustedCertificateAuthority is { } authorityFile)
        {
            var authorities = Watch([authorityFile], LoadAuthorities(authorityFile), (out string? problem) => PemCertificates.ReadAuthorities(authorityFile, out problem), logger);
            configuration.Ssl = true;
            // Read above without a failure, so it always holds a value.
            configuration.CertificateValidation += (_, certificate, chain, errors) => PemCertificates.IsTrusted(authorities.Current!, certificate, chain, errors);
        }

        if (options.ClientCertificate is { } certificateFile)
        {
            var keyFile = options.ClientCertificateKey;
            var client = Watch(
                keyFile is null ? [certificateFile] : [certificateFile, keyFile],
                LoadClientCertificate(certificateFile, keyFile),
                (out string? problem) => PemCertificates.ReadClientCertificate(certificateFile, keyFile, out problem),
                logger);
            configuration.Ssl = true;
            configuration.CertificateSelection += (_, _, _, _, _) => client.Current;
        }
    }

    private static WatchedFiles<T> Watch<T>(string[] paths, T initial, WatchedFiles<T>.Loader load, ILogger logger)
        where T : class
        => new(paths, initial, load, files => LogReloaded(logger, files), (files, reason) => LogReloadRefused(logger, files, reason));

    [LoggerMessage(20, LogLevel.Information, "Redis TLS files changed and were read again: {Files}; new connections use them")]
    private static partial void LogReloaded(ILogger logger, string files);

    [LoggerMessage(21, LogLevel.Error, "Redis TLS files changed but cannot be used, the last good ones stay in use: {Reason} ({Files})")]
    private static partial void LogReloadRefused(ILogger logger, string files, string reason);

    /// <summary>The certificates of a PEM file of one or more certificate authorities.</summary>
    /// <exception cref="ArgumentException">The file is missing, unreadable or holds no PEM certificate.</exception>
    public static X509Certificate2Collection LoadAuthorities(string path)
    {
        const string Name = nameof(RedisStoreOptions.TrustedCertificateAuthority);
        if (string.IsNullOrWhiteSpace(path))
        {
            throw new ArgumentException($"The trusted certificate authority file ({Name}) must be a path to a PEM file.", Name);
        }

        return PemCertificates.ReadAuthorities(path, out var problem)
            ?? throw new ArgumentException($"The trusted certificate authority file ({Name}) '{path}' {problem}", Name);
    }

    /// <summary>A client certificate with its private key, from PEM files.</summary>
    /// <param name="certificatePath">The certificate's PEM file.</param>
    /// <param name="keyPath">The private key's PEM file; when <see langword="null"/>, the key is read from <paramref name="certificatePath"/>.</param>
    /// <exception cref="ArgumentException">A file is missing or unreadable, or the key is missing or does not match.</exception>
    public static X509Certificate2 LoadClientCertificate(string certificatePath, string? keyPath)
    {
        const string Name = nameof(RedisStoreOptions.ClientCertificate);
        if (string.IsNullOrWhiteSpace(certificatePath) || (keyPath is not null && string.IsNullOrWhiteSpace(keyPath)))
        {
            throw new ArgumentException($"The client certificate ({Name}) and its key ({nameof(RedisStoreOptions.ClientCertificateKey)}) must be paths to PEM files.", Name);
        }

        var files = keyPath is null ? $"'{certificatePath}'" : $"'{certificatePath}' with the key '{keyPath}'";
        return PemCertificates.ReadClientCertificate(certificatePath, keyPath, out var problem)
            ?? throw new ArgumentException($"The client certificate ({Name}) {files} {problem}", Name);
    }
}

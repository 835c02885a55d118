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
            var authorities = new FileBacked<X509Certificate2Collection>([authorityFile], () => LoadAuthorities(authorityFile), logger);
            configuration.Ssl = true;
            configuration.CertificateValidation += (_, certificate, chain, errors) => PemCertificates.IsTrusted(authorities.Current, certificate, chain, errors);
        }

        if (options.ClientCertificate is { } certificateFile)
        {
            var keyFile = options.ClientCertificateKey;
            var client = new FileBacked<X509Certificate2>(
                keyFile is null ? [certificateFile] : [certificateFile, keyFile],
                () => LoadClientCertificate(certificateFile, keyFile),
                logger);
            configuration.Ssl = true;
            configuration.CertificateSelection += (_, _, _, _, _) => client.Current;
        }
    }

    /// <summary>
    /// A value read from files, read again on first use after any of them changed. A change that cannot be read keeps
    /// the last good value (logged) until the files change again.
    /// </summary>
    internal sealed class FileBacked<T>
        where T : class
    {
        private readonly string[] _paths;
        private readonly Func<T> _load;
        private readonly ILogger _logger;
        // Guards the stamps and the value read with them.
        private readonly Lock _filesLock = new();
        private (DateTime Written, long Length)[] _stamps;
        private T _value;

        /// <summary>Reads the files now.</summary>
        /// <exception cref="ArgumentException">They cannot be used.</exception>
        public FileBacked(string[] paths, Func<T> load, ILogger logger)
        {
            _paths = paths;
            _load = load;
            _logger = logger;
            _stamps = Stamps(paths);
            _value = load();
        }

        /// <summary>The value of the files as they are now, or the last good one.</summary>
        public T Current
        {
            get
            {
                lock (_filesLock)
                {
                    var stamps = Stamps(_paths);
                    if (stamps.AsSpan().SequenceEqual(_stamps))
                    {
                        return _value;
                    }

                    // Recorded first, so a file that cannot be used is not read again at every handshake.
                    _stamps = stamps;
                    try
                    {
                        // The previous value is not disposed: a connection made with it may still be using it.
                        _value = _load();
                        LogReloaded(_logger, string.Join(", ", _paths));
                    }
                    catch (ArgumentException e)
                    {
                        LogReloadRefused(_logger, string.Join(", ", _paths), e.Message);
                    }

                    return _value;
                }
            }
        }

        private static (DateTime, long)[] Stamps(string[] paths)
        {
            var stamps = new (DateTime, long)[paths.Length];
            for (var i = 0; i < paths.Length; i++)
            {
                var file = new FileInfo(paths[i]);
                stamps[i] = file.Exists ? (file.LastWriteTimeUtc, file.Length) : (DateTime.MinValue, -1);
            }

            return stamps;
        }
    }

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

using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Floodgate.Gateway.Operations;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// The proxy listener's TLS certificate: a PEM certificate (then any intermediates) and its PEM private key. The files
/// are watched and read again when they change, so a renewed certificate is served to new connections without a
/// restart; a file that does not hold a usable certificate is refused, logged and counted, and the last good one stays.
/// </summary>
internal sealed partial class ListenerCertificate : IDisposable
{
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(300);
    private const string ServerAuthentication = "1.3.6.1.5.5.7.3.1";

    private readonly string _certificatePath;
    private readonly string _keyPath;
    private readonly TimeProvider _time;
    private ILogger _logger = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
    private DebouncedWatcher? _watcher;
    private ITimer? _retry;
    private readonly Lock _reloading = new();
    private volatile Loaded _current;
    private bool _disposed;

    // The fingerprint of files last refused for their content (not their time): not parsed or logged again until they change.
    private byte[]? _refused;

    private ListenerCertificate(string certificatePath, string keyPath, TimeProvider time, Loaded first)
    {
        _certificatePath = certificatePath;
        _keyPath = keyPath;
        _time = time;
        _current = first;
    }

    /// <summary>Reads the files; <see cref="Watch"/> then keeps them in force.</summary>
    /// <param name="certificatePath">The PEM certificate, then any intermediates, leaf first.</param>
    /// <param name="keyPath">The PEM private key; <see langword="null"/> when it is in the certificate file.</param>
    /// <param name="time">The clock that tells whether the certificate is valid now.</param>
    /// <exception cref="InvalidOperationException">The files do not hold a certificate the listener can serve.</exception>
    public static ListenerCertificate Load(string certificatePath, string? keyPath, TimeProvider time)
    {
        var fullCertificate = Path.GetFullPath(certificatePath);
        var fullKey = Path.GetFullPath(keyPath ?? certificatePath);
        return new ListenerCertificate(fullCertificate, fullKey, time, Read(fullCertificate, fullKey, time));
    }

    /// <summary>Kestrel's per-connection TLS options: the current certificate and its chain (Kestrel adds ALPN).</summary>
    public ValueTask<SslServerAuthenticationOptions> OnConnection(TlsHandshakeCallbackContext context) => Options(AskForClientCertificate?.Invoke() == true);

    /// <summary>
    /// TLS options for another listener serving this certificate (the admin port), which asks for a client certificate
    /// when <paramref name="ask"/> says so, whatever <see cref="AskForClientCertificate"/> says for the proxy.
    /// </summary>
    public Func<TlsHandshakeCallbackContext, ValueTask<SslServerAuthenticationOptions>> Asking(Func<bool> ask)
    {
        ArgumentNullException.ThrowIfNull(ask);
        return _ => Options(ask());
    }

    private ValueTask<SslServerAuthenticationOptions> Options(bool askForClientCertificate)
    {
        if (!askForClientCertificate)
        {
            return new(new SslServerAuthenticationOptions { ServerCertificateContext = _current.Context });
        }

        // Asked for, never required, and any certificate is taken: the admin scheme checks it, a bypass rule compares its SHA-256 thumbprint with the
        // ones it pins, which no chain of trust would add to, and a client without one is served as any other.
        return new(new SslServerAuthenticationOptions
        {
            ServerCertificateContext = _current.Context,
            ClientCertificateRequired = true,
            RemoteCertificateValidationCallback = static (_, _, _, _) => true,
        });
    }

    /// <summary>Whether to ask the client for a certificate on a new connection; never when not set.</summary>
    public Func<bool>? AskForClientCertificate { get; set; }

    /// <summary>Reads the files again now; keeps the certificate in force when they are unchanged or not usable.</summary>
    /// <returns>Whether a new certificate is in force.</returns>
    public bool Reload()
    {
        lock (_reloading)
        {
            if (_disposed)
            {
                return false;
            }

            Loaded next;
            byte[]? fingerprint = null;
            try
            {
                // Any change in the directories wakes this up (the policy file may live beside the certificate): files
                // unchanged since they were last read, whether they are in force or were refused, are not parsed again.
                var files = ReadFiles(_certificatePath, _keyPath);
                fingerprint = Fingerprint(files);
                if (fingerprint.AsSpan().SequenceEqual(_current.Fingerprint) || fingerprint.AsSpan().SequenceEqual(_refused))
                {
                    return false;
                }

                next = Parse(_certificatePath, _keyPath, files, fingerprint, _time);
            }
            catch (Exception e)
            {
                // On a timer thread nothing may escape: whatever the files hold, the certificate in force stays.
                GatewayMetrics.CertificateReloads.Add(1, new KeyValuePair<string, object?>("result", "refused"));
                Log.Refused(_logger, _current.Leaf.Thumbprint, e.Message);
                if (e is NotYetValidException early)
                {
                    // A renewal issued a moment ahead of this clock: try again when it becomes valid by this clock, not
                    // on the next change (a change meanwhile is read at once, by the watcher).
                    var wait = early.NotBefore - _time.GetUtcNow() + TimeSpan.FromSeconds(1);
                    wait = wait < Debounce ? Debounce : wait > TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : wait;
                    _retry?.Dispose();
                    _retry = _time.CreateTimer(static state => ((ListenerCertificate)state!).Reload(), this, wait, Timeout.InfiniteTimeSpan);
                }
                else
                {
                    _refused = fingerprint;
                }

                return false;
            }

            // The previous certificate is not disposed: a handshake that began with it may still be reading it.
            _current = next;
            GatewayMetrics.CertificateReloads.Add(1, new KeyValuePair<string, object?>("result", "applied"));
            Log.Reloaded(_logger, next.Leaf.Subject, next.Leaf.Thumbprint, next.Leaf.NotAfter.ToUniversalTime(), next.Intermediates);
            return true;
        }
    }

    public void Dispose()
    {
        lock (_reloading)
        {
            _disposed = true;
            _retry?.Dispose();
        }

        _watcher?.Dispose();
    }

    /// <summary>Logs the certificate in force and reads the files again whenever they change, logging to <paramref name="logger"/>.</summary>
    public void Watch(ILogger logger)
    {
        _logger = logger;
        var loaded = _current;
        Log.Loaded(logger, loaded.Leaf.Subject, loaded.Leaf.Thumbprint, loaded.Leaf.NotAfter.ToUniversalTime(), loaded.Intermediates);

        // The directories are watched, not the file names: a mounted secret is replaced by swapping a symbolic link
        // beside the files, which names neither of them. A directory reached through a link that is swapped (a deploy
        // tool's current -> releases/vN) is followed to its new target. Unchanged content is recognised and ignored.
        lock (_reloading)
        {
            _watcher ??= new DebouncedWatcher([Path.GetDirectoryName(_certificatePath)!, Path.GetDirectoryName(_keyPath)!], null, Debounce, () => Reload(), logger);
        }
    }

    private static Loaded Read(string certificatePath, string keyPath, TimeProvider time)
    {
        var files = ReadFiles(certificatePath, keyPath);
        return Parse(certificatePath, keyPath, files, Fingerprint(files), time);
    }

    private static (string Certificate, string Key) ReadFiles(string certificatePath, string keyPath)
    {
        try
        {
            var certificate = File.ReadAllText(certificatePath);
            return (certificate, keyPath == certificatePath ? certificate : File.ReadAllText(keyPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"the TLS certificate cannot be read: {e.Message}", e);
        }
    }

    private static byte[] Fingerprint((string Certificate, string Key) files) =>
        SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(files.Certificate + "\n" + files.Key));

    private static Loaded Parse(string certificatePath, string keyPath, (string Certificate, string Key) files, byte[] fingerprint, TimeProvider time)
    {
        var (certificatePem, keyPem) = files;
        X509Certificate2 leaf;
        var chain = new X509Certificate2Collection();
        try
        {
            leaf = X509Certificate2.CreateFromPem(certificatePem, keyPem);
            chain.ImportFromPem(certificatePem);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw new InvalidOperationException(
                $"'{certificatePath}' (key '{keyPath}') does not hold a PEM certificate and its matching PEM private key: {e.Message}", e);
        }

        try
        {
            var now = time.GetUtcNow();
            if (now < leaf.NotBefore.ToUniversalTime())
            {
                throw new NotYetValidException(
                    $"the TLS certificate in '{certificatePath}' ({leaf.Subject}) is valid from {leaf.NotBefore.ToUniversalTime():u} to {leaf.NotAfter.ToUniversalTime():u}, not now ({now.UtcDateTime:u}).",
                    leaf.NotBefore.ToUniversalTime());
            }

            if (now >= leaf.NotAfter.ToUniversalTime())
            {
                throw new InvalidOperationException(
                    $"the TLS certificate in '{certificatePath}' ({leaf.Subject}) is valid from {leaf.NotBefore.ToUniversalTime():u} to {leaf.NotAfter.ToUniversalTime():u}, not now ({now.UtcDateTime:u}).");
            }

            foreach (var extension in leaf.Extensions)
            {
                if (extension is X509EnhancedKeyUsageExtension usage
                    && !usage.EnhancedKeyUsages.Cast<Oid>().Any(oid => oid.Value == ServerAuthentication))
                {
                    throw new InvalidOperationException(
                        $"the TLS certificate in '{certificatePath}' ({leaf.Subject}) is not for server authentication: its extended key usage lacks {ServerAuthentication}.");
                }
            }

            // Windows keeps a key read from PEM only in memory, which its TLS stack cannot use; a PKCS #12 round trip persists it.
            if (OperatingSystem.IsWindows())
            {
                var persisted = X509CertificateLoader.LoadPkcs12(leaf.Export(X509ContentType.Pkcs12), null);
                leaf.Dispose();
                leaf = persisted;
            }

            var intermediates = new X509Certificate2Collection();
            foreach (var certificate in chain)
            {
                if (certificate.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span))
                {
                    certificate.Dispose();
                }
                else
                {
                    intermediates.Add(certificate);
                }
            }

            var context = SslStreamCertificateContext.Create(leaf, intermediates, offline: true);
            return new Loaded(leaf, context, intermediates.Count, fingerprint);
        }
        catch
        {
            leaf.Dispose();
            throw;
        }
    }

    /// <summary>A certificate that is not valid yet, only because of the time: it may be tried again when it is.</summary>
    private sealed class NotYetValidException(string message, DateTimeOffset notBefore) : InvalidOperationException(message)
    {
        public DateTimeOffset NotBefore { get; } = notBefore;
    }

    private sealed record Loaded(X509Certificate2 Leaf, SslStreamCertificateContext Context, int Intermediates, byte[] Fingerprint);

    private static partial class Log
    {
        [LoggerMessage(30, LogLevel.Information, "TLS certificate {Subject} (thumbprint {Thumbprint}, expires {NotAfter:u}, {Intermediates} intermediate(s)) in force")]
        public static partial void Loaded(ILogger logger, string subject, string thumbprint, DateTime notAfter, int intermediates);

        [LoggerMessage(31, LogLevel.Information, "TLS certificate reloaded: {Subject} (thumbprint {Thumbprint}, expires {NotAfter:u}, {Intermediates} intermediate(s)) now serves new connections")]
        public static partial void Reloaded(ILogger logger, string subject, string thumbprint, DateTime notAfter, int intermediates);

        [LoggerMessage(32, LogLevel.Error, "TLS certificate reload refused; the certificate with thumbprint {Thumbprint} stays in force: {Reason}")]
        public static partial void Refused(ILogger logger, string thumbprint, string reason);
    }
}

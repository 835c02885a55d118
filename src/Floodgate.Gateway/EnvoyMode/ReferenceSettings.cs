using System.Globalization;
using Floodgate.Envoy;
using Floodgate.Redis;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.Gateway.EnvoyMode;

/// <summary>
/// The settings of <c>floodgate envoy</c>, read from envoyproxy/ratelimit's own environment variables
/// (src/settings/settings.go), so that moving from the reference is an image swap. Each variable Floodgate shares keeps
/// its name, its meaning and its default; a variable set to a value Floodgate cannot honour is refused, naming it.
/// </summary>
internal sealed record ReferenceSettings
{
    /// <summary>The bytes of the reference's local cache taken as one entry of Floodgate's over-limit cache.</summary>
    internal const int LocalCacheBytesPerEntry = 128;

    /// <summary>Sets the service's options: the configuration directory and everything the variables set.</summary>
    public required Action<EnvoyRateLimitOptions> ConfigureService { get; init; }

    /// <summary>Where the gRPC service listens: <c>GRPC_HOST</c>:<c>GRPC_PORT</c> (0.0.0.0:8081).</summary>
    public required Uri Grpc { get; init; }

    /// <summary>Where health and metrics listen: <c>HOST</c>:<c>PORT</c> (0.0.0.0:8080), as the reference's HTTP port.</summary>
    public required Uri Http { get; init; }

    /// <summary>With <c>USE_PROMETHEUS</c>: <c>PROMETHEUS_ADDR</c> (:9090), where metrics also listen; otherwise null.</summary>
    public Uri? Prometheus { get; init; }

    /// <summary><c>PROMETHEUS_PATH</c>: the path metrics are served at besides /metrics. Default /metrics.</summary>
    public string PrometheusPath { get; init; } = "/metrics";

    /// <summary>The Redis store's options (<c>BACKEND_TYPE=redis</c>, the default); null for the in-memory store.</summary>
    public RedisStoreOptions? Redis { get; init; }

    /// <summary><c>LOG_LEVEL</c>: WARN by default, as the reference's.</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Warning;

    /// <summary><c>LOG_FORMAT=json</c>: one JSON object a line.</summary>
    public bool JsonLogs { get; init; }

    /// <summary>Settings accepted but without effect here (such as <c>USE_STATSD</c>), to log once at start.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>Reads the settings from <paramref name="variables"/> (the environment).</summary>
    /// <exception cref="ReferenceSettingsException">A variable is invalid or asks for what Floodgate has not; every such variable is named.</exception>
    public static ReferenceSettings Read(Func<string, string?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var reader = new Reader(variables);
        var directory = Path.Combine(reader.Text("RUNTIME_ROOT", "/srv/runtime_data/current"), reader.Text("RUNTIME_SUBDIRECTORY", string.Empty), reader.Text("RUNTIME_APPDIRECTORY", "config"));
        var merge = reader.Bool("MERGE_DOMAIN_CONFIG", false);
        var shadow = reader.Bool("SHADOW_MODE", false);
        var quota = reader.Bool("QUOTA_MODE", false);
        var ratio = reader.Number("NEAR_LIMIT_RATIO", 0.8);
        var counting = reader.Bool("STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT", false) ? EnvoyHitCounting.StopWhenOverLimit : EnvoyHitCounting.All;
        var headers = reader.Bool("LIMIT_RESPONSE_HEADERS_ENABLED", false);
        var limitHeader = reader.Text("LIMIT_LIMIT_HEADER", "RateLimit-Limit");
        var remainingHeader = reader.Text("LIMIT_REMAINING_HEADER", "RateLimit-Remaining");
        var resetHeader = reader.Text("LIMIT_RESET_HEADER", "RateLimit-Reset");
        void Configure(EnvoyRateLimitOptions o)
        {
            o.ConfigDirectory = directory;
            o.MergeDomainConfigs = merge;
            o.GlobalShadowMode = shadow;
            o.GlobalQuotaMode = quota;
            o.NearLimitRatio = ratio;
            o.HitCounting = counting;
            o.ResponseHeadersEnabled = headers;
            o.LimitHeader = limitHeader;
            o.RemainingHeader = remainingHeader;
            o.ResetHeader = resetHeader;
        }

        var service = new EnvoyRateLimitOptions();
        Configure(service);

        // Both ways of watching reload here: the directory, and every link on the way to it, are always watched.
        reader.Bool("RUNTIME_WATCH_ROOT", true);
        reader.Bool("RUNTIME_IGNOREDOTFILES", false);
        try
        {
            service.Validate();
        }
        catch (OptionsValidationException e)
        {
            foreach (var failure in e.Failures)
            {
                reader.Errors.Add(failure);
            }
        }

        var notes = new List<string>();
        if (reader.Bool("USE_STATSD", true))
        {
            notes.Add("USE_STATSD: no statsd sink; the same counters are Prometheus metrics at /metrics on PORT (the Floodgate.Envoy meter).");
        }

        reader.Refuse("CONFIG_TYPE", "FILE", "configuration comes from files only (RUNTIME_ROOT); xDS is not read");
        reader.Refuse("GRPC_SERVER_USE_TLS", "false", "the gRPC port is HTTP/2 cleartext; terminate TLS in front of it (a sidecar or the mesh)", isBool: true);
        reader.Refuse("GRPC_UDS", string.Empty, "the gRPC service listens on GRPC_HOST:GRPC_PORT only");
        reader.Refuse("MEMCACHE_HOST_PORT", string.Empty, "there is no memcached store; use BACKEND_TYPE=redis");
        var settings = new ReferenceSettings
        {
            ConfigureService = Configure,
            Grpc = reader.Address("GRPC_HOST", "0.0.0.0", "GRPC_PORT", 8081),
            Http = reader.Address("HOST", "0.0.0.0", "PORT", 8080),
            Prometheus = reader.Bool("USE_PROMETHEUS", false) ? reader.PrometheusAddress() : null,
            PrometheusPath = reader.Text("PROMETHEUS_PATH", "/metrics"),
            Redis = reader.Redis(),
            LogLevel = reader.Level(),
            JsonLogs = reader.Choice("LOG_FORMAT", "text", "text", "json") == "json",
            Notes = notes,
        };
        if (!settings.PrometheusPath.StartsWith('/'))
        {
            reader.Errors.Add($"PROMETHEUS_PATH: '{settings.PrometheusPath}' must start with '/'.");
        }

        if (settings.Grpc.Port == settings.Http.Port && settings.Grpc.Port != 0)
        {
            reader.Errors.Add($"GRPC_PORT and PORT are both {settings.Grpc.Port}: the gRPC service and the health and metrics endpoints need a port each.");
        }

        return reader.Errors.Count > 0 ? throw new ReferenceSettingsException(reader.Errors) : settings;
    }

    /// <summary>Reads variables, collecting every error instead of stopping at the first.</summary>
    private sealed class Reader(Func<string, string?> variables)
    {
        public List<string> Errors { get; } = [];

        public string? Raw(string name) => variables(name) is { Length: > 0 } value ? value : null;

        public string Text(string name, string fallback) => Raw(name) ?? fallback;

        /// <summary>A boolean as Go's strconv.ParseBool reads it (1, t, true, TRUE, True; 0, f, false…).</summary>
        public bool Bool(string name, bool fallback)
        {
            switch (Raw(name))
            {
                case null:
                    return fallback;
                case "1" or "t" or "T" or "true" or "TRUE" or "True":
                    return true;
                case "0" or "f" or "F" or "false" or "FALSE" or "False":
                    return false;
                case var other:
                    Errors.Add($"{name}: '{other}' is not a boolean (true or false).");
                    return fallback;
            }
        }

        public double Number(string name, double fallback)
        {
            if (Raw(name) is not { } text)
            {
                return fallback;
            }

            if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                return value;
            }

            Errors.Add($"{name}: '{text}' is not a number such as {fallback.ToString(CultureInfo.InvariantCulture)}.");
            return fallback;
        }

        public int Port(string name, int fallback)
        {
            if (Raw(name) is not { } text)
            {
                return fallback;
            }

            if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port <= 65535)
            {
                return port;
            }

            Errors.Add($"{name}: '{text}' is not a port (0 to 65535).");
            return fallback;
        }

        public string Choice(string name, string fallback, params string[] allowed)
        {
            var value = Text(name, fallback);
            var match = allowed.FirstOrDefault(a => string.Equals(a, value, StringComparison.OrdinalIgnoreCase));
            if (match is null)
            {
                Errors.Add($"{name}: '{value}' is not one of {string.Join(", ", allowed)}.");
                return fallback;
            }

            return match;
        }

        /// <summary>Refuses a variable set to anything but its default, which Floodgate cannot honour.</summary>
        public void Refuse(string name, string fallback, string why, bool isBool = false)
        {
            var given = isBool ? (Bool(name, false) ? "true" : "false") : Text(name, fallback);
            if (!string.Equals(given, fallback, StringComparison.OrdinalIgnoreCase))
            {
                Errors.Add($"{name}={Raw(name)} is not supported: {why}.");
            }
        }

        public Uri Address(string hostName, string hostFallback, string portName, int portFallback)
        {
            var host = Text(hostName, hostFallback);
            var port = Port(portName, portFallback);
            if (!System.Net.IPAddress.TryParse(host, out var ip) && host != "localhost")
            {
                Errors.Add($"{hostName}: '{host}' is not an IP address (such as 0.0.0.0) or localhost.");
                return new Uri($"http://127.0.0.1:{port}");
            }

            return new Uri(string.Create(CultureInfo.InvariantCulture, $"http://{(ip?.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{host}]" : host)}:{port}"));
        }

        /// <summary><c>PROMETHEUS_ADDR</c>: <c>:9090</c> or <c>host:port</c>, as Go's net.Listen reads it.</summary>
        public Uri? PrometheusAddress()
        {
            var text = Text("PROMETHEUS_ADDR", ":9090");
            var colon = text.LastIndexOf(':');
            var host = colon > 0 ? text[..colon].Trim('[', ']') : "0.0.0.0";
            if (colon < 0 || !int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535
                || (!System.Net.IPAddress.TryParse(host, out _) && host != "localhost"))
            {
                Errors.Add($"PROMETHEUS_ADDR: '{text}' is not an address such as :9090 or 127.0.0.1:9090.");
                return null;
            }

            return new Uri(string.Create(CultureInfo.InvariantCulture, $"http://{(host.Contains(':', StringComparison.Ordinal) ? $"[{host}]" : host)}:{port}"));
        }

        public LogLevel Level()
        {
            var text = Text("LOG_LEVEL", "WARN");
            switch (text.ToUpperInvariant())
            {
                case "TRACE":
                    return LogLevel.Trace;
                case "DEBUG":
                    return LogLevel.Debug;
                case "INFO":
                    return LogLevel.Information;
                case "WARN" or "WARNING":
                    return LogLevel.Warning;
                case "ERROR":
                    return LogLevel.Error;
                case "FATAL" or "PANIC":
                    return LogLevel.Critical;
                default:
                    Errors.Add($"LOG_LEVEL: '{text}' is not one of trace, debug, info, warn, error, fatal, panic.");
                    return LogLevel.Warning;
            }
        }

        /// <summary>The Redis store of <c>BACKEND_TYPE=redis</c> (the default); null for <c>BACKEND_TYPE=memory</c>.</summary>
        public RedisStoreOptions? Redis()
        {
            var backend = Choice("BACKEND_TYPE", "redis", "redis", "memory", "memcache");
            if (backend == "memcache")
            {
                Errors.Add("BACKEND_TYPE=memcache is not supported: there is no memcached store; use redis, or memory for one replica.");
                return null;
            }

            if (backend == "memory")
            {
                return null;
            }

            var socket = Choice("REDIS_SOCKET_TYPE", "unix", "unix", "tcp");
            var type = Choice("REDIS_TYPE", "SINGLE", "SINGLE", "SENTINEL", "CLUSTER");
            var url = Text("REDIS_URL", "/var/run/nutcracker/ratelimit.sock");
            var parts = new List<string>();
            if (socket == "unix")
            {
                if (type != "SINGLE")
                {
                    Errors.Add($"REDIS_SOCKET_TYPE=unix takes one socket, with REDIS_TYPE=SINGLE, not {type}.");
                }

                // StackExchange.Redis reads an endpoint that starts with '!' as a Unix domain socket's path.
                parts.Add("!" + Path.GetFullPath(url));
            }
            else
            {
                var nodes = url.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList();
                if (type == "SENTINEL")
                {
                    // The reference's form: the master's name, then the Sentinels.
                    if (nodes.Count < 2)
                    {
                        Errors.Add($"REDIS_URL: '{url}' must name the master, then the Sentinels, with REDIS_TYPE=SENTINEL (mymaster,sentinel-0:26379,...).");
                    }
                    else
                    {
                        parts.AddRange(nodes.Skip(1));
                        parts.Add("serviceName=" + nodes[0]);
                    }
                }
                else
                {
                    if (type == "SINGLE" && nodes.Count != 1)
                    {
                        Errors.Add($"REDIS_URL: '{url}' must be one host:port with REDIS_TYPE=SINGLE; list several with CLUSTER.");
                    }

                    parts.AddRange(nodes);
                }
            }

            Credentials("REDIS_AUTH", "user", "password", parts);
            Credentials("REDIS_SENTINEL_AUTH", "sentinelUser", "sentinelPassword", parts);
            if (Bool("REDIS_TLS", false))
            {
                parts.Add("ssl=true");
            }

            var options = new RedisStoreOptions
            {
                Configuration = string.Join(',', parts),
                TrustedCertificateAuthority = Raw("REDIS_TLS_CACERT"),
                ClientCertificate = Raw("REDIS_TLS_CLIENT_CERT"),
                ClientCertificateKey = Raw("REDIS_TLS_CLIENT_KEY"),

                // The reference keeps no local cache unless given a size; the always-charged checks of its default
                // counting are never answered from it anyway.
                OverLimitCache = false,
            };
            if (Raw("CACHE_KEY_PREFIX") is { } prefix)
            {
                options.KeyPrefix = prefix;
            }

            if (Raw("LOCAL_CACHE_SIZE_IN_BYTES") is { } bytes)
            {
                if (int.TryParse(bytes, NumberStyles.None, CultureInfo.InvariantCulture, out var size))
                {
                    options.OverLimitCache = size > 0;
                    options.OverLimitCacheSize = Math.Max(1, size / LocalCacheBytesPerEntry);
                }
                else
                {
                    Errors.Add($"LOCAL_CACHE_SIZE_IN_BYTES: '{bytes}' is not a whole number of bytes.");
                }
            }

            if (Raw("REDIS_TIMEOUT") is { } timeout)
            {
                if (GoDuration.TryParse(timeout, out var value))
                {
                    options.Timeout = value;
                }
                else
                {
                    Errors.Add($"REDIS_TIMEOUT: '{timeout}' is not a duration such as 50ms or 1s.");
                }
            }

            try
            {
                options.Validate(requireConfiguration: true, checkTlsFiles: true);
            }
            catch (Exception e) when (e is ArgumentException or IOException or System.Security.Cryptography.CryptographicException)
            {
                Errors.Add($"Redis settings (REDIS_*, CACHE_KEY_PREFIX): {e.Message}");
            }

            return options;
        }

        /// <summary>The reference's <c>user:password</c> or <c>password</c>.</summary>
        private void Credentials(string name, string userKey, string passwordKey, List<string> parts)
        {
            if (Raw(name) is not { } auth)
            {
                return;
            }

            if (auth.Contains(',', StringComparison.Ordinal))
            {
                Errors.Add($"{name}: a password with a comma is not supported.");
                return;
            }

            var colon = auth.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                parts.Add($"{userKey}={auth[..colon]}");
                parts.Add($"{passwordKey}={auth[(colon + 1)..]}");
            }
            else
            {
                parts.Add($"{passwordKey}={auth}");
            }
        }
    }
}

/// <summary>Environment variables that cannot start <c>floodgate envoy</c>; the message lists each, one a line.</summary>
internal sealed class ReferenceSettingsException(IReadOnlyList<string> errors)
    : Exception(string.Join(Environment.NewLine, errors))
{
    /// <summary>One line per invalid variable, naming it.</summary>
    public IReadOnlyList<string> Errors { get; } = errors;
}

using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.AspNetCore.Identity;

/// <summary>
/// Signing keys from OpenID Connect discovery or a JWKS URL, held by a <see cref="ConfigurationManager{T}"/>, which
/// fetches them once (concurrent first callers wait for the one fetch), refreshes them every
/// <see cref="JwtIdentityOptions.KeyAutomaticRefreshInterval"/> in the background, and bounds
/// <see cref="ConfigurationManager{T}.RequestRefresh"/> to one fetch per <see cref="BaseConfigurationManager.RefreshInterval"/>.
/// </summary>
/// <remarks>
/// <see cref="ConfigurationManager{T}.RequestRefresh"/> is fire-and-forget on a background thread and measures its
/// interval on its own wall clock, so the request that saw a new <c>kid</c> could not wait for the keys it asked for.
/// This class adds the small piece it lacks: a throttle on the injected <see cref="TimeProvider"/> that lets one
/// unknown-kid refresh start per <see cref="JwtIdentityOptions.KeyRefreshInterval"/>, and a signal from the retriever
/// so the requests that asked (and any that arrive while it runs) await that one fetch. Other unknown kids inside the
/// interval are answered at once without a fetch. The manager's own interval is set to its 1-second minimum as a
/// backstop; the options require at least 2 seconds, so the manager never refuses a refresh the throttle allowed.
/// </remarks>
internal sealed partial class RemoteKeySource
{
    private readonly ConfigurationManager<OpenIdConnectConfiguration> _manager;
    private readonly SignalingRetriever _retriever;
    private readonly TimeProvider _time;
    private readonly TimeSpan _refreshInterval;
    private readonly TimeSpan _waitTimeout;
    private readonly ILogger _logger;
    private readonly Lock _refreshLock = new();
    private Task<OpenIdConnectConfiguration?>? _pending;
    private DateTimeOffset _lastRefresh = DateTimeOffset.MinValue;
    private long _lastFailureTicks = DateTimeOffset.MinValue.UtcTicks;

    public RemoteKeySource(JwtIdentityOptions options, HttpClient backchannel, TimeProvider time, ILogger logger, IdentityMetrics metrics)
    {
        var discovery = !string.IsNullOrWhiteSpace(options.Authority);
        Address = discovery
            ? options.Authority!.TrimEnd('/') + "/.well-known/openid-configuration"
            : options.JwksUri!;
        IConfigurationRetriever<OpenIdConnectConfiguration> inner = discovery ? new OpenIdConnectConfigurationRetriever() : new JwksRetriever();
        _retriever = new SignalingRetriever(inner, metrics);
        var documents = new HttpDocumentRetriever(backchannel) { RequireHttps = options.RequireHttpsMetadata };
        _manager = new ConfigurationManager<OpenIdConnectConfiguration>(Address, _retriever, documents)
        {
            AutomaticRefreshInterval = options.KeyAutomaticRefreshInterval,
            RefreshInterval = BaseConfigurationManager.MinimumRefreshInterval,
        };
        _time = time;
        _refreshInterval = options.KeyRefreshInterval;
        _waitTimeout = options.BackchannelTimeout * 2;
        _logger = logger;
    }

    /// <summary>The discovery document or JWKS URL.</summary>
    public string Address { get; }

    /// <summary>
    /// The current keys, fetched on first use. <see langword="null"/> when they cannot be fetched; after a failed first
    /// fetch, further fetches wait <see cref="JwtIdentityOptions.KeyRefreshInterval"/>, so an identity provider outage
    /// does not turn every request into a fetch.
    /// </summary>
    public async ValueTask<OpenIdConnectConfiguration?> GetAsync(CancellationToken cancellationToken)
    {
        if (_retriever.Latest is null && _time.GetUtcNow().UtcTicks - Interlocked.Read(ref _lastFailureTicks) < _refreshInterval.Ticks)
            return null;
        try
        {
            return await _manager.GetConfigurationAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or HttpRequestException or ArgumentException or SecurityTokenException)
        {
            Interlocked.Exchange(ref _lastFailureTicks, _time.GetUtcNow().UtcTicks);
            LogKeysUnavailable(_logger, Address, ex);
            return null;
        }
    }

    /// <summary>
    /// How long until <see cref="GetAsync"/> tries to fetch the keys again after a failed first fetch: what is left of
    /// <see cref="JwtIdentityOptions.KeyRefreshInterval"/> since the failure, at least 1 second.
    /// </summary>
    public TimeSpan RetryAfter
    {
        get
        {
            var left = TimeSpan.FromTicks(Interlocked.Read(ref _lastFailureTicks) + _refreshInterval.Ticks - _time.GetUtcNow().UtcTicks);
            return left > TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1);
        }
    }

    /// <summary>
    /// Refreshes the keys because a token named a <c>kid</c> that <paramref name="current"/> lacks, at most once per
    /// <see cref="JwtIdentityOptions.KeyRefreshInterval"/>. Joins a refresh in flight.
    /// </summary>
    /// <returns>The refreshed configuration, or <see langword="null"/> when no refresh was allowed or it failed.</returns>
    public async ValueTask<OpenIdConnectConfiguration?> RefreshForUnknownKeyAsync(OpenIdConnectConfiguration current, CancellationToken cancellationToken)
    {
        Task<OpenIdConnectConfiguration?> task;
        lock (_refreshLock)
        {
            if (_pending is { IsCompleted: false } pending)
            {
                task = pending;
            }
            else
            {
                var now = _time.GetUtcNow();
                if (now - _lastRefresh < _refreshInterval)
                    return null;
                _lastRefresh = now;
                LogRefreshingForUnknownKey(_logger, Address);
                task = _pending = RefreshAsync(current);
            }
        }

        return await task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<OpenIdConnectConfiguration?> RefreshAsync(OpenIdConnectConfiguration current)
    {
        var next = _retriever.NextRetrieval;
        _manager.RequestRefresh();

        // With the blocking refresh switch of Microsoft.IdentityModel, the next read fetches; otherwise it returns the
        // current configuration while the background fetch runs, and the retriever signals when it completes.
        var read = await _manager.GetConfigurationAsync(CancellationToken.None).ConfigureAwait(false);
        if (!ReferenceEquals(read, current))
            return read;
        try
        {
            return await next.WaitAsync(_waitTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    [LoggerMessage(EventId = 4101, Level = LogLevel.Error, Message = "Signing keys could not be fetched from {Address}; tokens no static key verifies are answered 503 until they can be.")]
    private static partial void LogKeysUnavailable(ILogger logger, string address, Exception exception);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Information, Message = "A token names an unknown signing key; refreshing the keys from {Address}.")]
    private static partial void LogRefreshingForUnknownKey(ILogger logger, string address);

    /// <summary>Reads a bare JWKS document into a configuration.</summary>
    private sealed class JwksRetriever : IConfigurationRetriever<OpenIdConnectConfiguration>
    {
        public async Task<OpenIdConnectConfiguration> GetConfigurationAsync(string address, IDocumentRetriever retriever, CancellationToken cancel)
        {
            var document = await retriever.GetDocumentAsync(address, cancel).ConfigureAwait(false);
            var configuration = new OpenIdConnectConfiguration { JwksUri = address, JsonWebKeySet = new JsonWebKeySet(document) };
            foreach (var key in configuration.JsonWebKeySet.GetSigningKeys())
                configuration.SigningKeys.Add(key);
            return configuration;
        }
    }

    /// <summary>Wraps a retriever: counts fetches and signals each completed one to the requests waiting for it.</summary>
    private sealed class SignalingRetriever(IConfigurationRetriever<OpenIdConnectConfiguration> inner, IdentityMetrics metrics)
        : IConfigurationRetriever<OpenIdConnectConfiguration>
    {
        private TaskCompletionSource<OpenIdConnectConfiguration?> _next = NewSignal();
        private OpenIdConnectConfiguration? _latest;

        public OpenIdConnectConfiguration? Latest => Volatile.Read(ref _latest);

        public Task<OpenIdConnectConfiguration?> NextRetrieval => Volatile.Read(ref _next).Task;

        public async Task<OpenIdConnectConfiguration> GetConfigurationAsync(string address, IDocumentRetriever retriever, CancellationToken cancel)
        {
            OpenIdConnectConfiguration? configuration = null;
            try
            {
                configuration = await inner.GetConfigurationAsync(address, retriever, cancel).ConfigureAwait(false);
                Volatile.Write(ref _latest, configuration);
                metrics.KeyRefresh(success: true);
                return configuration;
            }
            catch
            {
                metrics.KeyRefresh(success: false);
                throw;
            }
            finally
            {
                Interlocked.Exchange(ref _next, NewSignal()).TrySetResult(configuration);
            }
        }

        private static TaskCompletionSource<OpenIdConnectConfiguration?> NewSignal() =>
            new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

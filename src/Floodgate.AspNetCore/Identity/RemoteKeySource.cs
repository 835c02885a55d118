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
/// <para>
/// <see cref="ConfigurationManager{T}.RequestRefresh"/> is fire-and-forget on a background thread and measures its
/// interval on its own wall clock, so the request that saw a new <c>kid</c> could not wait for the keys it asked for.
/// This class adds the small piece it lacks: a throttle on the injected <see cref="TimeProvider"/> that lets one unknown-kid
/// refresh start per <see cref="JwtIdentityOptions.KeyRefreshInterval"/> since the last fetch of any kind (the first one
/// included), and a signal from the retriever so the requests that asked (and any that arrive while it runs) await that
/// one fetch. The manager's own interval is set to its 1-second minimum as a backstop; the options require at least
/// 2 seconds, so the manager never refuses a refresh the throttle allowed.
/// </para>
/// <para>
/// A failed fetch is logged here, in one line, and tried again one <see cref="JwtIdentityOptions.KeyRefreshInterval"/>
/// later by a timer, whether or not requests come (a replica reported unready gets none); until then no request fetches.
/// A source is shared by the resolvers built from one another while its settings stay the same
/// (<see cref="TryShare"/>), so that a reload changing other identity settings keeps the keys and their schedule.
/// </para>
/// </remarks>
internal sealed partial class RemoteKeySource : IDisposable
{
    private readonly ConfigurationManager<OpenIdConnectConfiguration> _manager;
    private readonly SignalingRetriever _retriever;
    private readonly TimeProvider _time;
    private readonly TimeSpan _refreshInterval;
    private readonly TimeSpan _waitTimeout;
    private readonly ILogger _logger;
    private readonly Settings _settings;
    private readonly HttpClient? _ownedBackchannel;
    private readonly Lock _refreshLock = new();
    private Task<OpenIdConnectConfiguration?>? _pending;
    private ITimer? _retry;
    private int _users = 1;
    private long _lastAttemptTicks = DateTimeOffset.MinValue.UtcTicks;
    private long _lastFailureTicks = DateTimeOffset.MinValue.UtcTicks;
    private SigningKeyStatus _status;

    public RemoteKeySource(JwtIdentityOptions options, TimeProvider time, ILogger logger, IdentityMetrics metrics)
    {
        _settings = Settings.Of(options);
        Address = _settings.Address;
        var backchannel = options.Backchannel ?? (_ownedBackchannel = new HttpClient { Timeout = options.BackchannelTimeout });
        IConfigurationRetriever<OpenIdConnectConfiguration> inner = _settings.Discovery ? new OpenIdConnectConfigurationRetriever() : new JwksRetriever();
        _retriever = new SignalingRetriever(this, inner, metrics);
        _manager = new ConfigurationManager<OpenIdConnectConfiguration>(Address, _retriever, new DocumentRetriever(backchannel, options.RequireHttpsMetadata))
        {
            AutomaticRefreshInterval = options.KeyAutomaticRefreshInterval,
            RefreshInterval = BaseConfigurationManager.MinimumRefreshInterval,
        };
        _time = time;
        _refreshInterval = options.KeyRefreshInterval;
        _waitTimeout = options.BackchannelTimeout * 2;
        _logger = logger;
        _status = new SigningKeyStatus(Address, null, null, null, null);
    }

    /// <summary>The discovery document or JWKS URL.</summary>
    public string Address { get; }

    /// <summary>When the keys were fetched, and how the last attempt went.</summary>
    public SigningKeyStatus Status => Volatile.Read(ref _status);

    /// <summary>Whether <paramref name="options"/> name a remote key source at all.</summary>
    public static bool IsNamedIn(JwtIdentityOptions options) =>
        !string.IsNullOrWhiteSpace(options.Authority) || !string.IsNullOrWhiteSpace(options.JwksUri);

    /// <summary>Whether this source fetches the keys <paramref name="options"/> name, as they would have them fetched.</summary>
    public bool Serves(JwtIdentityOptions options) => _settings == Settings.Of(options);

    /// <summary>Takes one more user of this source; <see langword="false"/> when it is already closed.</summary>
    public bool TryShare()
    {
        lock (_refreshLock)
        {
            if (_users == 0)
                return false;
            _users++;
            return true;
        }
    }

    /// <summary>Releases one user; the last one stops the retries and closes the metadata client the source created.</summary>
    public void Dispose()
    {
        lock (_refreshLock)
        {
            if (_users == 0 || --_users > 0)
                return;
            _retry?.Dispose();
            _retry = null;
        }

        _ownedBackchannel?.Dispose();
    }

    /// <summary>
    /// The current keys, fetched on first use. <see langword="null"/> when they were never fetched and cannot be now;
    /// for <see cref="JwtIdentityOptions.KeyRefreshInterval"/> after a failed fetch no request fetches again (the keys
    /// in hand answer, if any), so an identity provider outage does not turn every request into a fetch.
    /// </summary>
    public async ValueTask<OpenIdConnectConfiguration?> GetAsync(CancellationToken cancellationToken)
    {
        if (_time.GetUtcNow().UtcTicks - Interlocked.Read(ref _lastFailureTicks) < _refreshInterval.Ticks)
            return _retriever.Latest;
        try
        {
            return await _manager.GetConfigurationAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsFetchFailure(ex))
        {
            // Logged by the retriever, where the fetch failed.
            return _retriever.Latest;
        }
    }

    /// <summary>
    /// How long until the keys are fetched again after a failed fetch: what is left of
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
    /// Refreshes the keys because a token named a <c>kid</c> that <paramref name="current"/> lacks, unless a fetch started
    /// less than <see cref="JwtIdentityOptions.KeyRefreshInterval"/> ago. Joins a refresh in flight.
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
            else if (_pending is { IsCompletedSuccessfully: true, Result: { } fresher } && !ReferenceEquals(fresher, current))
            {
                // A refresh that ended after this caller read its keys already fetched newer ones: a caller of the same
                // burst that comes late is answered with them, not refused for the interval.
                return fresher;
            }
            else
            {
                var now = _time.GetUtcNow().UtcTicks;
                if (now - Interlocked.Read(ref _lastAttemptTicks) < _refreshInterval.Ticks)
                    return null;
                Interlocked.Exchange(ref _lastAttemptTicks, now);
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

    /// <summary>The retriever starts a fetch: the unknown-kid interval counts from here, whatever asked for it.</summary>
    private void FetchStarting() => Interlocked.Exchange(ref _lastAttemptTicks, _time.GetUtcNow().UtcTicks);

    private void Fetched()
    {
        Volatile.Write(ref _status, new SigningKeyStatus(Address, _time.GetUtcNow(), null, null, null));
        lock (_refreshLock)
        {
            // A request fetched before the retry was due: it is not needed any more.
            _retry?.Dispose();
            _retry = null;
        }
    }

    private void FetchFailed(Exception exception)
    {
        var now = _time.GetUtcNow();
        Interlocked.Exchange(ref _lastFailureTicks, now.UtcTicks);
        var error = DocumentRetriever.Describe(exception);
        var fetchedAt = Status.FetchedAt;
        var retryAt = now + _refreshInterval;
        Volatile.Write(ref _status, new SigningKeyStatus(Address, fetchedAt, now, error, retryAt));
        lock (_refreshLock)
        {
            // Closed: the failure is of a fetch nobody needs any more (its client was disposed under it, typically).
            if (_users == 0)
                return;
            // Counted from this failure, even when an earlier one had scheduled a retry (a request fetched before it).
            if (_retry is null)
                _retry = _time.CreateTimer(static state => ((RemoteKeySource)state!).Retry(), this, _refreshInterval, Timeout.InfiniteTimeSpan);
            else
                _retry.Change(_refreshInterval, Timeout.InfiniteTimeSpan);
        }

        if (fetchedAt is { } fetched)
            LogRefreshFailed(_logger, Address, error, fetched, retryAt);
        else
            LogKeysUnavailable(_logger, Address, error, retryAt);
        LogFetchFailure(_logger, Address, exception);
    }

    /// <summary>The retry a failed fetch scheduled: fetches the keys, or refreshes those in hand, now.</summary>
    private void Retry()
    {
        lock (_refreshLock)
        {
            _retry?.Dispose();
            _retry = null;
            if (_users == 0)
                return;
        }

        _ = RetryAsync();
    }

    private async Task RetryAsync()
    {
        try
        {
            if (_retriever.Latest is not null)
                _manager.RequestRefresh();
            await _manager.GetConfigurationAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsFetchFailure(ex))
        {
            // Logged by the retriever, which scheduled the next attempt.
        }
    }

    private static bool IsFetchFailure(Exception ex) =>
        ex is InvalidOperationException or IOException or HttpRequestException or ArgumentException or SecurityTokenException;

    [LoggerMessage(EventId = 4101, Level = LogLevel.Error, Message = "Fetching the signing keys from {Address} failed: {Error} Tokens only its keys can verify are answered 503 until a fetch succeeds; the next attempt is at {RetryAt:u}.")]
    private static partial void LogKeysUnavailable(ILogger logger, string address, string error, DateTimeOffset retryAt);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Information, Message = "A token names an unknown signing key; refreshing the keys from {Address}.")]
    private static partial void LogRefreshingForUnknownKey(ILogger logger, string address);

    [LoggerMessage(EventId = 4103, Level = LogLevel.Error, Message = "Refreshing the signing keys from {Address} failed: {Error} The keys fetched at {FetchedAt:u} stay in force; the next attempt is at {RetryAt:u}.")]
    private static partial void LogRefreshFailed(ILogger logger, string address, string error, DateTimeOffset fetchedAt, DateTimeOffset retryAt);

    [LoggerMessage(EventId = 4104, Level = LogLevel.Debug, Message = "The failed fetch of the signing keys from {Address}, in detail.")]
    private static partial void LogFetchFailure(ILogger logger, string address, Exception exception);

    /// <summary>What makes two sources fetch the same keys the same way.</summary>
    private sealed record Settings(string Address, bool Discovery, bool RequireHttps, TimeSpan RefreshInterval, TimeSpan AutomaticRefreshInterval, TimeSpan BackchannelTimeout, HttpClient? Backchannel)
    {
        public static Settings Of(JwtIdentityOptions options)
        {
            var discovery = !string.IsNullOrWhiteSpace(options.Authority);
            var address = discovery ? options.Authority!.TrimEnd('/') + "/.well-known/openid-configuration" : options.JwksUri ?? string.Empty;
            return new Settings(address, discovery, options.RequireHttpsMetadata, options.KeyRefreshInterval, options.KeyAutomaticRefreshInterval, options.BackchannelTimeout, options.Backchannel);
        }
    }
}

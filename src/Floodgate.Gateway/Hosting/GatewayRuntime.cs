using Floodgate.AspNetCore.Identity;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Gateway.Identity;
using Floodgate.Gateway.Operations;
using Floodgate.Gateway.Policy;
using Floodgate.Bans;
using Floodgate.Events;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Overrides;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;

namespace Floodgate.Gateway.Hosting;

/// <summary>What a running gateway holds: the policy in force and the parts a reload swaps.</summary>
internal sealed partial class GatewayRuntime
{
    // A replaced store stays for at least this long (decisions started on it finish, and their leases are released
    // on it), or for the longest concurrency lease its policy could grant, whichever is longer.
    private static readonly TimeSpan MinimumRetirement = TimeSpan.FromSeconds(30);
    // Guards reloads: one at a time, each applied all or nothing.
    private readonly Lock _reloadLock = new();
    private readonly InMemoryConfigProvider _proxyConfig;
    private readonly IConfigValidator _proxyValidator;
    private readonly SwitchingIdentityResolver _identity;
    private readonly ILoggerFactory _loggerFactory;
    private readonly TimeProvider _time;
    private readonly SwitchingStore _store;
    private GatewayPolicy _policy;
    private string? _startupWait;
    private bool _shuttingDown;

    // How long the store in force must stay once replaced: the longest lease any policy applied since it opened could
    // have granted on it (a lease outlives the reload that shortened its rule's timeout).
    private TimeSpan _storeRetirement;

    public GatewayRuntime(GatewayPolicy policy, FloodgateRuntime floodgate, InMemoryConfigProvider proxyConfig, IConfigValidator proxyValidator, SwitchingIdentityResolver identity, SwitchingStore store, TimeProvider time, ILoggerFactory loggerFactory)
    {
        _proxyValidator = proxyValidator;
        _time = time;
        _policy = policy;
        _storeRetirement = RetirementOf(policy);
        Floodgate = floodgate;
        _proxyConfig = proxyConfig;
        _identity = identity;
        _store = store;
        _loggerFactory = loggerFactory;
        Logger = loggerFactory.CreateLogger("Floodgate.Gateway");
        store.Logger = Logger;
        StoreOpener = (policy, path) => StoreFactory.Open(policy, path, _time, _loggerFactory);
    }

    public GatewayPolicy Policy => Volatile.Read(ref _policy);

    /// <summary>The engine and the middleware's settings in force; a reload applies the next policy's (<see cref="GatewayPolicy.Floodgate"/>).</summary>
    public FloodgateRuntime Floodgate { get; }

    /// <summary>The store every front door decides in; it follows the policy's <c>store</c> section across reloads.</summary>
    public IRateLimitStore Store => _store;

    /// <summary>The kind of the store in force: <c>memory</c>, <c>redis</c> or <c>custom</c> (given by the host, not the policy).</summary>
    public string StoreKind => _store.Kind;

    public ILogger Logger { get; }

    /// <summary>Where the subjects' overrides live: beside the store in force (in process, or in its Redis).</summary>
    public IOverrideStore Overrides { get; private set; } = new MemoryOverrideStore();

    /// <summary>Puts <paramref name="overrides"/> in force, for the engine's lookups and the admin API.</summary>
    internal void UseOverrides(IOverrideStore overrides)
    {
        Overrides = overrides;
        Floodgate.Engine.Overrides = overrides;
    }

    /// <summary>Where the bans live: beside the store in force (in process, or in its Redis).</summary>
    public IBanStore Bans { get; private set; } = new MemoryBanStore();

    /// <summary>Where threshold events are deduplicated and kept: beside the store in force.</summary>
    public IThresholdLedger Thresholds { get; private set; } = new MemoryThresholdLedger();

    /// <summary>The threshold events' pipeline (log, metric, webhooks); set by the host once it is built.</summary>
    internal Gateway.Events.ThresholdEvents? Events { get; set; }

    /// <summary>
    /// Puts the bans and the threshold ledger <paramref name="opened"/> keeps (in process for a store the host gave) in
    /// force, for the middleware's lookups, the threshold events and the admin API.
    /// </summary>
    internal void UseBans(OpenedStore opened)
    {
        Bans = opened.Bans ?? new MemoryBanStore(_time);
        Thresholds = opened.Thresholds ?? new MemoryThresholdLedger(_time);
        Floodgate.Engine.Bans = Bans;
        Floodgate.Engine.DistinctStore = opened.Distinct ?? new Floodgate.Abuse.MemoryDistinctStore();
    }

    public int Reloads { get; private set; }

    /// <summary>Opens the store a reload names; tests wrap it to see what becomes of the stores a reload opens.</summary>
    internal Func<GatewayPolicy, string, OpenedStore> StoreOpener { get; set; }

    public string? LastReloadError { get; private set; }

    /// <summary>The identity resolver in force; <see langword="null"/> without an <c>identity.jwt</c> section.</summary>
    public IIdentityResolver? Identity => _identity.Current;

    /// <summary>
    /// While the host waits, before it takes traffic, for the store to connect: what it waits for, which <c>/readyz</c>
    /// reports as the reason it is not ready; <see langword="null"/> once the wait is over.
    /// </summary>
    public string? StartupWait
    {
        get => Volatile.Read(ref _startupWait);
        set => Volatile.Write(ref _startupWait, value);
    }

    /// <summary>Whether the host is stopping: <c>/readyz</c> then answers 503 "shutting down".</summary>
    public bool ShuttingDown
    {
        get => Volatile.Read(ref _shuttingDown);
        set => Volatile.Write(ref _shuttingDown, value);
    }

    public void ApplyIdentity(JwtIdentityOptions? jwt)
    {
        var tokens = jwt is null ? null : IdentityFactory.Create(jwt, _time, _loggerFactory);
        InstallIdentity(WithApiKeys(tokens, Policy.ApiKeys) ?? (IIdentityResolver?)tokens);
    }

    /// <summary>
    /// At start, fetches the keys of the identity provider the policy trusts, waiting up to
    /// <see cref="IdentityFactory.KeyFetchWait"/>: the first requests then wait for no fetch, and a provider that cannot be
    /// reached shows in <c>/readyz</c> from the start. The gateway starts either way; the keys are fetched again later.
    /// </summary>
    public async Task FetchIdentityKeysAsync(CancellationToken cancellationToken)
    {
        if (JwtResolver is { } resolver
            && await IdentityFactory.FetchKeysAsync(resolver, null, cancellationToken).ConfigureAwait(false) is { } problem)
        {
            Log.StartingWithoutKeys(Logger, problem);
        }
    }

    private void InstallIdentity(IIdentityResolver? next)
    {
        var previous = _identity.Current;
        _identity.Current = next;
        if (previous is IDisposable disposable)
        {
            // Requests in flight may still be validating with the previous resolver.
            _ = Task.Delay(TimeSpan.FromSeconds(30), CancellationToken.None).ContinueWith(_ => disposable.Dispose(), TaskScheduler.Default);
        }
    }

    /// <summary>Reads <paramref name="path"/> and puts it in force; an invalid policy leaves the one in force.</summary>
    public IReadOnlyList<PolicyError> Reload(string path)
    {
        lock (_reloadLock)
        {
            GatewayPolicy next;
            try
            {
                next = PolicyLoader.Load(path);
            }
            catch (PolicyException e)
            {
                Refused(e.Errors);
                return e.Errors;
            }

            return ApplyCore(next, path);
        }
    }

    /// <summary>
    /// Puts <paramref name="next"/> in force, all or nothing: the identity resolver and the middleware's settings are
    /// built first, and the identity resolver is installed only once the settings and the proxy configuration took the
    /// policy.
    /// </summary>
    internal IReadOnlyList<PolicyError> Apply(GatewayPolicy next, string path)
    {
        lock (_reloadLock)
        {
            return ApplyCore(next, path);
        }
    }

    private IReadOnlyList<PolicyError> ApplyCore(GatewayPolicy next, string path)
    {
        var current = Policy;
        if (next.Version == current.Version)
        {
            // The policy in force again (a refused edit undone): the last refusal no longer describes it.
            LastReloadError = null;
            return [];
        }

        var proxyErrors = ValidateProxy(next);
        if (proxyErrors.Count > 0)
        {
            Refused(proxyErrors);
            return proxyErrors;
        }

        // Each part is rebuilt only when its section changed: a new identity resolver loses its caches, a new store its counts.
        var identityChanged = next.IdentityVersion != current.IdentityVersion;
        var storeSectionChanged = next.StoreVersion != current.StoreVersion;

        // A store the host gave (custom) is not the policy's to replace.
        var storeChanged = storeSectionChanged && _store.Kind != StoreFactory.CustomKind;
        IIdentityResolver? identity = null;
        OpenedStore? store = null;
        var previousOptions = Floodgate.Options;
        var settingsApplied = false;
        try
        {
            // Build everything first; commit the identity and the store only when the rest succeeded.
            if (identityChanged && next.Jwt is not null)
            {
                // The new resolver keeps the key source in force (its keys, even through an identity provider outage)
                // when the policy names the same one; a new source must deliver its keys before it is put in force.
                var previous = JwtResolver;
                var resolver = IdentityFactory.Create(next.Jwt, _time, _loggerFactory, previous);
                identity = resolver;
                if (IdentityFactory.FetchKeysAsync(resolver, previous, CancellationToken.None).GetAwaiter().GetResult() is { } problem)
                {
                    var field = string.IsNullOrWhiteSpace(next.Jwt.Authority) ? "identity.jwt.jwks_url" : "identity.jwt.authority";
                    throw new PolicyException([new PolicyError(path, 0, 0, field, problem.TrimEnd('.') + "; the identity settings in force stay.")]);
                }
            }

            if (storeChanged)
            {
                store = StoreOpener(next, path);
            }

            Floodgate.Apply(next.Floodgate);
            settingsApplied = true;
            _proxyConfig.Update(next.Routes, next.Clusters);
        }
        catch (Exception e)
        {
            // Whatever failed, the reload is refused as a whole: the middleware's settings go back, and what was built for
            // it (an identity resolver, a store and its connection) is closed.
            if (settingsApplied)
            {
                Floodgate.Apply(previousOptions);
            }

            (identity as IDisposable)?.Dispose();
            store?.Owned?.Dispose();
            var errors = e is PolicyException p ? p.Errors : [new PolicyError(path, 0, 0, "(policy)", e.Message)];
            Refused(errors);
            return errors;
        }

        if (identityChanged)
        {
            InstallIdentity(WithApiKeys(identity, next.ApiKeys) ?? identity);
        }

        if (store is { } opened)
        {
            // False only when the host is stopping, and then the new store is already closed.
            _ = _store.Switch(opened.Store, opened.Kind, opened.Owned, _storeRetirement);
            UseBesideStore(opened);
            _storeRetirement = RetirementOf(next);
        }
        else
        {
            if (storeSectionChanged)
            {
                Log.StoreNotReplaced(Logger, path);
            }

            _storeRetirement = TimeSpan.FromTicks(Math.Max(_storeRetirement.Ticks, RetirementOf(next).Ticks));
        }

        // The webhooks named now; deliveries already queued for the previous ones finish.
        Events?.Apply(next.Events);

        Volatile.Write(ref _policy, next);
        Reloads++;
        LastReloadError = null;
        GatewayMetrics.PolicyReloads.Add(1, new KeyValuePair<string, object?>("result", "applied"));
        Log.Reloaded(Logger, path, next.Version, next.Floodgate.Policy.Rules.Count);
        return [];
    }

    /// <summary>The proxy's own checks of <paramref name="policy"/>'s routes and clusters (<see cref="ProxyConfigCheck"/>).</summary>
    internal IReadOnlyList<PolicyError> ValidateProxy(GatewayPolicy policy) => ProxyConfigCheck.Validate(policy, _proxyValidator);

    /// <summary>How long a store on which <paramref name="policy"/> granted leases must stay once replaced.</summary>
    internal static TimeSpan RetirementOf(GatewayPolicy policy)
    {
        var longest = MinimumRetirement;
        foreach (var rule in policy.Floodgate.Policy.Rules)
        {
            IEnumerable<Limit?> limits = rule.PlanLimits is { } plans ? [rule.Limit, .. plans.Values] : [rule.Limit];
            foreach (var limit in limits)
            {
                if (limit is { Algorithm: LimitAlgorithm.Concurrency } && limit.LeaseTimeout > longest)
                {
                    longest = limit.LeaseTimeout;
                }
            }
        }

        return longest;
    }

    public void ReportReloadFailure(string path, Exception error) =>
        Refused([new PolicyError(path, 0, 0, "(file)", error.Message)]);

    private void Refused(IReadOnlyList<PolicyError> errors)
    {
        LastReloadError = string.Join("; ", errors);
        GatewayMetrics.PolicyReloads.Add(1, new KeyValuePair<string, object?>("result", "refused"));
        Log.ReloadRefused(Logger, Policy.Version, errors.Count, string.Join(Environment.NewLine, errors));
    }

    private static partial class Log
    {
        [LoggerMessage(10, LogLevel.Information, "Policy reloaded from {Source}: version {Version}, {Rules} rules")]
        public static partial void Reloaded(ILogger logger, string source, string version, int rules);

        [LoggerMessage(11, LogLevel.Error, "Policy reload refused; version {Version} stays in force. {Count} error(s):\n{Errors}")]
        public static partial void ReloadRefused(ILogger logger, string version, int count, string errors);

        [LoggerMessage(12, LogLevel.Warning, "The store section of {Source} changed, and is not used: the host gave the gateway a store of its own")]
        public static partial void StoreNotReplaced(ILogger logger, string source);

        [LoggerMessage(13, LogLevel.Warning, "Starting without the identity provider's keys ({Problem}): /readyz reports not ready until they are fetched, and tokens only they can verify are answered 503")]
        public static partial void StartingWithoutKeys(ILogger logger, string problem);
    }
}

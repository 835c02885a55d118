using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Envoy.Config.Core.V3;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Floodgate.Algorithms;
using Floodgate.Envoy.Configuration;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;
using DescriptorStatus = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.DescriptorStatus;

namespace Floodgate.Envoy;

/// <summary>
/// Decides a <see cref="RateLimitRequest"/> with envoyproxy/ratelimit's semantics on Floodgate's engine: each descriptor
/// is matched and decided on its own, in one store call for the whole request.
/// </summary>
internal sealed partial class EnvoyRateLimitDecider
{
    private const int MaxCachedOverrides = 1024;
    private static readonly DescriptorStatus NoLimitStatus = new() { Code = Code.Ok };
    private static readonly DescriptorStatus UnlimitedStatus = new() { Code = Code.Ok, LimitRemaining = uint.MaxValue };

    [ThreadStatic]
    private static StringBuilder? t_builder;

    private readonly EnvoyConfigProvider _configs;
    private readonly IRateLimitStore _store;
    private readonly TimeProvider _time;
    private readonly EnvoyRateLimitOptions _options;
    private readonly EnvoyRateLimitMetrics _metrics;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<(string Domain, uint Requests, RateLimitResponse.Types.RateLimit.Types.Unit Unit), EnvoyRule> _overrides = new();

    public EnvoyRateLimitDecider(
        EnvoyConfigProvider configs,
        IRateLimitStore store,
        IOptions<EnvoyRateLimitOptions> options,
        EnvoyRateLimitMetrics metrics,
        TimeProvider? timeProvider = null,
        ILogger<EnvoyRateLimitDecider>? logger = null)
    {
        _configs = configs;
        _store = store;
        _options = options.Value;
        _metrics = metrics;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
    }

    /// <summary>Decides a request.</summary>
    /// <exception cref="RpcException">The domain is empty, there are no descriptors or more than <see cref="EnvoyRateLimitOptions.MaxDescriptors"/>, or a limit override has no unit: <see cref="StatusCode.InvalidArgument"/>.</exception>
    public async ValueTask<RateLimitResponse> DecideAsync(RateLimitRequest request, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(request.Domain))
        {
            throw Invalid("rate limit domain must not be empty");
        }

        var descriptors = request.Descriptors;
        if (descriptors.Count == 0)
        {
            throw Invalid("rate limit descriptor list must not be empty");
        }

        if (descriptors.Count > _options.MaxDescriptors)
        {
            throw Invalid(string.Create(CultureInfo.InvariantCulture, $"rate limit request has {descriptors.Count} descriptors; at most {_options.MaxDescriptors} are allowed (EnvoyRateLimitOptions.MaxDescriptors)"));
        }

        var domain = request.Domain;
        var config = _configs.Current;
        var response = new RateLimitResponse { OverallCode = Code.Ok };
        if (!config.HasDomain(domain))
        {
            _metrics.DomainNotFound();
            LogUnknownDomain(_logger, domain);
            for (var i = 0; i < descriptors.Count; i++)
            {
                response.Statuses.Add(NoLimitStatus);
            }

            return response;
        }

        var matches = new DescriptorMatch[descriptors.Count];
        HashSet<string>? replacing = null;
        for (var i = 0; i < descriptors.Count; i++)
        {
            var descriptor = descriptors[i];
            ref var matched = ref matches[i];
            matched.CheckIndex = -1;
            matched.Hits = descriptor.HitsAddend ?? Math.Max(1u, request.HitsAddend);
            if (descriptor.Limit is { } limitOverride)
            {
                matched.Rule = Override(domain, limitOverride, i);
                matched.IsOverride = true;
            }
            else
            {
                var found = config.Match(domain, descriptor.Entries);
                matched.Rule = found.Rule;
                matched.Shared = found.SharedPatterns;
                matched.DetailedName = found.ValueToMetric;
            }

            // As in the reference (constructLimitsToCheck), replaces is collected from every matched rule before the
            // unlimited check, so an unlimited rule also replaces the rules it names.
            if (matched.Rule is { } rule && rule.Replaces.Length > 0)
            {
                replacing ??= new HashSet<string>(StringComparer.Ordinal);
                replacing.UnionWith(rule.Replaces);
            }
        }

        // Descriptors that resolve to the same rule and key are one check of their summed hits: the reference
        // increments the counter once per descriptor, in request order. A request of one descriptor needs no lookup.
        RateLimitCheck[]? checks = null;
        var count = 0;
        Dictionary<(EnvoyRule, StoreKey), int>? groups = null;
        for (var i = 0; i < matches.Length; i++)
        {
            ref var matched = ref matches[i];
            if (matched.Rule is not { } rule)
            {
                continue;
            }

            if (rule.Unlimited)
            {
                matched.Unlimited = true;
                matched.Rule = null;
            }
            else if (rule.Name is { } name && replacing?.Contains(name) == true)
            {
                LogReplaced(_logger, domain, rule.FullKey, name);
                matched.Rule = null;
            }
            else if (rule.Limit is { } limit)
            {
                checks ??= new RateLimitCheck[matches.Length];
                var hits = matched.Hits > long.MaxValue ? long.MaxValue : (long)matched.Hits;
                var key = Key(rule, descriptors[i], matched.Shared);
                if (groups is not null && groups.TryGetValue((rule, key), out var index))
                {
                    var total = checks[index].Cost > long.MaxValue - hits ? long.MaxValue : checks[index].Cost + hits;
                    checks[index] = checks[index] with { Cost = total };
                }
                else
                {
                    index = count++;
                    checks[index] = new RateLimitCheck(limit, key, hits, rule.ShadowMode);
                    if (matches.Length > 1)
                    {
                        (groups ??= [])[(rule, key)] = index;
                    }
                }

                matched.CheckIndex = index;
                matched.Prefix = checks[index].Cost;
            }
        }

        Group[]? results = null;
        if (checks is not null)
        {
            var outcomes = new StoreOutcome[count];
            await _store.DecideAsync(checks.AsMemory(0, count), outcomes, cancellationToken).ConfigureAwait(false);
            results = await SettleGroupsAsync(matches, checks, outcomes, cancellationToken).ConfigureAwait(false);
        }

        var globalQuota = _options.GlobalQuotaMode;
        int failedRate = 0, failedQuota = 0, quotas = 0;
        DescriptorStatus? closest = null;
        var closestRemaining = uint.MaxValue;
        for (var i = 0; i < matches.Length; i++)
        {
            ref readonly var matched = ref matches[i];
            DescriptorStatus status;
            if (matched.Unlimited)
            {
                status = UnlimitedStatus;
            }
            else if (matched.Rule is not { } rule)
            {
                // In global quota mode the reference counts every descriptor that is not unlimited, unmatched and
                // replaced ones included: one within its limit keeps the request OK.
                status = NoLimitStatus;
                quotas += globalQuota ? 1 : 0;
            }
            else
            {
                status = matched.CheckIndex >= 0
                    ? FromOutcome(rule, matched, descriptors[i], results![matched.CheckIndex], domain)
                    : Blocked(rule, matched, descriptors[i], domain);
                var quota = globalQuota || rule.QuotaMode;
                quotas += quota ? 1 : 0;
                if (status.Code == Code.OverLimit)
                {
                    if (quota)
                    {
                        failedQuota++;
                    }
                    else
                    {
                        failedRate++;
                    }
                }

                // The headers describe the descriptor closest to its limit; an enforced descriptor over it wins.
                if (status.LimitRemaining < closestRemaining)
                {
                    (closest, closestRemaining) = (status, status.LimitRemaining);
                }

                if (status.Code == Code.OverLimit && !quota)
                {
                    (closest, closestRemaining) = (status, 0);
                }
            }

            response.Statuses.Add(status);
        }

        if (failedRate > 0 || (quotas > 0 && quotas == failedQuota))
        {
            response.OverallCode = Code.OverLimit;
            if (_options.GlobalShadowMode)
            {
                response.OverallCode = Code.Ok;
                _metrics.GlobalShadowMode(domain);
            }
            else
            {
                LogOverLimit(_logger, domain, failedRate + failedQuota, descriptors.Count);
            }
        }

        if (_options.ResponseHeadersEnabled && closest is not null)
        {
            // Whole seconds already (ToDuration rounds up).
            var resetSeconds = closest.DurationUntilReset?.Seconds ?? 0;
            response.ResponseHeadersToAdd.Add(new HeaderValue { Key = _options.LimitHeader, Value = closest.CurrentLimit.RequestsPerUnit.ToString(CultureInfo.InvariantCulture) });
            response.ResponseHeadersToAdd.Add(new HeaderValue { Key = _options.RemainingHeader, Value = (closest.Code == Code.OverLimit ? 0 : closest.LimitRemaining).ToString(CultureInfo.InvariantCulture) });
            response.ResponseHeadersToAdd.Add(new HeaderValue { Key = _options.ResetHeader, Value = resetSeconds.ToString(CultureInfo.InvariantCulture) });
        }

        return response;
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    /// <summary>
    /// Whole seconds, rounded up: Envoy's x-ratelimit headers print the duration's seconds and drop the fraction, which
    /// would show 49 at 49.3 s and 0 for a reset under a second.
    /// </summary>
    private static Duration ToDuration(long microseconds) =>
        new() { Seconds = (microseconds / 1_000_000) + (microseconds % 1_000_000 > 0 ? 1 : 0) };

    /// <summary>
    /// The store key: the domain and algorithm scope the key; the descriptor's entries (with share_threshold patterns in
    /// place of values) are its identity, so each descriptor is decided on its own and shares a Redis slot with nothing else.
    /// </summary>
    private static StoreKey Key(EnvoyRule rule, RateLimitDescriptor descriptor, string[]? shared)
    {
        var builder = t_builder ??= new StringBuilder(128);
        builder.Clear();
        var entries = descriptor.Entries;
        for (var i = 0; i < entries.Count; i++)
        {
            var value = shared?[i] ?? entries[i].Value;
            builder.Append(entries[i].Key.Length).Append(':').Append(entries[i].Key)
                .Append(value.Length).Append(':').Append(value);
        }

        return StoreKey.Create(rule.StoreScope, builder.ToString());
    }

    /// <summary>
    /// Turns each check's outcome into what its descriptors see, as the reference's one increment per descriptor in
    /// request order would: descriptor i of a group sees what remained before the group less the hits of descriptors
    /// 1..i, and is over the limit once that is negative. A store never charges a denied check, so when a group's sum
    /// is denied, only the hits of the descriptors that fit (the longest prefix within what remained) are charged, in a
    /// second store call; those descriptors are OK, the rest are over the limit and uncharged, exactly as if each
    /// descriptor had been checked alone in order.
    /// </summary>
    private async ValueTask<Group[]> SettleGroupsAsync(DescriptorMatch[] matches, RateLimitCheck[] checks, StoreOutcome[] outcomes, CancellationToken cancellationToken)
    {
        // Checks [0, outcomes.Length) were decided; a check's cost is its descriptors' summed hits.
        var results = new Group[outcomes.Length];
        for (var c = 0; c < outcomes.Length; c++)
        {
            var total = checks[c].Cost;
            var outcome = outcomes[c].Outcome;
            var failure = outcomes[c].IsStoreFailure;
            if (outcome.IsAllowed)
            {
                var before = outcome.Remaining > long.MaxValue - total ? long.MaxValue : outcome.Remaining + total;
                results[c] = new Group(before, long.MaxValue, outcome.ResetAfterMicroseconds, failure);
                continue;
            }

            results[c] = new Group(outcome.Remaining, -1, outcome.ResetAfterMicroseconds, failure);
            if (failure || outcome.Remaining < 0 || outcome.Remaining >= total)
            {
                continue;
            }

            // The longest prefix of the group's descriptors within what remained (a lone descriptor's prefix is its
            // whole cost, which did not fit: none).
            long fit = 0;
            foreach (var matched in matches)
            {
                if (matched.CheckIndex == c && matched.Prefix <= outcome.Remaining)
                {
                    fit = Math.Max(fit, matched.Prefix);
                }
            }

            if (fit == 0)
            {
                results[c] = results[c] with { Fits = 0 };
                continue;
            }

            var retry = new StoreOutcome[1];
            await _store.DecideAsync(new[] { checks[c] with { Cost = fit } }, retry, cancellationToken).ConfigureAwait(false);
            var charged = retry[0].Outcome;
            if (charged.IsAllowed)
            {
                results[c] = new Group(charged.Remaining + fit, fit, charged.ResetAfterMicroseconds, retry[0].IsStoreFailure);
            }
        }

        return results;
    }

    private DescriptorStatus FromOutcome(EnvoyRule rule, in DescriptorMatch matched, RateLimitDescriptor descriptor, in Group group, string domain)
    {
        if (group.StoreFailure)
        {
            _metrics.StoreFailure(domain);
        }

        var amount = (long)rule.RequestsPerUnit;
        var hits = matched.Hits > long.MaxValue ? long.MaxValue : (long)matched.Hits;
        var over = matched.Prefix > group.Fits;
        var remainingBefore = group.RemainingBefore - (matched.Prefix - hits);
        var remainingAfter = group.RemainingBefore - matched.Prefix;
        var near = (long)Math.Floor(amount * _options.NearLimitRatio);
        long within = 0, nearHits = 0, overHits = 0, shadowHits = 0;
        if (over)
        {
            // As the reference counts: the hits that crossed the limit are over it, those between the near-limit
            // threshold and the limit are near it.
            var before = amount - Math.Clamp(remainingBefore, 0, amount);
            overHits = before >= amount ? hits : before + hits - amount;
            if (before < amount)
            {
                nearHits = amount - Math.Max(near, before);
            }

            shadowHits = rule.ShadowMode ? overHits : 0;
        }
        else
        {
            within = hits;
            var after = amount - Math.Clamp(remainingAfter, 0, amount);
            var before = after - hits;
            if (after > near)
            {
                nearHits = before >= near ? hits : after - near;
            }
        }

        _metrics.Hits(domain, MetricName(rule, matched, descriptor, domain), hits, within, Math.Max(0, nearHits), Math.Max(0, overHits), Math.Max(0, shadowHits));
        return new DescriptorStatus
        {
            Code = over && !rule.ShadowMode ? Code.OverLimit : Code.Ok,
            CurrentLimit = rule.Response,
            LimitRemaining = over ? 0 : (uint)Math.Clamp(remainingAfter, 0, uint.MaxValue),
            DurationUntilReset = ToDuration(Math.Max(0, group.ResetAfterMicroseconds)),
        };
    }

    /// <summary>A rule of 0 requests per unit: every counted hit is over it, without asking the store.</summary>
    private DescriptorStatus Blocked(EnvoyRule rule, in DescriptorMatch matched, RateLimitDescriptor descriptor, string domain)
    {
        var hits = matched.Hits > long.MaxValue ? long.MaxValue : (long)matched.Hits;
        var over = hits > 0;
        var period = new Rate(1, 1, EnvoyUnits.ToRateUnit(rule.Unit)).PeriodMicroseconds;
        var now = (_time.GetUtcNow().UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;
        _metrics.Hits(domain, MetricName(rule, matched, descriptor, domain), hits, over ? 0 : hits, 0, over ? hits : 0, over && rule.ShadowMode ? hits : 0);
        return new DescriptorStatus
        {
            Code = over && !rule.ShadowMode ? Code.OverLimit : Code.Ok,
            CurrentLimit = rule.Response,
            LimitRemaining = 0,
            DurationUntilReset = ToDuration(period - (now % period)),
        };
    }

    /// <summary>The rule's path, or for detailed_metric, value_to_metric and overrides the descriptor's own key and values.</summary>
    private static string MetricName(EnvoyRule rule, in DescriptorMatch matched, RateLimitDescriptor descriptor, string domain)
    {
        if (!rule.DetailedMetric && !matched.DetailedName && !matched.IsOverride)
        {
            return rule.FullKey;
        }

        var builder = new StringBuilder(domain);
        var entries = descriptor.Entries;
        for (var i = 0; i < entries.Count; i++)
        {
            builder.Append('.').Append(entries[i].Key);
            var value = matched.Shared?[i] ?? entries[i].Value;
            if (value.Length > 0)
            {
                builder.Append('_').Append(value);
            }
        }

        return builder.ToString();
    }

    private EnvoyRule Override(string domain, RateLimitDescriptor.Types.RateLimitOverride limit, int index)
    {
        var unit = EnvoyUnits.FromOverride(limit.Unit);
        if (unit == RateLimitResponse.Types.RateLimit.Types.Unit.Unknown)
        {
            throw Invalid($"descriptor {index}: the limit override has no valid unit ({limit.Unit})");
        }

        var key = (domain, limit.RequestsPerUnit, unit);
        if (_overrides.TryGetValue(key, out var cached))
        {
            return cached;
        }

        // When Envoy sends a limit override, it replaces the configuration entirely: no name, no shadow mode.
        var rule = new EnvoyRule(domain, $"{domain}.override", limit.RequestsPerUnit, unit, LimitAlgorithm.FixedWindow, null, null, [], false, false, false, false);
        if (_overrides.Count < MaxCachedOverrides)
        {
            _overrides.TryAdd(key, rule);
        }

        return rule;
    }

    /// <summary>
    /// What one descriptor of the request resolved to: the rule it matched (none when unmatched, unlimited or replaced),
    /// its hits, and the check that decides it.
    /// </summary>
    private struct DescriptorMatch
    {
        public EnvoyRule? Rule;
        public ulong Hits;
        public string[]? Shared;
        public bool Unlimited;
        public bool IsOverride;
        public bool DetailedName;
        public int CheckIndex;

        /// <summary>The hits of this descriptor and of those before it in its check.</summary>
        public long Prefix;
    }

    /// <summary>
    /// What one check's descriptors see: what remained before them, the largest prefix of their hits that is
    /// charged (<see cref="long.MaxValue"/> when all are, -1 when none is), the reset and whether the store failed.
    /// </summary>
    private readonly record struct Group(long RemainingBefore, long Fits, long ResetAfterMicroseconds, bool StoreFailure);

    [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "Rate limit request for the unknown domain '{Domain}': answered OK")]
    private static partial void LogUnknownDomain(ILogger logger, string domain);

    [LoggerMessage(EventId = 11, Level = LogLevel.Debug, Message = "In domain '{Domain}', the rule {Rule} ('{Name}') is replaced by another rule of the request")]
    private static partial void LogReplaced(ILogger logger, string domain, string rule, string name);

    [LoggerMessage(EventId = 12, Level = LogLevel.Debug, Message = "Over the limit in domain '{Domain}': {Over} of {Descriptors} descriptors")]
    private static partial void LogOverLimit(ILogger logger, string domain, int over, int descriptors);
}

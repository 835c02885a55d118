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
using Floodgate.Logging;
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
            if (_logger.IsEnabled(LogLevel.Debug))
            {
                // The domain is the request's text, and here no configured one: escaped and cut (docs/logging.md).
                LogUnknownDomain(_logger, LogValues.Escape(domain));
            }

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
                if (_logger.IsEnabled(LogLevel.Debug))
                {
                    LogReplaced(_logger, LogValues.Escape(domain), rule.FullKey, name);
                }

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
                    checks[index] = new RateLimitCheck(limit, key, hits, rule.ShadowMode) { IsAlwaysCharged = _options.HitCounting != EnvoyHitCounting.WithinLimit };
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
            results = await CountAsync(matches, checks, count, cancellationToken).ConfigureAwait(false);
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
                if (_logger.IsEnabled(LogLevel.Debug))
                {
                    LogOverLimit(_logger, LogValues.Escape(domain), failedRate + failedQuota, descriptors.Count);
                }
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

    [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "Rate limit request for the unknown domain '{Domain}': answered OK")]
    private static partial void LogUnknownDomain(ILogger logger, string domain);

    [LoggerMessage(EventId = 11, Level = LogLevel.Debug, Message = "In domain '{Domain}', the rule {Rule} ('{Name}') is replaced by another rule of the request")]
    private static partial void LogReplaced(ILogger logger, string domain, string rule, string name);

    [LoggerMessage(EventId = 12, Level = LogLevel.Debug, Message = "Over the limit in domain '{Domain}': {Over} of {Descriptors} descriptors")]
    private static partial void LogOverLimit(ILogger logger, string domain, int over, int descriptors);
}

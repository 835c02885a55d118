using System.Buffers;
using System.Diagnostics.Metrics;
using System.Net;
using System.Security.Claims;
using Floodgate.AspNetCore.Costs;
using Floodgate.AspNetCore.Features;
using Floodgate.AspNetCore.Http;
using Floodgate.AspNetCore.Identity;
using Floodgate.AspNetCore.Policies;
using Floodgate.Engine;
using Floodgate.Keys;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Floodgate.AspNetCore.Middleware;

/// <summary>
/// Runs the tiers in order (edge per client IP, with bans; identity; then user, service and global), writes the limit
/// headers and answers rejections.
/// </summary>
/// <remarks>
/// <para>
/// Bans come first: the ban of each edge rule that applies to the request is probed as a pre-check of the engine's
/// first call, a stage before its tiers in the same store call, so a banned IP is answered without any tier being
/// decided or charged, and a ban costs no round trip of its own. When the identity is already known for free (a token
/// the resolver validated earlier and still caches, no credentials where anonymous callers are allowed, or without a
/// resolver the application's own authenticated user), the edge through global tiers are decided in one engine call:
/// one round trip on a remote store instead of two. The order of the tiers is unchanged: the first that rejects answers
/// and later tiers are not charged.
/// </para>
/// <para>
/// Otherwise (a token not validated yet, defective credentials, anonymous callers who are to be refused) the edge is
/// evaluated alone first, and only a request it admits has its credentials checked, then the user through global
/// tiers: a flood of unknown, forged or invalid tokens is shed by the edge, and can earn a ban, before any signature
/// check. An application policy whose edge rules read the identity (subject, claim or plan) always takes this path,
/// so those rules see no identity on any request.
/// </para>
/// <para>
/// The concurrency leases of an admitted request are renewed while the rest of the pipeline has it (its body read, its
/// response written, a WebSocket open: <see cref="RateLimitEngine.RenewLeases"/>) and released when it ends, however it
/// ends, so a long request keeps its permits past their lease timeout and a short one pays no round trip for them.
/// </para>
/// <para>
/// A request that concurrency rules with a queue reject waits for a permit (<see cref="RateLimitEngine.EvaluateQueuedAsync"/>)
/// on no thread, and leaves the queue holding nothing when its client goes away (the request's abort token).
/// </para>
/// </remarks>
public sealed partial class FloodgateMiddleware
{
    /// <summary>
    /// The <see cref="System.Diagnostics.ActivitySource"/> of each request's rate-limit step (activity
    /// <c>floodgate.rate_limit</c>, tags <c>floodgate.tier</c>, <c>floodgate.rule</c>, <c>floodgate.outcome</c>,
    /// <c>floodgate.remaining</c>, <c>floodgate.store.duration_ms</c>): add it to a tracer provider to trace it.
    /// </summary>
    public const string ActivitySourceName = "Floodgate.AspNetCore";

    private static readonly Meter Meter = new("Floodgate.AspNetCore");
    private static readonly Counter<long> Unauthorized = Meter.CreateCounter<long>("floodgate.identity.rejections", "{request}", "Requests refused by the identity step, by reason: 401 (the RFC 6750 error, or anonymous) or 503 (unavailable).");
    private static readonly Counter<long> Banned = Meter.CreateCounter<long>("floodgate.bans.rejections", "{request}", "Requests rejected because their client IP is banned, by rule.");
    private static readonly Counter<long> BansStarted = Meter.CreateCounter<long>("floodgate.bans.started", "{ban}", "Bans started, by rule.");
    private static readonly Counter<long> BansUnlisted = Meter.CreateCounter<long>("floodgate.bans.unlisted", "{ban}", "Bans an edge rule started that could not be listed in the ban store (full, or unreachable), by reason.");

    private readonly RequestDelegate _next;
    private readonly FloodgateRuntime _runtime;
    private readonly IIdentityResolver? _identity;
    private readonly EndpointDataSource? _endpoints;
    private readonly TimeProvider _time;
    private readonly IProblemDetailsService? _problems;
    private readonly bool _authenticationHasOtherSchemes;

    /// <summary>Creates the middleware.</summary>
    public FloodgateMiddleware(RequestDelegate next, FloodgateRuntime runtime, IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(next);
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(services);
        _next = next;
        _runtime = runtime;
        _identity = services.GetService(typeof(IIdentityResolver)) as IIdentityResolver;
        _endpoints = services.GetService(typeof(EndpointDataSource)) as EndpointDataSource;
        _time = services.GetService(typeof(TimeProvider)) as TimeProvider ?? TimeProvider.System;
        _problems = services.GetService(typeof(IProblemDetailsService)) as IProblemDetailsService;
        _authenticationHasOtherSchemes = services.GetService(typeof(Authentication.FloodgateAuthenticationMarker)) is not null;
    }

    /// <summary>Evaluates the request and, when it is admitted, calls the rest of the pipeline.</summary>
    public Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        _runtime.AttachEndpoints(_endpoints);
        return NamedPolicies.IsDisabled(context.GetEndpoint()) ? _next(context) : InvokeCoreAsync(context);
    }

    private Task InvokeCoreAsync(HttpContext context)
    {
        // Untraced (nothing listens to the activity source): no step, and no frame of its own.
        var step = RateLimitStep.Start(context);
        return step is null ? InvokeTracedAsync(context, null) : InvokeWithStepAsync(context, step);
    }

    private async Task InvokeWithStepAsync(HttpContext context, RateLimitStep step)
    {
        try
        {
            await InvokeTracedAsync(context, step).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            step.Fail(e);
            throw;
        }
    }

    private async Task InvokeTracedAsync(HttpContext context, RateLimitStep? step)
    {
        var settings = _runtime.Settings;
        var engine = _runtime.Engine;
        var aborted = context.RequestAborted;
        var request = new HttpRequestContext(context, settings.Proxies);

        // The deny and bypass lists, before any other work: a denied address costs no body read and no store call.
        var access = BeforeIdentity(context, request, ref settings);
        if (access == Access.AccessVerdict.Denied)
        {
            step?.Finish("denied", default);
            await Access.AccessResponses.WriteDeniedAsync(context, "client address").ConfigureAwait(false);
            return;
        }

        // The rate-limit id, verified before the edge tier so that an edge rule may key on it (docs/edge.md).
        if (settings.RateLimitIds is { } ids && ids.Verify(context) == RateLimitIds.RateLimitIdVerdict.Refuse)
        {
            step?.Finish("invalid_id", default);
            await ids.RefuseAsync(context).ConfigureAwait(false);
            return;
        }

        // The Floodgate authentication handler may have run first (UseAuthentication before UseFloodgate) and left the
        // identity it resolved here; otherwise the handler, running later, finds the middleware's.
        if (context.Features.Get<IFloodgateFeature>() is not FloodgateFeature feature)
        {
            feature = new FloodgateFeature();
            context.Features.Set<IFloodgateFeature>(feature);
        }

        // A ban set at runtime on the client's address is a local lookup: answered before anything is read or decided.
        if (FindAddressBan(engine.Bans, request, settings) is { } addressBan)
        {
            await RefuseBannedAsync(context, addressBan, settings, step).ConfigureAwait(false);
            return;
        }

        // The body fields cost rules reserve by (max_tokens...), read before any decision that reserves by them.
        await ResponseCosts.ReadFieldsAsync(settings.Policy, request, aborted).ConfigureAwait(false);

        // The bans that apply are probed as pre-checks: a stage before the tiers, in the same store call as the first of them.
        var probes = BanProbes.For(settings, request);

        // An identity known for free, with which the request may go on, is recorded now, and the edge is decided with
        // the other tiers; otherwise the edge is decided alone, before any credentials are checked.
        var identity = default(IdentityResult);
        var resolved = settings.HasEdgeRules && !settings.EdgeReadsIdentity && TryResolveCached(context, settings, feature, out identity);
        var admitted = resolved && Admit(request, identity, settings);
        if (admitted && AfterIdentity(context, identity, ref access, ref settings) is var refusal and not IdentityRefusal.None)
        {
            await RefuseAfterIdentityAsync(context, settings, refusal, step).ConfigureAwait(false);
            return;
        }

        var edgeFirst = settings.HasEdgeRules && !admitted;
        RateLimitResult edge = default;
        if (edgeFirst)
        {
            (edge, var bannedBy) = await EvaluateAsync(engine, settings, request, RateLimitTier.Edge, RateLimitTier.Edge, probes, step, aborted).ConfigureAwait(false);
            probes = default;
            if (!edge.IsAllowed)
            {
                feature.Result = edge;
                await RejectAsync(context, request, edge, bannedBy, settings, step, aborted).ConfigureAwait(false);
                return;
            }
        }

        // Every lease taken is released exactly once, whatever happens next: the edge's alone until the other tiers
        // have been evaluated, then the combined result's (which holds the edge's too).
        var held = edge;
        CostStep? costs = null;
        var served = false;
        var adaptive = default(Adaptive.AdaptiveAdmission);
        try
        {
            if (!admitted)
            {
                if (!resolved)
                {
                    identity = await ResolveAsync(context, settings, feature, aborted).ConfigureAwait(false);
                }

                if (!Admit(request, identity, settings))
                {
                    step?.Finish("unauthorized", default);
                    await RefuseAsync(context, identity).ConfigureAwait(false);
                    return;
                }

                if (AfterIdentity(context, identity, ref access, ref settings) is var refused and not IdentityRefusal.None)
                {
                    await RefuseAfterIdentityAsync(context, settings, refused, step).ConfigureAwait(false);
                    return;
                }
            }

            feature.Identity = identity;
            if (FindSubjectBan(engine.Bans, identity) is { } subjectBan)
            {
                await RefuseBannedAsync(context, subjectBan, settings, step).ConfigureAwait(false);
                return;
            }

            // Distinct rules are counted beside the tiers: sent before the tiers' call and awaited after it, so a remote
            // store answers both in the time of one round trip (docs/edge.md).
            var first = admitted ? RateLimitTier.Edge : RateLimitTier.User;
            var distinct = engine.CountDistinctAsync(settings.Policy, request, aborted);
            var (rest, bannedBy) = await EvaluateAsync(engine, settings, request, first, RateLimitTier.Global, probes, step, aborted).ConfigureAwait(false);
            var distinctVerdict = await distinct.ConfigureAwait(false);
            var result = edgeFirst ? RateLimitResult.Combine(edge, rest) : rest;
            held = result;
            feature.Result = result;
            if (!result.IsAllowed)
            {
                await RejectAsync(context, request, result, bannedBy, settings, step, aborted).ConfigureAwait(false);
                return;
            }

            if (distinctVerdict.IsOver)
            {
                await RefuseDistinctAsync(context, request, distinctVerdict, settings, step).ConfigureAwait(false);
                return;
            }

            step?.Finish("allowed", result.Decision);

            // A leaky bucket queue gave the request a slot later than now: it waits for it on a timer, holding no
            // thread. A client that goes away meanwhile ends the wait (its slot stays spent, as in nginx's limit_req).
            if (result.Delay > TimeSpan.Zero)
            {
                await Task.Delay(result.Delay, _time, aborted).ConfigureAwait(false);
            }

            RateLimitResponses.WriteHeaders(context.Response, result.Decision, settings.IetfHeaders, settings.LegacyHeaders, settings.LegacyReset, _time);

            // Its permits last as long as the request (a WebSocket, a stream, a long body), renewed until the release below.
            engine.RenewLeases(result);

            if (settings.RateLimitIds is { } issuer && issuer.IsIssuePath(context.Request.Path))
            {
                await issuer.IssueAsync(context, identity).ConfigureAwait(false);
                return;
            }

            // The adaptive concurrency limits, after the fixed ones (both apply): docs/adaptive-concurrency.md.
            if (adaptive.Enter(_runtime.Adaptive.Entries, request) is { } full)
            {
                await RateLimitResponses.WriteAdaptiveRejectionAsync(context, full.Rule, full.EffectiveLimit, settings.Rejections, _problems).ConfigureAwait(false);
                return;
            }

            // Reservations are settled when the response ends, with the usage it reported (docs/cost.md).
            costs = ResponseCosts.Start(request, result, settings.Policy);
            await _next(context).ConfigureAwait(false);
            served = true;
        }
        finally
        {
            adaptive.Exit(Adaptive.AdaptiveAdmission.OutcomeOf(context, served));
            if (held.HasLeases)
            {
                await engine.ReleaseAsync(held, CancellationToken.None).ConfigureAwait(false);
            }

            // A request refused after a reservation (by identity, or a later tier) was never served: refunded. Not the
            // request's token: the request has ended, and its settlement must still reach the store.
            if (held.HasReservations)
            {
                var completion = costs?.End(threw: !served) ?? Floodgate.Costs.RequestCompletion.NotServed;
                await engine.SettleAsync(held, costs?.Report, completion, CancellationToken.None).ConfigureAwait(false);

                // Settled: the step (its body, scanner and report) serves the next request.
                costs?.Return();
            }
        }
    }

    /// <summary>
    /// Evaluates the tiers on the policy of <paramref name="settings"/> (the one the request started with, whatever a
    /// reload has put in force since), after the ban probes when there are any, and gives their arrays back to the pool.
    /// </summary>
    /// <returns>The result, and the ban whose probe rejected the request, if one did.</returns>
    private static async ValueTask<(RateLimitResult Result, BanRule? BannedBy)> EvaluateAsync(RateLimitEngine engine, CompiledSettings settings, HttpRequestContext request, RateLimitTier first, RateLimitTier last, BanProbes probes, RateLimitStep? step, CancellationToken aborted)
    {
        if (step is null)
        {
            return await EvaluateAsync(engine, settings, request, first, last, probes, aborted).ConfigureAwait(false);
        }

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            return await EvaluateAsync(engine, settings, request, first, last, probes, aborted).ConfigureAwait(false);
        }
        finally
        {
            step.AddStoreTime(started);
        }
    }

    private static async ValueTask<(RateLimitResult Result, BanRule? BannedBy)> EvaluateAsync(RateLimitEngine engine, CompiledSettings settings, HttpRequestContext request, RateLimitTier first, RateLimitTier last, BanProbes probes, CancellationToken aborted)
    {
        if (probes.IsEmpty)
        {
            return (await engine.EvaluateQueuedAsync(settings.Policy, request, first, last, ReadOnlyMemory<RateLimitCheck>.Empty, aborted).ConfigureAwait(false), null);
        }

        try
        {
            var result = await engine.EvaluateQueuedAsync(settings.Policy, request, first, last, probes.Checks, aborted).ConfigureAwait(false);
            return (result, probes.BanThatDenied(result));
        }
        finally
        {
            probes.Return();
        }
    }

    /// <summary>
    /// Answers a rejection; one by an edge rule starts the rule's ban, if it has one. A denial by a failure mode (the
    /// store unreachable) bans no one: the client did not go over the limit.
    /// </summary>
    private async ValueTask RejectAsync(HttpContext context, HttpRequestContext request, RateLimitResult result, BanRule? bannedBy, CompiledSettings settings, RateLimitStep? step, CancellationToken aborted)
    {
        step?.Finish(bannedBy is not null ? "banned" : result.Decision.IsStoreFailure ? "store_failure" : "rejected", result.Decision);
        if (bannedBy is { } ban)
        {
            // A ban's probe: the IP's ban bucket cannot take 1 more until the retry-after of the probe.
            Banned.Add(1, new KeyValuePair<string, object?>("rule", ban.Rule.Name));
            var retry = result.PreCheckOutcome.Outcome.RetryAfterMicroseconds;
            await RateLimitResponses.WriteBanAsync(context, ban.Rule.Name, TimeSpan.FromMicroseconds(Math.Max(0, retry)), settings.Rejections, _problems).ConfigureAwait(false);
            return;
        }

        if (result.Decision.Tier == RateLimitTier.Edge && !result.Decision.IsStoreFailure)
        {
            await StartBanAsync(settings, result.Decision.Rule, request, aborted).ConfigureAwait(false);
        }

        await RateLimitResponses.WriteRejectionAsync(context, result, settings.IetfHeaders, settings.LegacyHeaders, settings.LegacyReset, _time, settings.Rejections, _problems).ConfigureAwait(false);
    }

    /// <summary>
    /// Answers the request whose <paramref name="identity"/> was not admitted: 401, or 503 with <c>Retry-After</c> when
    /// its credentials cannot be checked now.
    /// </summary>
    private static Task RefuseAsync(HttpContext context, in IdentityResult identity)
    {
        switch (identity.Status)
        {
            case IdentityStatus.Invalid:
                Unauthorized.Add(1, new KeyValuePair<string, object?>("reason", identity.Error));
                return RateLimitResponses.WriteUnauthorizedAsync(context, identity.Error ?? "invalid_token", identity.ErrorDescription);
            case IdentityStatus.Unavailable:
                Unauthorized.Add(1, new KeyValuePair<string, object?>("reason", "unavailable"));
                return RateLimitResponses.WriteIdentityUnavailableAsync(context, identity.ErrorDescription, identity.RetryAfter);
        }

        Unauthorized.Add(1, new KeyValuePair<string, object?>("reason", "anonymous"));
        return RateLimitResponses.WriteUnauthorizedAsync(context, null, null);
    }

    /// <summary>
    /// The probes of the bans that apply to a request, in the order of <see cref="CompiledSettings.Bans"/>, and at the same
    /// index the ban each probe is for: the engine names a denying probe by its index among the pre-checks, so the ban
    /// that rejected is read here, not found again by matching. Both arrays are rented from the pool; empty when no ban
    /// applies.
    /// </summary>
    private readonly struct BanProbes
    {
        private readonly RateLimitCheck[]? _checks;
        private readonly BanRule[]? _bans;
        private readonly int _count;

        private BanProbes(RateLimitCheck[] checks, BanRule[] bans, int count) => (_checks, _bans, _count) = (checks, bans, count);

        /// <summary>Whether no ban applies.</summary>
        public bool IsEmpty => _checks is null;

        /// <summary>The probes, as the engine's pre-checks.</summary>
        public ReadOnlyMemory<RateLimitCheck> Checks => _checks.AsMemory(0, _count);

        /// <summary>
        /// The probes of the bans that apply to <paramref name="request"/>: can the IP's ban bucket take 1 more? A probe
        /// never spends it, and while the store is unreachable it is allowed (an outage must never look like a ban). None
        /// when no ban applies, as for a client IP that is a trusted proxy's (<see cref="IsBannable"/>).
        /// </summary>
        public static BanProbes For(CompiledSettings settings, HttpRequestContext request)
        {
            var bans = settings.Bans;
            if (bans.Length == 0 || request.ClientIp is not { } ip || !IsBannable(ip, settings))
            {
                return default;
            }

            RateLimitCheck[]? checks = null;
            BanRule[]? probed = null;
            var count = 0;
            string? address = null;
            foreach (var ban in bans)
            {
                if (!ban.Rule.Match.IsMatch(request))
                {
                    continue;
                }

                address ??= ClientAddress.Name(ip, settings.Policy.Ipv6PrefixLength);
                checks ??= ArrayPool<RateLimitCheck>.Shared.Rent(bans.Length);
                probed ??= ArrayPool<BanRule>.Shared.Rent(bans.Length);
                probed[count] = ban;
                checks[count++] = ban.Check(StoreKey.Create(ban.Scope, address), 1) with { IsProbe = true, OnStoreFailure = StoreFailureMode.Open };
            }

            return checks is null ? default : new BanProbes(checks, probed!, count);
        }

        /// <summary>The ban whose probe rejected <paramref name="result"/>, the engine's answer to these probes; <see langword="null"/> when none did.</summary>
        public BanRule? BanThatDenied(in RateLimitResult result) => result.DeniedPreCheck >= 0 ? _bans![result.DeniedPreCheck] : null;

        /// <summary>Gives the arrays back to the pool.</summary>
        public void Return()
        {
            if (_checks is not null)
            {
                ArrayPool<RateLimitCheck>.Shared.Return(_checks, clearArray: true);
                ArrayPool<BanRule>.Shared.Return(_bans!, clearArray: true);
            }
        }
    }
}

using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Floodgate.AspNetCore.Rejections;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace Floodgate.AspNetCore.Middleware;

/// <summary>
/// Writes Floodgate's answers: limit headers on every response, and the 429, 503 and 401 rejections (to a gRPC call, as
/// the gRPC status that stands for each: <see cref="GrpcResponses"/>).
/// </summary>
public static class RateLimitResponses
{
    /// <summary>The IETF field naming the policy: <c>"name";q=100;w=60</c>.</summary>
    public const string PolicyHeader = "RateLimit-Policy";

    /// <summary>The IETF field with the current state: <c>"name";r=42;t=17</c>.</summary>
    public const string StateHeader = "RateLimit";

    /// <summary>The problem details media type.</summary>
    public const string ProblemJson = "application/problem+json";

    private static readonly string[] TierNames = ["edge", "user", "service", "global"];

    // The body is JSON for API clients, never HTML: quotes and apostrophes in rule names stay readable.
    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly ConditionalWeakTable<RateLimitRule, RuleTexts> Texts = [];

    /// <summary>
    /// The <c>RateLimit-Policy</c> value of a decision: <c>"name";q=100;w=60</c> (no window for concurrency), with
    /// <c>;qu="tokens"</c> (the rule's cost unit) for a rule whose cost is settled from usage.
    /// </summary>
    /// <remarks>Formatted once per rule and limit, then cached with the rule.</remarks>
    public static string FormatPolicy(in RateLimitDecision decision)
    {
        var rule = decision.Rule ?? throw new ArgumentException("The decision names no rule.", nameof(decision));
        return TextsOf(rule).PolicyOf(decision.Limit!, rule.Costs?.Unit);
    }

    /// <summary>The <c>RateLimit</c> value of a decision: <c>"name";r=42;t=17</c>, the reset in whole seconds rounded up.</summary>
    public static string FormatState(in RateLimitDecision decision)
    {
        var rule = decision.Rule ?? throw new ArgumentException("The decision names no rule.", nameof(decision));
        return string.Create(CultureInfo.InvariantCulture, $"{TextsOf(rule).QuotedName};r={decision.Remaining};t={CeilingSeconds(decision.ResetAfter)}");
    }

    /// <summary>Whole seconds, rounded up.</summary>
    public static long CeilingSeconds(TimeSpan span) =>
        span <= TimeSpan.Zero ? 0 : (span.Ticks + TimeSpan.TicksPerSecond - 1) / TimeSpan.TicksPerSecond;

    /// <summary>
    /// The Unix time in whole seconds, rounded up, at which <paramref name="after"/> from <paramref name="now"/> ends
    /// (<paramref name="now"/> itself, rounded up, when it is not positive): never earlier than the reset.
    /// </summary>
    public static long CeilingUnixSeconds(DateTimeOffset now, TimeSpan after) =>
        CeilingSeconds(TimeSpan.FromTicks(now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) + (after > TimeSpan.Zero ? after : TimeSpan.Zero));

    /// <summary>Sets the limit headers of the most constrained rule on <paramref name="response"/>; nothing when no rule applied.</summary>
    /// <remarks><c>X-RateLimit-Reset</c> is in seconds from now.</remarks>
    public static void WriteHeaders(HttpResponse response, in RateLimitDecision decision, bool ietf, bool legacy) =>
        WriteHeaders(response, decision, ietf, legacy, RateLimitResetFormat.DeltaSeconds, TimeProvider.System);

    /// <summary>Sets the limit headers of the most constrained rule on <paramref name="response"/>; nothing when no rule applied.</summary>
    /// <param name="response">The response.</param>
    /// <param name="decision">The decision whose rule's state the headers tell.</param>
    /// <param name="ietf">Whether to write <c>RateLimit-Policy</c> and <c>RateLimit</c>.</param>
    /// <param name="legacy">Whether to write <c>X-RateLimit-Limit</c>, <c>X-RateLimit-Remaining</c> and <c>X-RateLimit-Reset</c>.</param>
    /// <param name="legacyReset">How <c>X-RateLimit-Reset</c> tells the reset.</param>
    /// <param name="time">The clock the Unix time of <see cref="RateLimitResetFormat.UnixSeconds"/> is read from (the engine's).</param>
    public static void WriteHeaders(HttpResponse response, in RateLimitDecision decision, bool ietf, bool legacy, RateLimitResetFormat legacyReset, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(time);
        if (decision.Rule is null)
        {
            return;
        }

        var headers = response.Headers;
        if (ietf)
        {
            headers[PolicyHeader] = FormatPolicy(decision);
            headers[StateHeader] = FormatState(decision);
        }

        if (legacy)
        {
            headers["X-RateLimit-Limit"] = decision.Quota.ToString(CultureInfo.InvariantCulture);
            headers["X-RateLimit-Remaining"] = decision.Remaining.ToString(CultureInfo.InvariantCulture);
            var reset = legacyReset == RateLimitResetFormat.UnixSeconds
                ? CeilingUnixSeconds(time.GetUtcNow(), decision.ResetAfter)
                : CeilingSeconds(decision.ResetAfter);
            headers["X-RateLimit-Reset"] = reset.ToString(CultureInfo.InvariantCulture);
        }
    }

    /// <summary>
    /// Answers a rejection: 429 for the edge and user tiers, 503 for service and global capacity and for a closed failure
    /// mode's denial while the store is unreachable, with
    /// <c>Retry-After</c> (omitted when the cost can never fit) and a problem details body naming the rule, tier and retry.
    /// </summary>
    /// <remarks><c>X-RateLimit-Reset</c> is in seconds from now.</remarks>
    public static Task WriteRejectionAsync(HttpContext context, RateLimitResult result, bool ietf, bool legacy) =>
        WriteRejectionAsync(context, result, ietf, legacy, RateLimitResetFormat.DeltaSeconds, TimeProvider.System);

    /// <summary>
    /// Answers a rejection as <see cref="WriteRejectionAsync(HttpContext, RateLimitResult, bool, bool)"/> does, with
    /// <c>X-RateLimit-Reset</c> told as <paramref name="legacyReset"/> says, by the clock <paramref name="time"/>.
    /// </summary>
    public static Task WriteRejectionAsync(HttpContext context, RateLimitResult result, bool ietf, bool legacy, RateLimitResetFormat legacyReset, TimeProvider time) =>
        WriteRejectionAsync(context, result, ietf, legacy, legacyReset, time, RejectionSettings.Default, null).AsTask();

    /// <summary>Answers a rejection with the application's status codes, callback or problem details service.</summary>
    internal static ValueTask WriteRejectionAsync(HttpContext context, in RateLimitResult result, bool ietf, bool legacy, RateLimitResetFormat legacyReset, TimeProvider time, RejectionSettings rejections, IProblemDetailsService? problems)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(time);
        var decision = result.Decision;
        var rule = decision.Rule ?? throw new ArgumentException("A rejection names its rule.", nameof(result));
        var status = rejections.StatusOf(result);
        var tier = TierNames[(int)decision.Tier];
        WriteHeaders(context.Response, decision, ietf, legacy, legacyReset, time);
        long? retry = decision.IsPermanent ? null : Math.Max(1, CeilingSeconds(decision.RetryAfter));
        var detail = (retry, decision.IsStoreFailure) switch
        {
            ({ } seconds, true) => string.Create(CultureInfo.InvariantCulture, $"The rate limit store cannot be reached and the {tier} rule '{rule.Name}' fails closed; retry after {seconds} second{(seconds == 1 ? string.Empty : "s")}."),
            ({ } seconds, false) => string.Create(CultureInfo.InvariantCulture, $"The {tier} rule '{rule.Name}' is over its limit; retry after {seconds} second{(seconds == 1 ? string.Empty : "s")}."),
            _ => $"The request costs more than the {tier} rule '{rule.Name}' can ever admit; retrying will not help.",
        };
        var rejected = rejections.OnRejected is null && problems is null ? null
            : new FloodgateRejectedContext(context, decision, decision.Tier, rule.Name, retry is { } r ? TimeSpan.FromSeconds(r) : null, detail, isBan: false);
        return AnswerAsync(context, status, detail, rule.Name, tier, retry, decision.RetryAfter, rejections, problems, rejected);
    }

    /// <summary>Answers a request from a banned client IP: 429, with the time left on the ban.</summary>
    public static Task WriteBanAsync(HttpContext context, string rule, TimeSpan remaining) =>
        WriteBanAsync(context, rule, remaining, RejectionSettings.Default, null).AsTask();

    /// <summary>Answers a banned client IP with the application's status code for the edge, callback or problem details service.</summary>
    internal static ValueTask WriteBanAsync(HttpContext context, string rule, TimeSpan remaining, RejectionSettings rejections, IProblemDetailsService? problems, string? banned = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        var seconds = Math.Max(1, CeilingSeconds(remaining));
        var detail = string.Create(CultureInfo.InvariantCulture, $"{banned ?? $"This client went over the edge rule '{rule}' and is banned"}; retry after {seconds} second{(seconds == 1 ? string.Empty : "s")}.");
        var rejected = rejections.OnRejected is null && problems is null ? null
            : new FloodgateRejectedContext(context, default, RateLimitTier.Edge, rule, TimeSpan.FromSeconds(seconds), detail, isBan: true);
        return AnswerAsync(context, rejections.StatusOf(RateLimitTier.Edge, false, false), detail, rule, "edge", seconds, remaining, rejections, problems, rejected);
    }

    /// <summary>Answers a request refused by a distinct rule (429 or 403), with the time its key's window has left.</summary>
    internal static ValueTask WriteDistinctAsync(HttpContext context, string rule, int status, TimeSpan remaining, string detail, RejectionSettings rejections, IProblemDetailsService? problems)
    {
        var seconds = Math.Max(1, CeilingSeconds(remaining));
        var rejected = rejections.OnRejected is null && problems is null ? null
            : new FloodgateRejectedContext(context, default, RateLimitTier.User, rule, TimeSpan.FromSeconds(seconds), detail, isBan: false);
        return AnswerAsync(context, status, detail, rule, "user", seconds, remaining, rejections, problems, rejected);
    }

    /// <summary>
    /// Answers a request beyond a rule's adaptive concurrency limit (docs/adaptive-concurrency.md) as a service-tier
    /// capacity rejection: 503 (or the service tier's status code) with <c>Retry-After: 1</c>.
    /// </summary>
    internal static ValueTask WriteAdaptiveRejectionAsync(HttpContext context, string rule, int limit, RejectionSettings rejections, IProblemDetailsService? problems)
    {
        ArgumentNullException.ThrowIfNull(context);
        var detail = string.Create(CultureInfo.InvariantCulture, $"The service rule '{rule}' has its {limit} requests in flight, a limit learned from the upstream's latency; retry after 1 second.");
        var rejected = rejections.OnRejected is null && problems is null ? null
            : new FloodgateRejectedContext(context, default, RateLimitTier.Service, rule, TimeSpan.FromSeconds(1), detail, isBan: false);
        return AnswerAsync(context, rejections.StatusOf(RateLimitTier.Service, isCapacity: true, isStoreFailure: false), detail, rule, "service", 1, TimeSpan.FromSeconds(1), rejections, problems, rejected);
    }

    /// <summary>
    /// Sets the status and <c>Retry-After</c>, then has the body written by the application's callback, by the problem
    /// details service, or by <see cref="WriteProblemAsync"/>. A gRPC call always gets its gRPC status.
    /// </summary>
    private static async ValueTask AnswerAsync(HttpContext context, int status, string detail, string rule, string tier, long? retryAfter, TimeSpan delay, RejectionSettings rejections, IProblemDetailsService? problems, FloodgateRejectedContext? rejected)
    {
        var title = ReasonPhrases.GetReasonPhrase(status);
        if (rejected is null || GrpcResponses.IsGrpc(context.Request))
        {
            await WriteProblemAsync(context, status, title, detail, rule, tier, retryAfter, delay).ConfigureAwait(false);
            return;
        }

        var response = context.Response;
        response.StatusCode = status;
        if (retryAfter is { } retry)
        {
            response.Headers[HeaderNames.RetryAfter] = retry.ToString(CultureInfo.InvariantCulture);
        }

        if (rejections.OnRejected is { } onRejected)
        {
            await onRejected(rejected, context.RequestAborted).ConfigureAwait(false);
            return;
        }

        response.Headers.CacheControl = "no-store";
        var problem = new Microsoft.AspNetCore.Mvc.ProblemDetails { Status = status, Title = title, Detail = detail };
        problem.Extensions["tier"] = tier;
        problem.Extensions["rule"] = rule;
        if (retryAfter is { } seconds)
        {
            problem.Extensions["retryAfter"] = seconds;
        }

        if (!await problems!.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem }).ConfigureAwait(false))
        {
            await WriteProblemAsync(context, status, title, detail, rule, tier, retryAfter, delay).ConfigureAwait(false);
        }
    }

    /// <summary>Answers 401 with <c>WWW-Authenticate: Bearer</c> (RFC 6750), with the error when the token was invalid.</summary>
    public static Task WriteUnauthorizedAsync(HttpContext context, string? error, string? description)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.Headers[HeaderNames.WWWAuthenticate] = error is null
            ? "Bearer"
            : $"Bearer error=\"{Sanitize(error)}\", error_description=\"{Sanitize(description ?? string.Empty)}\"";
        var detail = error is null ? "This API requires a bearer token." : $"The bearer token was refused: {description ?? error}.";
        return WriteProblemAsync(context, StatusCodes.Status401Unauthorized, "Unauthorized", detail, null, "identity", null, null);
    }

    /// <summary>
    /// Answers 503 a request whose credentials cannot be checked now (the identity provider's keys are unavailable), with
    /// <c>Retry-After</c> and a problem details body naming the cause; no <c>WWW-Authenticate</c>, since the credentials
    /// were not found wrong.
    /// </summary>
    internal static Task WriteIdentityUnavailableAsync(HttpContext context, string? description, TimeSpan retryAfter)
    {
        var seconds = Math.Max(1, CeilingSeconds(retryAfter));
        var detail = string.Create(CultureInfo.InvariantCulture, $"The bearer token cannot be checked now ({description ?? "identity unavailable"}); retry after {seconds} second{(seconds == 1 ? string.Empty : "s")}.");
        return WriteProblemAsync(context, StatusCodes.Status503ServiceUnavailable, "Service Unavailable", detail, null, "identity", seconds, retryAfter);
    }

    /// <param name="context">The request.</param>
    /// <param name="status">429, 503 or 401.</param>
    /// <param name="title">The status's title.</param>
    /// <param name="detail">What happened, naming the rule.</param>
    /// <param name="rule">The rule, if one refused.</param>
    /// <param name="tier">The tier that refused.</param>
    /// <param name="retryAfter">Retry-After in whole seconds; <see langword="null"/> when retrying cannot help.</param>
    /// <param name="delay">The retry delay, unrounded, for a gRPC call's pushback; <see cref="TimeSpan.Zero"/> or less for the rounded one.</param>
    private static async Task WriteProblemAsync(HttpContext context, int status, string title, string detail, string? rule, string tier, long? retryAfter, TimeSpan? delay)
    {
        var response = context.Response;
        response.StatusCode = status;
        if (retryAfter is { } retry)
        {
            response.Headers[HeaderNames.RetryAfter] = retry.ToString(CultureInfo.InvariantCulture);
        }

        if (GrpcResponses.IsGrpc(context.Request))
        {
            GrpcResponses.Write(context, status, detail, retryAfter is { } s ? (delay > TimeSpan.Zero ? delay : TimeSpan.FromSeconds(s)) : null);
            return;
        }

        response.ContentType = ProblemJson;
        response.Headers.CacheControl = "no-store";
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer, JsonOptions))
        {
            json.WriteStartObject();
            json.WriteString("type", "about:blank");
            json.WriteString("title", title);
            json.WriteNumber("status", status);
            json.WriteString("detail", detail);
            json.WriteString("tier", tier);
            if (rule is not null)
            {
                json.WriteString("rule", rule);
            }

            if (retryAfter is { } seconds)
            {
                json.WriteNumber("retryAfter", seconds);
            }

            json.WriteEndObject();
        }

        response.ContentLength = buffer.WrittenCount;
        await response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    private static string Quote(string name) =>
        name.AsSpan().IndexOfAny('"', '\\') < 0 ? $"\"{name}\"" : $"\"{name.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)}\"";

    private static string Sanitize(string text) =>
        string.Create(text.Length, text, static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                var c = source[i];
                span[i] = c is '"' or '\\' || c < ' ' || c > '~' ? '\'' : c;
            }
        });

    private static RuleTexts TextsOf(RateLimitRule rule) => Texts.GetValue(rule, static r => new RuleTexts(Quote(r.Name)));

    /// <summary>
    /// A rule's header texts: its quoted name, and its <c>RateLimit-Policy</c> value for each of its limits (one, or one
    /// per plan), so that writing the headers allocates nothing beyond the <c>RateLimit</c> value itself.
    /// </summary>
    private sealed class RuleTexts(string quotedName)
    {
        private (Limit Limit, string Text)[] _policies = [];

        public string QuotedName { get; } = quotedName;

        public string PolicyOf(Limit limit, string? unit)
        {
            var policies = Volatile.Read(ref _policies);
            foreach (var (known, text) in policies)
            {
                if (ReferenceEquals(known, limit))
                {
                    return text;
                }
            }

            var formatted = limit.Algorithm == LimitAlgorithm.Concurrency
                ? string.Create(CultureInfo.InvariantCulture, $"{QuotedName};q={limit.Amount}")
                : string.Create(CultureInfo.InvariantCulture, $"{QuotedName};q={limit.Amount};w={CeilingSeconds(limit.Rate.Period)}");

            // A budget counted in another unit than requests names it with the draft's quota unit (docs/cost.md).
            if (unit is not null)
            {
                formatted = string.Create(CultureInfo.InvariantCulture, $"{formatted};qu=\"{unit}\"");
            }

            // Copy on write: a rule has a handful of limits at most, and a lost race only formats again.
            Interlocked.CompareExchange(ref _policies, [.. policies, (limit, formatted)], policies);
            return formatted;
        }
    }
}

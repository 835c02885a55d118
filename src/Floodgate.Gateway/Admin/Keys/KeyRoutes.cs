using System.ComponentModel;
using Floodgate.ApiKeys;
using Floodgate.Gateway.Admin.Auth;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Policy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Admin.Keys;

/// <summary>
/// The admin routes of API keys: create (the secret is shown once, in that answer), list, read, rotate (the old key
/// stays valid for a grace period) and revoke. Every change is logged with the admin token that made it, and the key's
/// id, never its secret.
/// </summary>
internal static class KeyRoutes
{
    /// <summary>The most keys one list answers.</summary>
    public const int MaxPage = 1000;

    /// <summary>How long a rotated key stays valid unless the rotation says otherwise.</summary>
    public static readonly TimeSpan DefaultGrace = TimeSpan.FromHours(24);

    /// <summary>The longest grace period a rotation may give.</summary>
    public static readonly TimeSpan MaxGrace = TimeSpan.FromDays(30);

    public static void Map(RouteGroupBuilder group, GatewayRuntime runtime, TimeProvider time, ILogger audit)
    {
        group.MapPost("/keys", (KeyRequest body, HttpContext context) => CreateAsync(runtime, time, audit, body, context))
            .WithName("CreateApiKey").WithSummary("Creates an API key for a subject; the answer holds the key itself, shown this once.").ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/keys", (string? subject, string? after, int? limit, CancellationToken cancel) => ListAsync(runtime, subject, after, limit, cancel))
            .WithName("ListApiKeys").WithSummary("The API keys, by id, a page at a time (after the id given), optionally one subject's; never their secrets.");
        group.MapGet("/keys/{id}", (string id, CancellationToken cancel) => GetAsync(runtime, id, cancel))
            .WithName("GetApiKey").WithSummary("An API key's subject, account, plan and times, with its last use; never its secret.").ProducesProblem(StatusCodes.Status404NotFound);
        group.MapPost("/keys/{id}/rotate", (string id, RotateRequest? body, HttpContext context) => RotateAsync(runtime, time, audit, id, body, context))
            .WithName("RotateApiKey").WithSummary("Gives an API key a new secret, shown this once; the old one stays valid for the grace period (24h by default).").ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        group.MapDelete("/keys/{id}", (string id, HttpContext context) => RevokeAsync(runtime, audit, id, context))
            .WithName("RevokeApiKey").WithSummary("Revokes an API key: every replica refuses it within a second.").ProducesProblem(StatusCodes.Status404NotFound);
    }

    private static async Task<Results<Created<CreatedKey>, ValidationProblem, ProblemHttpResult>> CreateAsync(GatewayRuntime runtime, TimeProvider time, ILogger audit, KeyRequest body, HttpContext context)
    {
        var policy = runtime.Policy;
        if (NotEnabled(policy) is { } off)
        {
            return off;
        }

        if (Name(body.Subject, "subject", required: true, out var problem) is not { } subject)
        {
            return problem!;
        }

        var account = Name(body.Account, "account", required: false, out problem);
        if (problem is not null)
        {
            return problem;
        }

        if (body.Plan is { } plan && AdminInput.CheckPlan(policy, "plan", plan) is { } badPlan)
        {
            return badPlan;
        }

        var expiresAt = AdminInput.ExpiresAt(body.Ttl, time, "ttl", out problem);
        if (problem is not null)
        {
            return problem;
        }

        // A fresh id collides once in billions; a collision simply draws again.
        var now = Milliseconds(time.GetUtcNow());
        for (var attempt = 0; ; attempt++)
        {
            var id = ApiKeySecret.NewId();
            var (key, hash) = ApiKeySecret.NewKey(policy.ApiKeys!.Prefix, id);
            var record = new ApiKeyRecord(id, hash, subject, account, body.Plan, now, expiresAt is { } at ? Milliseconds(at) : null);
            if (await runtime.ApiKeys.CreateAsync(record, context.RequestAborted).ConfigureAwait(false))
            {
                var view = KeyView.Of(new ApiKeyEntry(record));
                AdminAudit.Changed(audit, context.TokenName(), "create api key", id, view.Describe());
                return TypedResults.Created($"{AdminApi.BasePath}/keys/{id}", new CreatedKey(key, view));
            }

            if (attempt == 3)
            {
                return TypedResults.Problem(detail: "No free key id was found; try again.", statusCode: StatusCodes.Status503ServiceUnavailable);
            }
        }
    }

    private static async Task<Results<Ok<KeyList>, ValidationProblem>> ListAsync(GatewayRuntime runtime, string? subject, string? after, int? limit, CancellationToken cancel)
    {
        var take = limit ?? 100;
        if (take is < 1 or > MaxPage)
        {
            return AdminProblems.BadField("limit", $"must be from 1 to {MaxPage}, not {take}.");
        }

        if (subject is not null && Name(subject, "subject", required: true, out var problem) is null)
        {
            return problem!;
        }

        var page = await runtime.ApiKeys.ListAsync(subject, after, take, cancel).ConfigureAwait(false);
        return TypedResults.Ok(new KeyList([.. page.Select(KeyView.Of)], page.Count == take ? page[^1].Record.Id : null));
    }

    private static async Task<Results<Ok<KeyView>, ProblemHttpResult, ValidationProblem>> GetAsync(GatewayRuntime runtime, string id, CancellationToken cancel)
    {
        if (Id(id) is { } bad)
        {
            return bad;
        }

        return await runtime.ApiKeys.GetAsync(id, cancel).ConfigureAwait(false) is { } entry
            ? TypedResults.Ok(KeyView.Of(entry))
            : AdminProblems.NotFound($"There is no API key '{id}'.");
    }

    private static async Task<Results<Ok<CreatedKey>, ProblemHttpResult, ValidationProblem>> RotateAsync(GatewayRuntime runtime, TimeProvider time, ILogger audit, string id, RotateRequest? body, HttpContext context)
    {
        var policy = runtime.Policy;
        if (NotEnabled(policy) is { } off)
        {
            return off;
        }

        if (Id(id) is { } bad)
        {
            return bad;
        }

        var grace = DefaultGrace;
        if (body?.Grace is { } text && !TryGrace(text, out grace))
        {
            return AdminProblems.BadField("grace", $"'{text}' is not a duration such as 0s, 15m, 12h or 7d (up to {MaxGrace.TotalDays:0}d).");
        }

        // Compare and set: a rotation made meanwhile elsewhere is not overwritten (its key would be lost); read again.
        for (var attempt = 0; attempt < 3; attempt++)
        {
            if (await runtime.ApiKeys.GetAsync(id, context.RequestAborted).ConfigureAwait(false) is not { } entry)
            {
                return AdminProblems.NotFound($"There is no API key '{id}'.");
            }

            var (key, hash) = ApiKeySecret.NewKey(policy.ApiKeys!.Prefix, id);
            var rotated = entry.Record.Rotated(hash, Milliseconds(time.GetUtcNow()), grace);
            if (await runtime.ApiKeys.ReplaceAsync(entry.Record, rotated, context.RequestAborted).ConfigureAwait(false))
            {
                var view = KeyView.Of(new ApiKeyEntry(rotated, entry.LastUsedAt));
                AdminAudit.Changed(audit, context.TokenName(), "rotate api key", id, $"old key valid until {view.PreviousValidUntil?.ToString("O") ?? "now"}");
                return TypedResults.Ok(new CreatedKey(key, view));
            }
        }

        return TypedResults.Problem(detail: $"API key '{id}' kept changing while it was rotated; try again.", statusCode: StatusCodes.Status409Conflict);
    }

    private static async Task<Results<NoContent, ProblemHttpResult, ValidationProblem>> RevokeAsync(GatewayRuntime runtime, ILogger audit, string id, HttpContext context)
    {
        if (Id(id) is { } bad)
        {
            return bad;
        }

        if (!await runtime.ApiKeys.RevokeAsync(id, context.RequestAborted).ConfigureAwait(false))
        {
            return AdminProblems.NotFound($"There is no API key '{id}'.");
        }

        AdminAudit.Changed(audit, context.TokenName(), "revoke api key", id, "revoked");
        return TypedResults.NoContent();
    }

    /// <summary>A 409 when the policy has no <c>api_keys</c> section: no key made now could be used.</summary>
    private static ProblemHttpResult? NotEnabled(GatewayPolicy policy) =>
        policy.ApiKeys is null
            ? TypedResults.Problem(detail: "API keys are not enabled: the policy has no api_keys section.", statusCode: StatusCodes.Status409Conflict, title: "API keys are not enabled.")
            : null;

    private static ValidationProblem? Id(string id) =>
        ApiKeySecret.IsId(id) ? null : AdminProblems.BadField("id", $"'{Logging.LogValues.Escape(id)}' is not a key id: {ApiKeySecret.IdLength} lower-case letters and digits.");

    private static string? Name(string? value, string field, bool required, out ValidationProblem? problem)
    {
        problem = value is null ? (required ? AdminProblems.BadField(field, "is required.") : null)
            : value.Length == 0 ? AdminProblems.BadField(field, "is empty.")
            : value.Length > ApiKeyRecord.MaxNameLength ? AdminProblems.BadField(field, $"is {value.Length} characters; at most {ApiKeyRecord.MaxNameLength}.")
            : null;
        return problem is null ? value : null;
    }

    private static bool TryGrace(string text, out TimeSpan grace) =>
        YamlReader.TryParseDuration(text, out grace) && grace >= TimeSpan.Zero && grace <= MaxGrace;

    /// <summary>A time to the millisecond, as a remote store keeps it, so that a record read back is the record written.</summary>
    private static DateTimeOffset Milliseconds(DateTimeOffset at) => DateTimeOffset.FromUnixTimeMilliseconds(at.ToUnixTimeMilliseconds());
}

/// <summary>The body of <c>POST /admin/v1/keys</c>.</summary>
/// <param name="Subject">The subject the key is, for every tier, exactly as a token's subject.</param>
/// <param name="Account">The account the subject belongs to, as the key's <c>account</c> claim; omitted for none.</param>
/// <param name="Plan">The key's plan; omitted for the default plan.</param>
/// <param name="Ttl">How long the key is valid, such as <c>90d</c>; omitted for ever.</param>
internal sealed record KeyRequest(
    [property: Description("The subject the key is, for every tier, exactly as a token's subject.")] string? Subject,
    [property: Description("The account the subject belongs to, as the key's account claim; omitted for none.")] string? Account = null,
    [property: Description("The key's plan; omitted for the default plan.")] string? Plan = null,
    [property: Description("How long the key is valid, such as 90d; omitted for ever.")] string? Ttl = null);

/// <summary>The body of <c>POST /admin/v1/keys/{id}/rotate</c>.</summary>
/// <param name="Grace">How long the old key stays valid, such as <c>1h</c>; <c>0s</c> to stop it at once; 24h by default.</param>
internal sealed record RotateRequest(
    [property: Description("How long the old key stays valid, such as 1h; 0s to stop it at once; 24h by default.")] string? Grace = null);

/// <summary>An API key as the admin API shows it: never its secret.</summary>
/// <param name="Id">The key's id, the part after the prefix.</param>
/// <param name="Subject">The subject.</param>
/// <param name="Account">The account, if any.</param>
/// <param name="Plan">The plan, if any (else the default plan).</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="ExpiresAt">When it expires, if ever.</param>
/// <param name="LastUsedAt">When it was last used, if ever (written by each replica every few seconds).</param>
/// <param name="RotatedAt">When it was last rotated, if ever.</param>
/// <param name="PreviousValidUntil">Until when the key it replaced in its last rotation is valid, if it is held.</param>
internal sealed record KeyView(string Id, string Subject, string? Account, string? Plan, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? LastUsedAt, DateTimeOffset? RotatedAt, DateTimeOffset? PreviousValidUntil)
{
    public static KeyView Of(ApiKeyEntry entry)
    {
        var record = entry.Record;
        return new(record.Id, record.Subject, record.Account, record.Plan, record.CreatedAt, record.ExpiresAt, entry.LastUsedAt, record.RotatedAt, record.PreviousValidUntil);
    }

    public string Describe() =>
        $"subject {Subject}{(Account is null ? string.Empty : $", account {Account}")}, plan {Plan ?? "(default)"}{(ExpiresAt is { } at ? $", until {at:O}" : string.Empty)}";
}

/// <summary>A key as created or rotated: the key itself, shown this once, and what is stored of it.</summary>
/// <param name="Key">The key to hand to its holder; it cannot be read again.</param>
/// <param name="ApiKey">What is stored of it.</param>
internal sealed record CreatedKey(string Key, KeyView ApiKey);

/// <summary>A page of keys.</summary>
/// <param name="Keys">The keys, by id.</param>
/// <param name="Next">The id to list after for the next page; <see langword="null"/> on the last page.</param>
internal sealed record KeyList(IReadOnlyList<KeyView> Keys, string? Next);

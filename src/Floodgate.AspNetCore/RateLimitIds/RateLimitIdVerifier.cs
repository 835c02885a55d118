using System.Buffers;
using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Text.Json;
using Floodgate.AspNetCore.Http;
using Floodgate.AspNetCore.Identity;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace Floodgate.AspNetCore.RateLimitIds;

/// <summary>What the rate-limit id step says of a request.</summary>
internal enum RateLimitIdVerdict
{
    /// <summary>No id, a verified one, or a wrong one to ignore: the request goes on.</summary>
    GoOn,

    /// <summary>A wrong id, to be answered (<see cref="RateLimitIdOptions.OnInvalid"/>).</summary>
    Refuse,
}

/// <summary>The id a request carried, once its tag was verified: the key it was made with and its <c>uid</c>.</summary>
internal sealed class RateLimitIdFeature
{
    public int KeyIndex { get; init; }

    public required byte[] Uid { get; init; }
}

/// <summary>
/// <see cref="RateLimitIdOptions"/> compiled: verifies each request's id before the edge tier (the tag, in constant time,
/// under the key its key id names), binds it to the subject once the token is validated, and issues ids.
/// </summary>
internal sealed class RateLimitIdVerifier
{
    private static readonly Meter Meter = new("Floodgate.AspNetCore");
    private static readonly Counter<long> Checks = Meter.CreateCounter<long>("floodgate.ratelimit_id.checks", "{request}", "Rate-limit ids checked, by result: valid, invalid (forged, malformed, unknown key), replayed (another subject's).");
    private static readonly Counter<long> Issued = Meter.CreateCounter<long>("floodgate.ratelimit_id.issued", "{id}", "Rate-limit ids issued.");

    private readonly string _header;
    private readonly string? _cookie;
    private readonly RateLimitIdKey[] _keys;
    private readonly string[] _claims;
    private readonly string[] _endpoints;
    private readonly PathString? _issuePath;
    private readonly InvalidRateLimitIdAction _onInvalid;

    public RateLimitIdVerifier(RateLimitIdOptions options)
    {
        _header = options.HeaderName;
        _cookie = options.CookieName;
        _keys = [.. options.Keys];
        _claims = [.. options.Claims];
        _endpoints = [.. options.EndpointClasses];
        _issuePath = options.IssuePath;
        _onInvalid = options.OnInvalid;
    }

    /// <summary>Whether a rule's condition sees a verified id on <paramref name="request"/>.</summary>
    public static bool IsVerified(IRequestContext request) =>
        request is HttpRequestContext http && http.HttpContext.Features.Get<RateLimitIdFeature>() is not null;

    /// <summary>
    /// Verifies the id the request carries, if any: a verified id is recorded (<see cref="RateLimitIdFeature"/>), and one
    /// read from the cookie is put in the header too, so rules key on one place; a wrong one is removed when it is to be
    /// ignored, so no rule keys on it.
    /// </summary>
    public RateLimitIdVerdict Verify(HttpContext context)
    {
        var headers = context.Request.Headers;
        var fromHeader = headers.TryGetValue(_header, out var values);
        string? id;
        if (fromHeader)
        {
            id = values.Count == 1 ? values[0] : null;
        }
        else if (_cookie is not null && context.Request.Cookies.TryGetValue(_cookie, out var cookie))
        {
            id = cookie;
        }
        else
        {
            return RateLimitIdVerdict.GoOn;
        }

        Span<byte> uid = stackalloc byte[RateLimitId.PartBytes];
        Span<byte> tag = stackalloc byte[RateLimitId.PartBytes];
        if (id is not null && RateLimitId.TryParse(id, out var keyId, uid, tag))
        {
            for (var i = 0; i < _keys.Length; i++)
            {
                if (keyId.SequenceEqual(_keys[i].KeyId) && RateLimitId.VerifyTag(_keys[i].Secret, keyId, uid, tag))
                {
                    Checks.Add(1, new KeyValuePair<string, object?>("result", "valid"));
                    context.Features.Set(new RateLimitIdFeature { KeyIndex = i, Uid = uid.ToArray() });
                    if (!fromHeader)
                    {
                        headers[_header] = id;
                    }

                    return RateLimitIdVerdict.GoOn;
                }
            }
        }

        Checks.Add(1, new KeyValuePair<string, object?>("result", "invalid"));
        return Wrong(context);
    }

    /// <summary>
    /// Whether the verified id of the request (if any) is the validated subject's own: an id copied from another user is
    /// answered as a wrong one (or, to be ignored, dropped from the request before it is forwarded).
    /// </summary>
    public RateLimitIdVerdict Bind(HttpContext context, in IdentityResult identity)
    {
        if (context.Features.Get<RateLimitIdFeature>() is not { } verified || identity.Status != IdentityStatus.Valid || identity.Subject is not { } subject)
        {
            return RateLimitIdVerdict.GoOn;
        }

        Span<byte> expected = stackalloc byte[RateLimitId.PartBytes];
        var claims = ClaimValues(identity);
        RateLimitId.Uid(_keys[verified.KeyIndex].Secret, subject, claims, expected);
        if (CryptographicOperations.FixedTimeEquals(expected, verified.Uid))
        {
            return RateLimitIdVerdict.GoOn;
        }

        Checks.Add(1, new KeyValuePair<string, object?>("result", "replayed"));
        context.Features.Set<RateLimitIdFeature>(null);
        return Wrong(context);
    }

    /// <summary>Whether <paramref name="path"/> is the issue endpoint's.</summary>
    public bool IsIssuePath(PathString path) => _issuePath is { } issue && path.Equals(issue, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Answers the issue endpoint: the caller's id in the header and a JSON body (with its per-endpoint ids), and the
    /// cookie when one is configured; 401 without a valid token.
    /// </summary>
    public async Task IssueAsync(HttpContext context, IdentityResult identity)
    {
        if (identity.Status != IdentityStatus.Valid || identity.Subject is not { } subject)
        {
            await RateLimitResponses.WriteUnauthorizedAsync(context, null, null).ConfigureAwait(false);
            return;
        }

        var key = _keys[0];
        var id = RateLimitId.Create(key.Secret, key.KeyId, subject, ClaimValues(identity));
        Issued.Add(1);
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.Headers[_header] = id;
        response.Headers.CacheControl = "no-store";
        if (_cookie is not null)
        {
            response.Headers.Append("Set-Cookie", $"{_cookie}={id}; Path=/; Secure; HttpOnly; SameSite=Strict");
        }

        response.ContentType = "application/json";
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", id);
            json.WriteString("header", _header);
            json.WriteString("keyId", key.KeyId);
            if (_endpoints.Length > 0)
            {
                json.WriteStartObject("endpoints");
                foreach (var endpoint in _endpoints)
                {
                    json.WriteString(endpoint, RateLimitId.ForEndpoint(id, endpoint));
                }

                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        response.ContentLength = buffer.WrittenCount;
        await response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Answers a wrong id as <see cref="RateLimitIdOptions.OnInvalid"/> says.</summary>
    public Task RefuseAsync(HttpContext context)
    {
        var response = context.Response;
        var (status, title) = _onInvalid == InvalidRateLimitIdAction.Unauthorized
            ? (StatusCodes.Status401Unauthorized, "Unauthorized")
            : (StatusCodes.Status429TooManyRequests, "Too Many Requests");
        var detail = $"The {_header} the request carries is not one this gateway issued to its caller; send the one its issue endpoint gave, or none.";
        if (GrpcResponses.IsGrpc(context.Request))
        {
            // UNAUTHENTICATED or RESOURCE_EXHAUSTED, as the gRPC answers of the other refusals.
            GrpcResponses.Write(context, status, detail, null);
            return Task.CompletedTask;
        }

        response.StatusCode = status;
        response.ContentType = RateLimitResponses.ProblemJson;
        response.Headers.CacheControl = "no-store";
        var buffer = new ArrayBufferWriter<byte>(192);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("type", "about:blank");
            json.WriteString("title", title);
            json.WriteNumber("status", status);
            json.WriteString("detail", detail);
            json.WriteString("tier", "edge");
            json.WriteEndObject();
        }

        response.ContentLength = buffer.WrittenCount;
        return response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).AsTask();
    }

    private RateLimitIdVerdict Wrong(HttpContext context)
    {
        if (_onInvalid != InvalidRateLimitIdAction.Ignore)
        {
            return RateLimitIdVerdict.Refuse;
        }

        context.Request.Headers.Remove(_header);
        return RateLimitIdVerdict.GoOn;
    }

    private string?[] ClaimValues(in IdentityResult identity)
    {
        if (_claims.Length == 0)
        {
            return [];
        }

        var values = new string?[_claims.Length];
        for (var i = 0; i < _claims.Length; i++)
        {
            values[i] = identity.Claims?.FindFirst(_claims[i])?.Value;
        }

        return values;
    }
}

/// <summary>Conditions a rule can carry on the rate-limit id (<see cref="RuleMatch.Condition"/>).</summary>
public static class RateLimitIdConditions
{
    /// <summary>The request carries an id whose tag was verified (its subject is checked only once the token is).</summary>
    public static Func<IRequestContext, bool> Verified { get; } = RateLimitIdVerifier.IsVerified;

    /// <summary>The request carries no verified id: none, or a wrong one that is ignored.</summary>
    public static Func<IRequestContext, bool> Absent { get; } = static request => !RateLimitIdVerifier.IsVerified(request);
}

using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Floodgate.AspNetCore.Http;
using Floodgate.Costs;
using Floodgate.Engine;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Floodgate.AspNetCore.Costs;

/// <summary>
/// The middleware's cost step: reads the body fields cost rules reserve by before the decision, and has an admitted
/// request that holds reservations run with its usage scanned and reported (<see cref="CostStep"/>), for the middleware
/// to settle however it ends.
/// </summary>
internal static class ResponseCosts
{
    /// <summary>
    /// Reads the top-level JSON body fields the policy's cost rules ask for, when one of those rules matches: at most the
    /// rules' cap (a larger body is not read, and estimates fall back), then the body is rewound for the rest of the
    /// pipeline. Nothing happens for a policy without such rules.
    /// </summary>
    public static ValueTask ReadFieldsAsync(RateLimitPolicy policy, HttpRequestContext request, CancellationToken aborted)
    {
        if (CostPlan.Of(policy) is not { FieldRules.Length: > 0 } plan || !Matches(plan, request) || !IsJson(request.HttpContext.Request.ContentType))
        {
            return default;
        }

        return ReadAsync(plan, request, aborted);
    }

    /// <summary>
    /// Starts the cost step of an admitted request that holds reservations (<see cref="CostStep"/>);
    /// <see langword="null"/> for a request without reservations.
    /// </summary>
    /// <remarks>
    /// Not an async step of its own: its state would be a box of a few hundred bytes a request, where the caller's
    /// frame holds one reference.
    /// </remarks>
    public static CostStep? Start(HttpRequestContext request, RateLimitResult result, RateLimitPolicy policy) =>
        result.HasReservations && CostPlan.Of(policy) is { } plan ? CostStep.Rent(request, plan) : null;

    private static bool Matches(CostPlan plan, HttpRequestContext request)
    {
        foreach (var rule in plan.FieldRules)
        {
            if (rule.Match.IsMatch(request))
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsJson(string? contentType) => contentType is not null && contentType.Contains("json", StringComparison.OrdinalIgnoreCase);

    private static async ValueTask ReadAsync(CostPlan plan, HttpRequestContext request, CancellationToken aborted)
    {
        var http = request.HttpContext.Request;
        if (http.ContentLength > plan.MaxBodyBytes)
        {
            return;
        }

        http.EnableBuffering();
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(plan.MaxBodyBytes, 16 * 1024) + 1);
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length > plan.MaxBodyBytes)
                    {
                        // Past the cap: not read for fields; the estimates fall back.
                        return;
                    }

                    var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, plan.MaxBodyBytes + 1));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                var read = await http.Body.ReadAsync(buffer.AsMemory(length), aborted).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                length += read;
            }

            if (length <= plan.MaxBodyBytes)
            {
                request.Fields = ReadFields(buffer.AsSpan(0, length), plan.Fields);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            http.Body.Position = 0;
        }
    }

    /// <summary>The wanted top-level fields of a JSON object: numbers as their digits, strings as their text.</summary>
    internal static Dictionary<string, string>? ReadFields(ReadOnlySpan<byte> json, string[] wanted)
    {
        Dictionary<string, string>? fields = null;
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString()!;
                reader.Read();
                if (Array.IndexOf(wanted, name) >= 0 && reader.TokenType is JsonTokenType.Number or JsonTokenType.String)
                {
                    (fields ??= new Dictionary<string, string>(StringComparer.Ordinal))[name] = reader.TokenType == JsonTokenType.String
                        ? reader.GetString()!
                        : System.Text.Encoding.UTF8.GetString(reader.ValueSpan);
                }
                else
                {
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            // A body that is not JSON gives what was read before the fault; the estimates fall back for the rest.
        }

        return fields;
    }
}

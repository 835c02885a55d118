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
/// The middleware's cost step: reads the body fields cost rules reserve by before the decision, and runs an admitted
/// request that holds reservations with its usage scanned and reported, then settles it however it ends.
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
    /// Calls <paramref name="next"/> for an admitted request; when <paramref name="result"/> holds reservations, with its
    /// usage scanned from the response and its cost report on the features, and settles it when the response ends.
    /// </summary>
    public static ValueTask InvokeAsync(RequestDelegate next, HttpRequestContext request, RateLimitEngine engine, RateLimitResult result, RateLimitPolicy policy)
    {
        if (!result.HasReservations || CostPlan.Of(policy) is not { } plan)
        {
            return new ValueTask(next(request.HttpContext));
        }

        return RunAsync(next, request, engine, result, plan);
    }

    // Its state (the result, the report, the body) would be a few hundred bytes a request: the box is pooled, as the
    // caller awaits it once.
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask RunAsync(RequestDelegate next, HttpRequestContext request, RateLimitEngine engine, RateLimitResult result, CostPlan plan)
    {
        var context = request.HttpContext;
        var report = new CostReport();
        foreach (var rule in plan.FieldRules)
        {
            // A model named by the request prices the tokens, whatever the response says.
            report.Model ??= rule.Costs!.ModelField is { } field ? request.GetField(field) : null;
        }

        var features = context.Features;
        var originalBody = features.Get<IHttpResponseBodyFeature>();
        UsageScanner? scanner = null;
        if (plan.ReadsBody && originalBody is not null)
        {
            // The body is the report's feature too: one object less a request.
            scanner = new UsageScanner(report, plan.ReadsModel);
            var body = new UsageScanningBody(originalBody, context.Response, scanner, report);
            features.Set<IHttpResponseBodyFeature>(body);
            features.Set<ICostReportFeature>(body);
        }
        else
        {
            features.Set<ICostReportFeature>(new Feature(report));
        }

        var completion = RequestCompletion.Completed;
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch
        {
            completion = RequestCompletion.Failed;
            throw;
        }
        finally
        {
            scanner?.Complete();
            if (originalBody is not null)
            {
                features.Set(originalBody);
            }

            features.Set<ICostReportFeature>(null);
            ReadHeaders(plan, context, report);
            if (context.RequestAborted.IsCancellationRequested || context.Response.StatusCode >= 500)
            {
                completion = RequestCompletion.Failed;
            }

            // Not the request's token: the request has ended, and its settlement must still reach the store.
            await engine.SettleAsync(result, report, completion, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>A cost in a response header, or in a trailer (which wins: it is written when the cost is known).</summary>
    private static void ReadHeaders(CostPlan plan, HttpContext context, CostReport report)
    {
        if (plan.Headers.Length == 0 || report.Units is not null)
        {
            return;
        }

        var trailers = context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers;
        foreach (var name in plan.Headers)
        {
            if ((trailers is not null && Parse(trailers[name]) is { } fromTrailer ? fromTrailer : Parse(context.Response.Headers[name])) is { } units)
            {
                report.Units = units;
                return;
            }
        }

        static long? Parse(string? text) =>
            long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
    }

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

    private sealed class Feature(CostReport report) : ICostReportFeature
    {
        public CostReport Report { get; } = report;
    }
}

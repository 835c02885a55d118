using System.Globalization;
using System.Net.Http.Headers;

namespace Floodgate.Client.Fields;

/// <summary>What a response says of the limit the client is under.</summary>
internal enum SignalKind
{
    /// <summary>The response carries no limit fields (or only fields that do not parse).</summary>
    None,

    /// <summary>A quota of requests per window: pace them.</summary>
    Rate,

    /// <summary>A number of requests in flight at once: hold a permit per request.</summary>
    Concurrency,
}

/// <summary>
/// The limit fields of one response, read without allocating: the IETF <c>RateLimit</c> / <c>RateLimit-Policy</c> pair
/// when present, else the <c>X-RateLimit-*</c> convention.
/// </summary>
internal ref struct LimitSignal
{
    /// <summary>An <c>X-RateLimit-Reset</c> at least this large is an epoch time in seconds, not a delta (2001-09-09).</summary>
    internal const long EpochThreshold = 1_000_000_000;

    public SignalKind Kind;

    /// <summary>The quota (<c>q</c>, <c>X-RateLimit-Limit</c>); −1 when unknown.</summary>
    public long Quota;

    /// <summary>The window in seconds (<c>w</c>); −1 when unknown.</summary>
    public long Window;

    /// <summary>What remains (<c>r</c>, <c>X-RateLimit-Remaining</c>).</summary>
    public long Remaining;

    /// <summary>Seconds until the quota is fully available again (<c>t</c>, <c>X-RateLimit-Reset</c>); −1 when unknown.</summary>
    public double Reset;

    /// <summary>The partition the limit is for: <c>pk</c> when given, else the policy's name; empty for X-RateLimit-*.</summary>
    public ReadOnlySpan<char> Partition;

    /// <summary>Reads the limit fields of <paramref name="headers"/>; <paramref name="now"/> resolves an epoch reset.</summary>
    public static LimitSignal Read(HttpResponseHeaders headers, DateTimeOffset now)
    {
        var signal = new LimitSignal { Quota = -1, Window = -1, Reset = -1 };
        var fields = headers.NonValidated;
        if (fields.TryGetValues("RateLimit", out var state) && ReadIetf(state, fields, ref signal))
        {
            return signal;
        }

        if (fields.TryGetValues("X-RateLimit-Remaining", out var remaining) && ReadLegacy(remaining, fields, now, ref signal))
        {
            return signal;
        }

        return new LimitSignal { Kind = SignalKind.None, Quota = -1, Window = -1, Reset = -1 };
    }

    /// <summary>
    /// Picks the most constrained member of <c>RateLimit</c> (least remaining, then the longest reset) and the
    /// <c>RateLimit-Policy</c> member of the same name and partition key.
    /// </summary>
    private static bool ReadIetf(HeaderStringValues state, HttpHeadersNonValidated fields, ref LimitSignal signal)
    {
        var found = false;
        LimitItem best = default;
        string bestLine = string.Empty;
        foreach (var line in state)
        {
            var reader = new StructuredListReader(line);
            while (reader.TryRead(out var item))
            {
                if (item.Remaining < 0 || IsEmpty(item.Name, line))
                {
                    continue;
                }

                if (!found || item.Remaining < best.Remaining || (item.Remaining == best.Remaining && item.Reset > best.Reset))
                {
                    best = item;
                    bestLine = line;
                    found = true;
                }
            }

            if (reader.Failed)
            {
                return false;
            }
        }

        if (!found)
        {
            return false;
        }

        signal.Kind = SignalKind.Rate;
        signal.Remaining = best.Remaining;
        signal.Reset = best.Reset;
        var bestName = bestLine.AsSpan(best.Name);
        var bestKey = bestLine.AsSpan(best.PartitionKey);
        signal.Partition = bestKey.IsEmpty ? bestName : bestKey;
        if (!fields.TryGetValues("RateLimit-Policy", out var policies))
        {
            return true;
        }

        foreach (var line in policies)
        {
            var reader = new StructuredListReader(line);
            while (reader.TryRead(out var item))
            {
                var key = line.AsSpan(item.PartitionKey);
                if (!line.AsSpan(item.Name).SequenceEqual(bestName) || (!bestKey.IsEmpty && !key.IsEmpty && !key.SequenceEqual(bestKey)))
                {
                    continue;
                }

                var unit = line.AsSpan(item.Unit);

                signal.Quota = item.Quota;
                signal.Window = item.Window;

                // The draft's unit says so; Floodgate's gateway writes a concurrency limit as a quota without a window.
                var concurrent = unit.SequenceEqual("concurrent-requests") || (unit.IsEmpty && item.Quota >= 0 && item.Window < 0);
                signal.Kind = concurrent ? SignalKind.Concurrency : SignalKind.Rate;
                if (!unit.IsEmpty && !concurrent && !unit.SequenceEqual("requests"))
                {
                    // A quota of bytes says nothing of how many requests fit: pace from what remains until the reset only.
                    signal.Quota = -1;
                    signal.Window = -1;
                }
            }

            if (reader.Failed)
            {
                signal.Quota = -1;
                signal.Window = -1;
                signal.Kind = SignalKind.Rate;
                return true;
            }
        }

        return true;
    }

    private static bool IsEmpty(Range range, string line) => range.GetOffsetAndLength(line.Length).Length == 0;

    private static bool ReadLegacy(HeaderStringValues remaining, HttpHeadersNonValidated fields, DateTimeOffset now, ref LimitSignal signal)
    {
        if (!TryInteger(remaining, out var left))
        {
            return false;
        }

        signal.Kind = SignalKind.Rate;
        signal.Remaining = left;
        signal.Partition = default;
        if (fields.TryGetValues("X-RateLimit-Limit", out var limit) && TryInteger(limit, out var quota))
        {
            signal.Quota = quota;
        }

        if (fields.TryGetValues("X-RateLimit-Reset", out var reset) && TryNumber(reset, out var seconds))
        {
            // GitHub and others send an epoch time under this name; Floodgate (by default) and the IETF fields a delta.
            signal.Reset = seconds >= EpochThreshold ? Math.Max(0, seconds - (now.ToUnixTimeMilliseconds() / 1000.0)) : seconds;
        }

        return true;
    }

    private static bool TryInteger(HeaderStringValues values, out long value)
    {
        value = -1;
        foreach (var text in values)
        {
            // Some servers repeat the field, or list one value per policy: the smallest one binds.
            if (!long.TryParse(FirstListMember(text), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
            {
                return false;
            }

            value = value < 0 ? parsed : Math.Min(value, parsed);
        }

        return value >= 0;
    }

    private static bool TryNumber(HeaderStringValues values, out double value)
    {
        value = -1;
        foreach (var text in values)
        {
            if (!double.TryParse(FirstListMember(text), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var parsed))
            {
                return false;
            }

            value = Math.Max(value, parsed);
        }

        return value >= 0;
    }

    private static ReadOnlySpan<char> FirstListMember(string text)
    {
        var span = text.AsSpan();
        var comma = span.IndexOfAny(',', ';');
        return (comma < 0 ? span : span[..comma]).Trim();
    }
}

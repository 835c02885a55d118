using System.Globalization;
using Floodgate.Rules;

namespace Floodgate.Costs;

/// <summary>
/// What a rule reserves when it admits a request, before its real cost is known: a constant, a request header, or a
/// top-level field of the JSON request body (such as <c>max_tokens</c>), plus a constant.
/// </summary>
public sealed class CostEstimate
{
    private CostEstimate(long units, string? header, string? field, long otherwise)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(units);
        ArgumentOutOfRangeException.ThrowIfNegative(otherwise);
        Units = units;
        Header = header;
        Field = field;
        Otherwise = otherwise;
    }

    /// <summary>Nothing reserved: the request is admitted while its key is not overdrawn and charged when it ends.</summary>
    public static CostEstimate None { get; } = new(0, null, null, 0);

    /// <summary>A constant reservation of <paramref name="units"/>.</summary>
    public static CostEstimate Constant(long units) => new(units, null, null, 0);

    /// <summary>
    /// The integer in request header <paramref name="name"/>, plus <paramref name="add"/>; <paramref name="otherwise"/>
    /// when the header is absent or not a non-negative integer.
    /// </summary>
    public static CostEstimate FromHeader(string name, long add = 0, long otherwise = 0)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return new(add, name, null, otherwise);
    }

    /// <summary>
    /// The integer in top-level field <paramref name="name"/> of the JSON request body (read by the front door up to a size
    /// cap), plus <paramref name="add"/>; <paramref name="otherwise"/> when the field is absent, not a non-negative integer,
    /// or past the cap.
    /// </summary>
    public static CostEstimate FromField(string name, long add = 0, long otherwise = 0)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return new(add, null, name, otherwise);
    }

    /// <summary>The constant, or what is added to the header's or field's value.</summary>
    public long Units { get; }

    /// <summary>The request header read, if any.</summary>
    public string? Header { get; }

    /// <summary>The body field read, if any.</summary>
    public string? Field { get; }

    /// <summary>The reservation when the header or field is missing.</summary>
    public long Otherwise { get; }

    /// <summary>Whether the estimate reads a value from the request (its header or body field).</summary>
    public bool ReadsRequest => Header is not null || Field is not null;

    /// <summary>The value the request gives (header or field), or <see langword="null"/>; the constant is not added.</summary>
    public long? ReadFrom(IRequestContext request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var text = Header is not null ? request.GetHeader(Header)
            : Field is not null && request is IRequestFields fields ? fields.GetField(Field)
            : null;
        return text is not null && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
    }
}

using System.Text.Json;

namespace Floodgate.Events;

/// <summary>A threshold event as it is stored, listed and sent to webhooks: a <see cref="ThresholdCrossing"/> with an id.</summary>
/// <param name="Id">A unique id (a UUID), for receivers to drop a redelivery.</param>
/// <param name="Rule">The rule's name.</param>
/// <param name="Subject">The subject (or client IP) the rule's key names.</param>
/// <param name="Plan">The plan in force; <see langword="null"/> for the default plan.</param>
/// <param name="Threshold">The threshold crossed, in percent of the limit.</param>
/// <param name="Used">What the subject has used of the limit.</param>
/// <param name="Limit">What the limit grants at once.</param>
/// <param name="Rate">The limit's rate.</param>
/// <param name="PeriodStart">When the period started.</param>
/// <param name="PeriodEnd">When it ends.</param>
/// <param name="At">When the threshold was crossed.</param>
public sealed record ThresholdEvent(string Id, string Rule, string Subject, string? Plan, int Threshold, long Used, long Limit, string Rate, DateTimeOffset PeriodStart, DateTimeOffset PeriodEnd, DateTimeOffset At)
{
    /// <summary>The event of <paramref name="crossing"/>, with a new id.</summary>
    public static ThresholdEvent Of(ThresholdCrossing crossing)
    {
        ArgumentNullException.ThrowIfNull(crossing);
        return new(Guid.NewGuid().ToString(), crossing.Rule.Name, crossing.Subject, crossing.Plan, crossing.Percent, crossing.Used, crossing.Limit, crossing.Rate, crossing.PeriodStart, crossing.PeriodEnd, crossing.At);
    }

    /// <summary>What identifies the event among all replicas: rule, subject, threshold and period start.</summary>
    public string DedupKey => $"{Rule}\n{Subject}\n{Threshold}\n{PeriodStart.ToUnixTimeSeconds()}";

    /// <summary>
    /// The event as JSON, the webhook's body:
    /// <c>{"id":"…","type":"threshold","rule":"monthly","subject":"alice","plan":"pro","threshold":80,"used":8000,"limit":10000,"rate":"10000/mo","period":{"start":"…","end":"…"},"at":"…"}</c>.
    /// </summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", Id);
            json.WriteString("type", "threshold");
            json.WriteString("rule", Rule);
            json.WriteString("subject", Subject);
            if (Plan is null)
            {
                json.WriteNull("plan");
            }
            else
            {
                json.WriteString("plan", Plan);
            }

            json.WriteNumber("threshold", Threshold);
            json.WriteNumber("used", Used);
            json.WriteNumber("limit", Limit);
            json.WriteString("rate", Rate);
            json.WriteStartObject("period");
            json.WriteString("start", PeriodStart);
            json.WriteString("end", PeriodEnd);
            json.WriteEndObject();
            json.WriteString("at", At);
            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>Reads an event written by <see cref="ToJson"/>; <see langword="null"/> when the text is not one.</summary>
    public static ThresholdEvent? FromJson(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            var period = root.GetProperty("period");
            return new ThresholdEvent(
                root.GetProperty("id").GetString()!,
                root.GetProperty("rule").GetString()!,
                root.GetProperty("subject").GetString()!,
                root.GetProperty("plan").GetString(),
                root.GetProperty("threshold").GetInt32(),
                root.GetProperty("used").GetInt64(),
                root.GetProperty("limit").GetInt64(),
                root.GetProperty("rate").GetString()!,
                period.GetProperty("start").GetDateTimeOffset(),
                period.GetProperty("end").GetDateTimeOffset(),
                root.GetProperty("at").GetDateTimeOffset());
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }
}

/// <summary>
/// Where threshold events are deduplicated and kept: in process for the memory store, in Redis for the Redis store, so
/// that each is raised once per subject, rule, threshold and period on every replica together.
/// </summary>
public interface IThresholdLedger
{
    /// <summary>Records <paramref name="thresholdEvent"/> unless its <see cref="ThresholdEvent.DedupKey"/> was recorded before; <see langword="true"/> when this call recorded it (raise it).</summary>
    ValueTask<bool> TryRecordAsync(ThresholdEvent thresholdEvent, CancellationToken cancellationToken = default);

    /// <summary>The latest recorded events, the latest first.</summary>
    ValueTask<IReadOnlyList<ThresholdEvent>> RecentAsync(int limit, CancellationToken cancellationToken = default);
}

/// <summary>Threshold events in process: a bounded set of the keys raised (each until its period ends) and the latest events.</summary>
public sealed class MemoryThresholdLedger(TimeProvider? timeProvider = null) : IThresholdLedger
{
    /// <summary>How many events are kept for listing.</summary>
    public const int Kept = 1000;

    // Bounded: past this many keys, the lapsed ones are swept; an event whose key cannot be kept is still raised once here.
    private const int MaxKeys = 100_000;
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;
    private readonly Dictionary<string, DateTimeOffset> _raised = new(StringComparer.Ordinal);
    private readonly LinkedList<ThresholdEvent> _recent = new();
    private readonly Lock _lock = new();

    /// <inheritdoc/>
    public ValueTask<bool> TryRecordAsync(ThresholdEvent thresholdEvent, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(thresholdEvent);
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (_raised.TryGetValue(thresholdEvent.DedupKey, out var until) && until > now)
            {
                return ValueTask.FromResult(false);
            }

            if (_raised.Count >= MaxKeys)
            {
                foreach (var (key, end) in _raised.ToList())
                {
                    if (end <= now)
                    {
                        _raised.Remove(key);
                    }
                }
            }

            _raised[thresholdEvent.DedupKey] = thresholdEvent.PeriodEnd;
            _recent.AddFirst(thresholdEvent);
            if (_recent.Count > Kept)
            {
                _recent.RemoveLast();
            }

            return ValueTask.FromResult(true);
        }
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<ThresholdEvent>> RecentAsync(int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        lock (_lock)
        {
            IReadOnlyList<ThresholdEvent> page = [.. _recent.Take(limit)];
            return ValueTask.FromResult(page);
        }
    }
}

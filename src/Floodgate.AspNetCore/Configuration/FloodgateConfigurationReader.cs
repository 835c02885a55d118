using System.Globalization;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Floodgate.AspNetCore.Configuration;

/// <summary>
/// Reads <see cref="FloodgateOptions"/> from a configuration section (appsettings.json, environment variables…). It never
/// throws: each problem is recorded with its configuration path and reported by <see cref="FloodgateOptions.Validate"/>,
/// so a bad value stops the start, and a bad reload is refused while the settings in force stay.
/// </summary>
internal sealed class FloodgateConfigurationReader(IConfiguration section) : IConfigureOptions<FloodgateOptions>
{
    private static readonly string[] Fields = ["Policies", "TrustedProxies", "ForwardedHeader", "Anonymous", "Headers", "SubjectClaim", "PlanClaim", "RejectionStatusCodes", "Adaptive", "Access", "RateLimitId"];
    private static readonly string[] PolicyFields = ["Limit", "Algorithm", "Burst", "MaxDelay", "Concurrency", "Queue", "QueueTimeout", "QueueOrder", "Tier", "Key", "Cost", "Mode"];

    public void Configure(FloodgateOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = options.ConfigurationProblems;
        CheckFields(section, Fields, problems);
        foreach (var policy in section.GetSection("Policies").GetChildren())
        {
            ReadPolicy(policy, options);
        }

        AdaptiveConfigurationReader.Read(section.GetSection("Adaptive"), options, CheckFields);
        foreach (var proxy in section.GetSection("TrustedProxies").GetChildren())
        {
            if (proxy.Value is { Length: > 0 } range)
            {
                options.TrustedProxies.Add(range);
            }
        }

        AccessConfigurationReader.ReadAccess(section.GetSection("Access"), options, problems);
        AccessConfigurationReader.ReadRateLimitId(section.GetSection("RateLimitId"), options, problems);
        options.ForwardedHeader = Enum(section, "ForwardedHeader", options.ForwardedHeader, problems);
        options.Anonymous = Enum(section, "Anonymous", options.Anonymous, problems);
        options.Headers.Ietf = Bool(section.GetSection("Headers"), "Ietf", options.Headers.Ietf, problems);
        options.Headers.Legacy = Bool(section.GetSection("Headers"), "Legacy", options.Headers.Legacy, problems);
        options.SubjectClaim = section["SubjectClaim"] is { Length: > 0 } subject ? subject : options.SubjectClaim;
        options.PlanClaim = section["PlanClaim"] is { Length: > 0 } plan ? plan : options.PlanClaim;
        foreach (var status in section.GetSection("RejectionStatusCodes").GetChildren())
        {
            if (System.Enum.TryParse<RateLimitTier>(status.Key, ignoreCase: true, out var tier) && System.Enum.IsDefined(tier))
            {
                var code = Number(status, 0, problems);
                if (code is >= 400 and <= 599)
                {
                    options.RejectionStatusCodes[tier] = (int)code;
                }
                else
                {
                    problems.Add($"{status.Path}: '{status.Value}' is not a 4xx or 5xx status code.");
                }
            }
            else
            {
                problems.Add($"{status.Path}: '{status.Key}' is not a tier (Edge, User, Service or Global).");
            }
        }
    }

    private static void ReadPolicy(IConfigurationSection policy, FloodgateOptions options)
    {
        var problems = options.ConfigurationProblems;
        var before = problems.Count;
        CheckFields(policy, PolicyFields, problems);
        var tier = Enum(policy, "Tier", RateLimitTier.Service, problems);
        var mode = Enum(policy, "Mode", RuleMode.Enforce, problems);
        var cost = Number(policy.GetSection("Cost"), 1, problems);
        var limit = ReadLimit(policy, problems);
        IReadOnlyList<KeyPart>? key = null;
        if (policy.GetSection("Key") is { } keySection && (keySection.Value is not null || keySection.GetChildren().Any()))
        {
            key = ReadKey(keySection, problems);
        }

        if (limit is null || problems.Count > before)
        {
            return;
        }

        try
        {
            options.AddPolicy(policy.Key, limit, tier, key, cost, mode);
        }
        catch (ArgumentException e)
        {
            problems.Add($"{policy.Path}: {e.Message}");
        }
    }

    private static Limit? ReadLimit(IConfigurationSection policy, List<string> problems)
    {
        var algorithm = policy["Algorithm"]?.Replace("_", string.Empty, StringComparison.Ordinal);
        if (policy["Concurrency"] is not null || string.Equals(algorithm, "concurrency", StringComparison.OrdinalIgnoreCase))
        {
            var permits = Number(policy.GetSection("Concurrency"), 0, problems);
            if (permits <= 0)
            {
                problems.Add($"{policy.Path}:Concurrency: a concurrency policy needs its number of requests in flight, at least 1.");
                return null;
            }

            return ReadQueue(policy, Limit.Concurrency(permits), problems);
        }

        if (policy["Queue"] is not null || policy["QueueTimeout"] is not null || policy["QueueOrder"] is not null)
        {
            problems.Add($"{policy.Path}:Queue: Queue, QueueTimeout and QueueOrder apply only to a Concurrency policy; a rate that should wait is a leaky_bucket with MaxDelay.");
            return null;
        }

        var text = policy["Limit"];
        if (string.IsNullOrWhiteSpace(text))
        {
            problems.Add($"{policy.Path}:Limit: every policy needs a limit, such as \"300/min\" (or Concurrency).");
            return null;
        }

        if (!Rate.TryParse(text, out var rate, out var error))
        {
            problems.Add($"{policy.Path}:Limit: {error}");
            return null;
        }

        var burst = policy["Burst"] is null ? (long?)null : Number(policy.GetSection("Burst"), 0, problems);
        TimeSpan? maxDelay = null;
        if (policy["MaxDelay"] is { } delayText)
        {
            if (!TimeSpan.TryParse(delayText, System.Globalization.CultureInfo.InvariantCulture, out var parsed) || parsed <= TimeSpan.Zero)
            {
                problems.Add($"{policy.Path}:MaxDelay: '{delayText}' is not a positive duration such as 00:00:05.");
                return null;
            }

            maxDelay = parsed;
        }

        try
        {
            return algorithm?.ToLowerInvariant() switch
            {
                "leakybucket" when maxDelay is { } delay && burst is null => Limit.LeakyBucketQueue(rate, delay),
                _ when maxDelay is not null && algorithm?.ToLowerInvariant() != "leakybucket" => Fail($"{policy.Path}:MaxDelay: applies only to a leaky_bucket policy, which it makes a queue."),
                _ when maxDelay is not null => Fail($"{policy.Path}:MaxDelay: give Burst (a leaky_bucket meter) or MaxDelay (a queue), not both."),
                null or "gcra" or "tokenbucket" => Limit.Gcra(rate, burst),
                "leakybucket" => Limit.LeakyBucket(rate, burst),
                "slidingwindow" when burst is null => Limit.SlidingWindow(rate),
                "fixedwindow" when burst is null => Limit.FixedWindow(rate),
                "slidinglog" when burst is null => Limit.SlidingLog(rate),
                "slidingwindow" or "fixedwindow" or "slidinglog" => Fail($"{policy.Path}:Burst: only a gcra or leaky_bucket policy takes a burst."),
                _ => Fail($"{policy.Path}:Algorithm: '{policy["Algorithm"]}' is not an algorithm here: gcra (the default), leaky_bucket, sliding_window, sliding_log, fixed_window or concurrency."),
            };
        }
        catch (ArgumentException e)
        {
            return Fail($"{policy.Path}:Limit: {e.Message}");
        }

        Limit? Fail(string problem)
        {
            problems.Add(problem);
            return null;
        }
    }

    private static KeyPart[]? ReadKey(IConfigurationSection key, List<string> problems)
    {
        var texts = key.Value is { } single ? single.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) : [.. key.GetChildren().Select(c => c.Value ?? string.Empty)];
        var parts = new List<KeyPart>(texts.Length);
        foreach (var text in texts)
        {
            try
            {
                parts.Add(KeyPart.Parse(text));
            }
            catch (FormatException e)
            {
                problems.Add($"{key.Path}: {e.Message}");
                return null;
            }
        }

        return [.. parts];
    }

    private static void CheckFields(IConfiguration section, string[] fields, List<string> problems)
    {
        foreach (var child in section.GetChildren())
        {
            if (!fields.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                problems.Add($"{child.Path}: unknown field; the fields here are {string.Join(", ", fields)}.");
            }
        }
    }

    private static T Enum<T>(IConfiguration section, string field, T fallback, List<string> problems)
        where T : struct, System.Enum
    {
        if (section[field] is not { } text)
        {
            return fallback;
        }

        if (System.Enum.TryParse<T>(text, ignoreCase: true, out var value) && System.Enum.IsDefined(value) && !char.IsAsciiDigit(text.TrimStart('-')[0]))
        {
            return value;
        }

        problems.Add($"{Path(section, field)}: '{text}' is not one of {string.Join(", ", System.Enum.GetNames<T>())}.");
        return fallback;
    }

    private static bool Bool(IConfiguration section, string field, bool fallback, List<string> problems)
    {
        if (section[field] is not { } text)
        {
            return fallback;
        }

        if (bool.TryParse(text, out var value))
        {
            return value;
        }

        problems.Add($"{Path(section, field)}: '{text}' is not true or false.");
        return fallback;
    }

    /// <summary><paramref name="limit"/> with the policy's queue (<c>Queue</c>, <c>QueueTimeout</c>, <c>QueueOrder</c>), if it has one.</summary>
    private static Limit? ReadQueue(IConfigurationSection policy, Limit limit, List<string> problems)
    {
        if (policy["Queue"] is null)
        {
            if (policy["QueueTimeout"] is not null || policy["QueueOrder"] is not null)
            {
                problems.Add($"{policy.Path}:Queue: QueueTimeout and QueueOrder need Queue, how many requests may wait for a permit.");
                return null;
            }

            return limit;
        }

        var size = Number(policy.GetSection("Queue"), 0, problems);
        if (size <= 0 || size > Limit.MaxQueueSize)
        {
            problems.Add($"{policy.Path}:Queue: a queue holds from 1 to {Limit.MaxQueueSize} requests, not '{policy["Queue"]}'.");
            return null;
        }

        if (policy["QueueTimeout"] is not { } timeoutText
            || !TimeSpan.TryParse(timeoutText, System.Globalization.CultureInfo.InvariantCulture, out var timeout)
            || timeout < TimeSpan.FromMilliseconds(1) || timeout > Limit.MaxQueueTimeout)
        {
            problems.Add($"{policy.Path}:QueueTimeout: a queue needs QueueTimeout, the longest a request waits, from 1 ms to 10 minutes, such as 00:00:02.");
            return null;
        }

        var order = QueueOrder.Fifo;
        if (policy["QueueOrder"] is { } orderText && (!System.Enum.TryParse(orderText, ignoreCase: true, out order) || !System.Enum.IsDefined(order) || char.IsDigit(orderText.Trim()[0])))
        {
            problems.Add($"{policy.Path}:QueueOrder: '{orderText}' is not fifo or lifo.");
            return null;
        }

        return limit.WithQueue((int)size, timeout, order);
    }

    private static long Number(IConfigurationSection section, long fallback, List<string> problems)
    {
        if (section.Value is not { } text)
        {
            return fallback;
        }

        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            return value;
        }

        problems.Add($"{section.Path}: '{text}' is not a whole number of 0 or more.");
        return fallback;
    }

    private static string Path(IConfiguration section, string field) =>
        section is IConfigurationSection named ? ConfigurationPath.Combine(named.Path, field) : field;
}

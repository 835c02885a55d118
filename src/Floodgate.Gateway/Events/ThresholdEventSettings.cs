namespace Floodgate.Gateway.Events;

/// <summary>Where threshold events are sent, from the policy's <c>events</c> section (docs/admin.md).</summary>
/// <param name="Webhooks">The receivers, each POSTed every event.</param>
/// <param name="QueueCapacity">The most events waiting per receiver (and crossings waiting to be recorded); more are dropped and counted.</param>
/// <param name="Retries">How many times a failed delivery is tried again, with a doubling delay.</param>
/// <param name="Timeout">How long one delivery may take.</param>
/// <param name="RetryDelay">The delay before the first retry; doubled before each next one.</param>
internal sealed record ThresholdEventSettings(IReadOnlyList<Webhook> Webhooks, int QueueCapacity, int Retries, TimeSpan Timeout, TimeSpan RetryDelay)
{
    /// <summary>No webhook; events are still logged, counted and listed.</summary>
    public static ThresholdEventSettings None { get; } = new([], 1000, 5, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1));
}

/// <summary>A webhook receiver.</summary>
/// <param name="Url">Where events are POSTed.</param>
/// <param name="Secret">The key of the HMAC-SHA256 signature.</param>
internal sealed record Webhook(Uri Url, byte[] Secret);

using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using Floodgate.Events;

namespace Floodgate.Gateway.Events;

// One receiver's deliveries: its own bounded queue, one delivery at a time, retried with a doubling delay.
internal sealed partial class ThresholdEvents
{
    /// <summary>The header naming the event, for a receiver to drop a redelivery.</summary>
    public const string EventIdHeader = "Floodgate-Event-Id";

    /// <summary>The header holding the Unix time (seconds) the delivery was signed at.</summary>
    public const string TimestampHeader = "Floodgate-Timestamp";

    /// <summary>The header holding the signature: <c>v1=</c> and the hex HMAC-SHA256 of <c>{timestamp}.{body}</c>.</summary>
    public const string SignatureHeader = "Floodgate-Signature";

    /// <summary>The signature of <paramref name="body"/> sent at <paramref name="timestamp"/>: <c>v1=</c> and the hex HMAC-SHA256 of <c>{timestamp}.{body}</c>.</summary>
    public static string Sign(byte[] secret, long timestamp, string body) =>
        "v1=" + Convert.ToHexStringLower(HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes(timestamp.ToString(CultureInfo.InvariantCulture) + "." + body)));

    private sealed class WebhookSender
    {
        private readonly Webhook _webhook;
        private readonly ThresholdEventSettings _settings;
        private readonly ThresholdEvents _owner;
        private readonly Channel<ThresholdEvent> _queue;
        private readonly CancellationTokenSource _stopping = new();
        private readonly Task _worker;

        public WebhookSender(Webhook webhook, ThresholdEventSettings settings, ThresholdEvents owner)
        {
            _webhook = webhook;
            _settings = settings;
            _owner = owner;
            _queue = Channel.CreateBounded<ThresholdEvent>(new BoundedChannelOptions(settings.QueueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
            _worker = Task.Run(DeliverAllAsync);
        }

        public int Queued => _queue.Reader.Count;

        public void Enqueue(ThresholdEvent raised)
        {
            if (!_queue.Writer.TryWrite(raised))
            {
                _owner.Drop("queue_full");
            }
        }

        public void Complete() => _queue.Writer.TryComplete();

        public async Task StopAsync()
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
            try
            {
                await _worker.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopping.
            }
        }

        private async Task DeliverAllAsync()
        {
            await foreach (var raised in _queue.Reader.ReadAllAsync(_stopping.Token).ConfigureAwait(false))
            {
                await DeliverAsync(raised).ConfigureAwait(false);
            }
        }

        private async Task DeliverAsync(ThresholdEvent raised)
        {
            var body = raised.ToJson();
            var delay = _settings.RetryDelay;
            var reason = string.Empty;
            for (var attempt = 0; attempt <= _settings.Retries; attempt++)
            {
                if (attempt > 0)
                {
                    await Task.Delay(delay, _owner._time, _stopping.Token).ConfigureAwait(false);
                    delay += delay;
                }

                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
                    timeout.CancelAfter(_settings.Timeout);
                    using var request = new HttpRequestMessage(HttpMethod.Post, _webhook.Url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
                    var timestamp = _owner._time.GetUtcNow().ToUnixTimeSeconds();
                    request.Headers.Add(EventIdHeader, raised.Id);
                    request.Headers.Add(TimestampHeader, timestamp.ToString(CultureInfo.InvariantCulture));
                    request.Headers.Add(SignatureHeader, Sign(_webhook.Secret, timestamp, body));
                    request.Headers.UserAgent.Add(new ProductInfoHeaderValue("Floodgate", "1"));
                    using var response = await _owner._http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
                    if (response.IsSuccessStatusCode)
                    {
                        Deliveries.Add(1, new KeyValuePair<string, object?>("outcome", "delivered"));
                        return;
                    }

                    reason = $"answered {(int)response.StatusCode}";
                }
                catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !_stopping.IsCancellationRequested)
                {
                    reason = e is OperationCanceledException ? $"no answer within {_settings.Timeout.TotalSeconds:0.###}s" : e.Message;
                }

                Deliveries.Add(1, new KeyValuePair<string, object?>("outcome", "failed"));
            }

            _owner.Drop("retries_exhausted");
            LogUndelivered(_owner._logger, _webhook.Url, _settings.Retries + 1, reason);
        }
    }
}

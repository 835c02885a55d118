using System.Diagnostics;
using System.Net;

namespace Floodgate.AspNetCore.Tests.Adaptive;

/// <summary>
/// A bounded closed loop of clients: each sends, waits for the answer and sends again, backing off a little after a
/// 503, until the time or the count runs out. Meanwhile a reading is taken every 100 ms.
/// </summary>
internal static class AdaptiveLoad
{
    private static readonly TimeSpan Backoff = TimeSpan.FromMilliseconds(20);

    public static async Task<LoadResult> RunAsync(HttpClient client, string path, int clients, TimeSpan duration, int maxRequests, Func<int> read)
    {
        var sent = 0;
        var ok = 0;
        var unavailable = 0;
        var other = 0;
        var readings = new List<(TimeSpan At, int Value)>();
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource(duration + TimeSpan.FromSeconds(10));

        async Task ClientAsync()
        {
            while (clock.Elapsed < duration && Interlocked.Increment(ref sent) <= maxRequests)
            {
                using var response = await client.GetAsync(path, stop.Token);
                switch (response.StatusCode)
                {
                    case HttpStatusCode.OK:
                        Interlocked.Increment(ref ok);
                        break;
                    case HttpStatusCode.ServiceUnavailable:
                        Interlocked.Increment(ref unavailable);
                        Assert.NotNull(response.Headers.RetryAfter);
                        await Task.Delay(Backoff, stop.Token);
                        break;
                    default:
                        Interlocked.Increment(ref other);
                        break;
                }
            }
        }

        async Task ReadAsync()
        {
            while (clock.Elapsed < duration && Volatile.Read(ref sent) < maxRequests)
            {
                readings.Add((clock.Elapsed, read()));
                await Task.Delay(100, stop.Token);
            }
        }

        var reader = ReadAsync();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(ClientAsync)));
        await reader;
        return new LoadResult(ok, unavailable, other, readings, clock.Elapsed);
    }
}

/// <summary>What a load run saw.</summary>
internal sealed record LoadResult(int Ok, int Unavailable, int Other, List<(TimeSpan At, int Value)> Readings, TimeSpan Elapsed)
{
    /// <summary>The median of the readings of the last <paramref name="span"/>: where the limit settled.</summary>
    public int SettledOver(TimeSpan span)
    {
        var end = Readings[^1].At;
        var last = Readings.Where(r => r.At >= end - span).Select(r => r.Value).Order().ToArray();
        return last[last.Length / 2];
    }

    public override string ToString() =>
        $"{Ok} ok, {Unavailable} 503, {Other} other in {Elapsed.TotalSeconds:F1} s; limit readings {string.Join(' ', Readings.Select(r => r.Value))}";
}

using System.Globalization;
using System.Text;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Docs.Tests.Algorithms;

/// <summary>One plotted algorithm: its file name, its title, and the limit the memory store decides with.</summary>
/// <param name="Name">The file name under docs/images, without <c>.svg</c>.</param>
/// <param name="Title">The plot's title.</param>
/// <param name="Limit">The limit.</param>
/// <param name="Hold">For a concurrency limit, how long each admitted request holds its permit; zero otherwise.</param>
public sealed record PlottedAlgorithm(string Name, string Title, Limit Limit, TimeSpan Hold);

/// <summary>What one algorithm did with the burst: when each offered request came and when each admitted one went on.</summary>
/// <param name="Offered">Arrival times, in seconds from the burst.</param>
/// <param name="Admitted">When each admitted request reached the upstream (its slot, for a queue), in seconds.</param>
public sealed record PlotRun(IReadOnlyList<double> Offered, IReadOnlyList<double> Admitted);

/// <summary>
/// The plots of docs/algorithms.md: the same traffic (30 requests at once, then one every 50 ms for 3 s) decided by the
/// memory store, the engine's real math, on a fake clock, drawn as plain SVG.
/// </summary>
public static class AlgorithmPlots
{
    /// <summary>The burst starts half a second into a whole second, so fixed windows show their edge.</summary>
    public static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, 500, TimeSpan.Zero);

    private const double Seconds = 4.0;
    private const int MaxCount = 90;
    private const int Width = 420;
    private const int Height = 230;
    private const int Left = 40;
    private const int Right = 12;
    private const int Top = 30;
    private const int Bottom = 32;

    /// <summary>Every plotted algorithm, at 10/s with a burst of 10 where the algorithm takes one.</summary>
    public static IReadOnlyList<PlottedAlgorithm> Algorithms { get; } =
    [
        new("algorithm-gcra", "gcra 10/s, burst 10", Limit.Gcra(Rate.Parse("10/s"), 10), TimeSpan.Zero),
        new("algorithm-leaky-bucket", "leaky_bucket 10/s, burst 10 (meter)", Limit.LeakyBucket(Rate.Parse("10/s"), 10), TimeSpan.Zero),
        new("algorithm-leaky-bucket-queue", "leaky_bucket 10/s, max_delay 1s (queue)", Limit.LeakyBucketQueue(Rate.Parse("10/s"), TimeSpan.FromSeconds(1)), TimeSpan.Zero),
        new("algorithm-fixed-window", "fixed_window 10/s", Limit.FixedWindow(Rate.Parse("10/s")), TimeSpan.Zero),
        new("algorithm-sliding-window", "sliding_window 10/s", Limit.SlidingWindow(Rate.Parse("10/s")), TimeSpan.Zero),
        new("algorithm-sliding-log", "sliding_log 10/s", Limit.SlidingLog(Rate.Parse("10/s")), TimeSpan.Zero),
        new("algorithm-quota", "quota 10/s, rolling", Limit.Quota(Rate.Parse("10/s"), null), TimeSpan.Zero),
        new("algorithm-concurrency", "concurrency 10, each held 1 s", Limit.Concurrency(10), TimeSpan.FromSeconds(1)),
    ];

    /// <summary>The offered traffic: 30 requests at 0, then one every 50 ms up to 3 s (90 in all), in milliseconds.</summary>
    public static IEnumerable<int> Arrivals() => Enumerable.Repeat(0, 30).Concat(Enumerable.Range(1, 60).Select(i => i * 50));

    /// <summary>Runs the traffic through a fresh memory store on a fake clock.</summary>
    public static PlotRun Run(PlottedAlgorithm algorithm)
    {
        ArgumentNullException.ThrowIfNull(algorithm);
        var time = new FakeTimeProvider(Start);
        var store = new MemoryStore(null, time);
        var check = new RateLimitCheck(algorithm.Limit, StoreKey.Create("plot", "alice"), 1, false);
        var releases = new PriorityQueue<long, int>();
        var offered = new List<double>();
        var admitted = new List<double>();
        var outcome = new StoreOutcome[1];
        foreach (var at in Arrivals())
        {
            while (releases.TryPeek(out var lease, out var releaseAt) && releaseAt <= at)
            {
                releases.Dequeue();
                time.SetUtcNow(Start.AddMilliseconds(releaseAt));
                store.ReleaseAsync(check, lease).AsTask().GetAwaiter().GetResult();
            }

            time.SetUtcNow(Start.AddMilliseconds(at));
            store.Decide([check], outcome);
            offered.Add(at / 1000.0);
            if (outcome[0].Outcome.IsAllowed)
            {
                admitted.Add((at / 1000.0) + (outcome[0].Outcome.DelayMicroseconds / 1e6));
                if (algorithm.Hold > TimeSpan.Zero)
                {
                    releases.Enqueue(outcome[0].LeaseId, at + (int)algorithm.Hold.TotalMilliseconds);
                }
            }
        }

        admitted.Sort();
        return new PlotRun(offered, admitted);
    }

    /// <summary>The SVG of one algorithm's run: offered and admitted requests, cumulated over time.</summary>
    public static string Svg(PlottedAlgorithm algorithm, PlotRun run)
    {
        ArgumentNullException.ThrowIfNull(algorithm);
        ArgumentNullException.ThrowIfNull(run);
        var svg = new StringBuilder();
        svg.Append(Invariant($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" font-family=\"sans-serif\" font-size=\"11\">\n"));
        svg.Append("<!-- Generated by tests/Floodgate.Docs.Tests/Algorithms/AlgorithmPlots.cs from the memory store on a fake clock; do not edit. -->\n");
        svg.Append(Invariant($"<rect width=\"{Width}\" height=\"{Height}\" fill=\"#ffffff\"/>\n"));
        svg.Append(Invariant($"<text x=\"{Left}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{Escape(algorithm.Title)}</text>\n"));
        svg.Append(Invariant($"<text x=\"{Width - Right}\" y=\"16\" text-anchor=\"end\" fill=\"#1f5fa8\">admitted {run.Admitted.Count} of {run.Offered.Count}</text>\n"));
        for (var count = 0; count <= MaxCount; count += 30)
        {
            svg.Append(Invariant($"<line x1=\"{Left}\" y1=\"{Y(count):0.0}\" x2=\"{Width - Right}\" y2=\"{Y(count):0.0}\" stroke=\"#e4e4e4\"/>\n"));
            svg.Append(Invariant($"<text x=\"{Left - 6}\" y=\"{Y(count) + 4:0.0}\" text-anchor=\"end\" fill=\"#555555\">{count}</text>\n"));
        }

        for (var second = 0; second <= Seconds; second++)
        {
            svg.Append(Invariant($"<line x1=\"{X(second):0.0}\" y1=\"{Y(0):0.0}\" x2=\"{X(second):0.0}\" y2=\"{Y(0) + 4:0.0}\" stroke=\"#555555\"/>\n"));
            svg.Append(Invariant($"<text x=\"{X(second):0.0}\" y=\"{Y(0) + 16:0.0}\" text-anchor=\"middle\" fill=\"#555555\">{second} s</text>\n"));
        }

        svg.Append(Invariant($"<line x1=\"{Left}\" y1=\"{Y(0):0.0}\" x2=\"{Width - Right}\" y2=\"{Y(0):0.0}\" stroke=\"#555555\"/>\n"));

        // The budget of a 10/s limit with a burst of 10: what an exact limiter could admit by each moment.
        svg.Append(Invariant($"<line x1=\"{X(0):0.0}\" y1=\"{Y(10):0.0}\" x2=\"{X(Seconds):0.0}\" y2=\"{Y(10 + (10 * Seconds)):0.0}\" stroke=\"#999999\" stroke-dasharray=\"4 3\"/>\n"));
        svg.Append(Step(run.Offered, "#b0b0b0"));
        svg.Append(Step(run.Admitted, "#1f5fa8"));
        svg.Append(Invariant($"<text x=\"{Left + 8}\" y=\"{Top + 12}\" fill=\"#888888\">offered</text>\n"));
        svg.Append(Invariant($"<text x=\"{Left + 60}\" y=\"{Top + 12}\" fill=\"#1f5fa8\">admitted</text>\n"));
        svg.Append(Invariant($"<text x=\"{Left + 120}\" y=\"{Top + 12}\" fill=\"#999999\">- - 10 + 10/s</text>\n"));
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    /// <summary>Where <paramref name="algorithm"/>'s plot is kept in the repository.</summary>
    public static string PathOf(string root, PlottedAlgorithm algorithm)
    {
        ArgumentNullException.ThrowIfNull(algorithm);
        return Path.Combine(root, "docs", "images", algorithm.Name + ".svg");
    }

    private static string Step(IReadOnlyList<double> times, string colour)
    {
        var points = new StringBuilder();
        points.Append(Invariant($"{X(0):0.0},{Y(0):0.0}"));
        var count = 0;
        for (var i = 0; i < times.Count; i++)
        {
            var at = Math.Min(times[i], Seconds);
            points.Append(Invariant($" {X(at):0.0},{Y(count):0.0}"));
            while (i + 1 < times.Count && times[i + 1] == times[i])
            {
                i++;
                count++;
            }

            count++;
            points.Append(Invariant($" {X(at):0.0},{Y(count):0.0}"));
        }

        points.Append(Invariant($" {X(Seconds):0.0},{Y(count):0.0}"));
        return Invariant($"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{points}\"/>\n");
    }

    private static double X(double seconds) => Left + (seconds / Seconds * (Width - Left - Right));

    private static double Y(double count) => Height - Bottom - (count / MaxCount * (Height - Top - Bottom));

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static string Escape(string text) => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal);
}

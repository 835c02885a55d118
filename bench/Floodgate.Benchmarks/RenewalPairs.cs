using System.Diagnostics;
using System.Globalization;
using System.Net;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Benchmarks;

/// <summary>
/// What <see cref="RateLimitEngine.RenewLeases"/> adds to a request that holds a lease, measured in pairs: rounds of
/// evaluate-and-release without it and with it alternate, so a machine whose load drifts (it is shared) moves both alike,
/// and the median of the per-round differences is reported. BenchmarkDotNet runs one case after the other, and on this
/// machine its two means differ by more than the cost measured here.
/// </summary>
internal static class RenewalPairs
{
    public static void Run(int rounds, int operations, int held)
    {
        var limit = Limit.Concurrency(2L * held + 2, TimeSpan.FromHours(1));
        var engine = new RateLimitEngine(new RateLimitPolicy([new RateLimitRule("streams", RateLimitTier.Global, limit)]), new MemoryStore());
        var request = new RequestContext { Path = "/stream", Method = "GET", ClientIp = IPAddress.Parse("203.0.113.7") };
        var listed = new List<RateLimitResult>();
        for (var i = 0; i < held; i++)
        {
            var result = engine.EvaluateAsync(request).AsTask().GetAwaiter().GetResult();
            engine.RenewLeases(result);
            listed.Add(result);
        }

        var without = new List<double>();
        var with = new List<double>();
        for (var round = -2; round < rounds; round++)
        {
            var a = Measure(engine, request, operations, renew: false);
            var b = Measure(engine, request, operations, renew: true);
            if (round >= 0)
            {
                without.Add(a);
                with.Add(b);
            }
        }

        var differences = with.Zip(without, (b, a) => b - a).Order().ToList();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"renewal-pairs: {rounds} rounds of {operations} requests, {held} others listed: evaluate and release {Median(without):F1} ns, with RenewLeases {Median(with):F1} ns; median difference {differences[differences.Count / 2]:F1} ns (quartiles {differences[differences.Count / 4]:F1} to {differences[differences.Count * 3 / 4]:F1})"));
        foreach (var result in listed)
        {
            engine.ReleaseAsync(result).AsTask().GetAwaiter().GetResult();
        }
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    private static double Measure(RateLimitEngine engine, RequestContext request, int operations, bool renew)
    {
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < operations; i++)
        {
            var result = engine.EvaluateAsync(request).Result;
            if (renew)
            {
                engine.RenewLeases(result);
            }

            _ = engine.ReleaseAsync(result);
        }

        return clock.Elapsed.TotalNanoseconds / operations;
    }
}

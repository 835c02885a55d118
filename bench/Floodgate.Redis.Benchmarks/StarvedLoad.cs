using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Redis;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;

/// <summary>
/// Decisions on a healthy Redis while threads spinning beside them in this process starve its CPU, as an autoscaled
/// gateway's is during a surge: how many are answered by on_failure, for which reason, and how often the breaker opens.
/// Only public API and the store's meter and log, so that the same code measures any revision of the store.
/// </summary>
internal static class StarvedLoad
{
    /// <summary>The CPU each of the pool hogs' work items takes.</summary>
    private const double SliceMilliseconds = 4;

    /// <param name="hogs">Threads spinning beside the load; negative, as many CPU-bound loops through the thread pool.</param>
    public static async Task<int> RunAsync(string configuration, int seconds, int inFlight, int hogs, int timeoutMilliseconds, int rate)
    {
        var pool = hogs < 0;
        hogs = Math.Abs(hogs);
        seconds = Math.Clamp(seconds, 1, 120);
        inFlight = Math.Clamp(inFlight, 1, 1024);
        rate = Math.Clamp(rate, inFlight, 1_000_000);
        hogs = Math.Clamp(hogs, 0, 64);
        var timeout = TimeSpan.FromMilliseconds(Math.Clamp(timeoutMilliseconds, 1, 10_000));

        // floodgate.redis.failures by reason (timeout, error, circuit_open; late where the store tells it apart).
        var reasons = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        using var listener = new MeterListener
        {
            InstrumentPublished = static (instrument, l) =>
            {
                if (instrument.Meter.Name == RedisStore.MeterName && instrument.Name == "floodgate.redis.failures")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "reason" && tag.Value is string reason)
                {
                    reasons.AddOrUpdate(reason, value, (_, total) => total + value);
                }
            }
        });
        listener.Start();

        var log = new BreakerLog();
        await using var store = await RedisStore.ConnectAsync(
            new RedisStoreOptions
            {
                Configuration = configuration,
                KeyPrefix = "starved" + Guid.NewGuid().ToString("N")[..6],
                Timeout = timeout,
                FailureMode = StoreFailureMode.Closed,
                OverLimitCache = false,
            },
            logger: log);

        // A generous limit over many keys: every decision is a round trip that Redis allows.
        var limit = Limit.Gcra(new Rate(1_000_000, 1, RateUnit.Second));
        var keys = Enumerable.Range(0, 10_000).Select(i => StoreKey.Create("starved", "key" + i)).ToArray();

        // Unstarved first (connection, script, JIT): the same load must be decided in Redis.
        var calm = await Decide(store, limit, keys, inFlight, rate, TimeSpan.FromSeconds(3));
        reasons.Clear();
        log.Reset();

        using var stop = new CancellationTokenSource();
        var spinners = Enumerable.Range(0, pool ? 0 : hogs).Select(_ => new Thread(() => Spin(stop.Token)) { IsBackground = true, Name = "cpu hog" }).ToArray();
        foreach (var spinner in spinners)
        {
            spinner.Start();
        }

        // Or the process's own work: slices of CPU queued on the thread pool, each yielding to the back of its queue.
        var slices = Enumerable.Range(0, pool ? hogs : 0).Select(_ => Task.Run(() => Slices(stop.Token))).ToArray();
        Result starved;
        try
        {
            starved = await Decide(store, limit, keys, inFlight, rate, TimeSpan.FromSeconds(seconds));
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var spinner in spinners)
            {
                spinner.Join();
            }

            await Task.WhenAll(slices);
        }

        long Reason(string name) => reasons.TryGetValue(name, out var count) ? count : 0;
        var share = 100.0 * starved.OnFailure / Math.Max(1, starved.Decisions);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"starved: {hogs} {(pool ? "pool" : "thread")} hogs, {inFlight} in flight, {rate}/s offered, timeout {timeout.TotalMilliseconds:F0} ms: {starved.Decisions} decisions in {starved.Elapsed.TotalSeconds:F1} s ({starved.Decisions / starved.Elapsed.TotalSeconds:F0}/s), on_failure {starved.OnFailure} ({share:F2} %): timeout {Reason("timeout")}, late {Reason("late")}, error {Reason("error")}, circuit_open {Reason("circuit_open")}; breaker opened {log.Opened} times, closed {log.Closed}; p50 {starved.Percentile(0.5):F1} ms, p99 {starved.Percentile(0.99):F1} ms; unstarved before: {calm.OnFailure} of {calm.Decisions} on_failure"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result {starved.Decisions} {starved.OnFailure} {share:F2} {log.Opened} {Reason("timeout")} {Reason("late")} {Reason("circuit_open")} {starved.Percentile(0.99):F1}"));
        return 0;
    }

    /// <summary>Work items of about <see cref="SliceMilliseconds"/> of CPU each, one after the other through the pool's queue.</summary>
    private static async Task Slices(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var slice = Stopwatch.StartNew();
            var x = 0UL;
            while (slice.Elapsed.TotalMilliseconds < SliceMilliseconds)
            {
                for (var i = 0; i < 10_000; i++)
                {
                    x = (x * 6364136223846793005UL) + 1442695040888963407UL;
                }
            }

            GC.KeepAlive(x);
            await Task.Yield();
        }
    }

    private static void Spin(CancellationToken stop)
    {
        var x = 0UL;
        while (!stop.IsCancellationRequested)
        {
            for (var i = 0; i < 100_000; i++)
            {
                x = (x * 6364136223846793005UL) + 1442695040888963407UL;
            }
        }

        GC.KeepAlive(x);
    }

    /// <summary>
    /// <paramref name="inFlight"/> workers offer <paramref name="rate"/> decisions a second between them, each waiting for
    /// its next turn: an open breaker's instant answers do not turn the load itself into a CPU hog.
    /// </summary>
    private static async Task<Result> Decide(RedisStore store, Limit limit, StoreKey[] keys, int inFlight, int rate, TimeSpan duration)
    {
        var turn = TimeSpan.FromSeconds((double)inFlight / rate);
        var onFailure = 0L;
        var latencies = new List<long>[inFlight];
        var clock = Stopwatch.StartNew();
        var workers = new Task[inFlight];
        for (var w = 0; w < inFlight; w++)
        {
            var worker = w;
            latencies[w] = new List<long>(10_000);
            workers[w] = Task.Run(async () =>
            {
                var random = new Random(worker);
                var checks = new RateLimitCheck[1];
                var outcomes = new StoreOutcome[1];
                var sink = latencies[worker];
                var count = 0;
                while (clock.Elapsed < duration && count++ < 10_000_000)
                {
                    var wait = (turn * count) + (turn * worker / inFlight) - clock.Elapsed;
                    if (wait > TimeSpan.Zero)
                    {
                        await Task.Delay(wait);
                    }

                    checks[0] = new RateLimitCheck(limit, keys[random.Next(keys.Length)], 1, false);
                    var start = Stopwatch.GetTimestamp();
                    await store.DecideAsync(checks, outcomes);
                    sink.Add(Stopwatch.GetTimestamp() - start);
                    if (outcomes[0].IsStoreFailure)
                    {
                        Interlocked.Increment(ref onFailure);
                    }
                }
            });
        }

        await Task.WhenAll(workers);
        return new Result([.. latencies.SelectMany(l => l).Order()], onFailure, clock.Elapsed);
    }

    private sealed record Result(long[] Latencies, long OnFailure, TimeSpan Elapsed)
    {
        public long Decisions => Latencies.Length;

        public double Percentile(double p) =>
            Latencies.Length == 0 ? 0 : Latencies[Math.Min(Latencies.Length - 1, (int)(p * Latencies.Length))] * 1000.0 / Stopwatch.Frequency;
    }

    /// <summary>Counts the store's breaker openings (event 2) and closings (event 8) from its log.</summary>
    private sealed class BreakerLog : ILogger<RedisStore>
    {
        private long _opened;
        private long _closed;

        public long Opened => Volatile.Read(ref _opened);

        public long Closed => Volatile.Read(ref _closed);

        public void Reset()
        {
            Volatile.Write(ref _opened, 0);
            Volatile.Write(ref _closed, 0);
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == 2)
            {
                Interlocked.Increment(ref _opened);
            }
            else if (eventId.Id == 8)
            {
                Interlocked.Increment(ref _closed);
            }
        }
    }
}

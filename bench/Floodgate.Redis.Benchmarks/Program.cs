using System.Diagnostics;
using System.Globalization;
using BenchmarkDotNet.Running;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Redis;
using Floodgate.Stores;

// Usage:
//   load <redis host:port> [seconds] [in-flight] [keys]   decisions/s and p50/p99 latency, gcra, one check per decision
//   raw <redis host:port> [seconds] [in-flight] [keys]    the same EVALSHA load through StackExchange.Redis directly,
//                                                          without the store: the client's own ceiling
//   roundtrips <redis host:port> [requests]                Redis round trips per request, over-limit cache on vs off,
//                                                          with half of the keys over their limit
//   renewals <redis host:port> [leases] [rounds]           concurrency leases renewed as the engine's renewer does
//                                                          (256 in flight): wall time per lease and redis-server CPU
//                                                          per renew.lua call
//   starved <redis host:port> [seconds] [in-flight] [hogs] [timeout-ms] [decisions/s]
//                                                          decisions on a healthy Redis beside threads spinning in this
//                                                          process: the share answered by on_failure, by reason, and the
//                                                          breaker's openings (bench/redis/starved.sh compares revisions)
//   bdn [BenchmarkDotNet arguments]                        the BenchmarkDotNet suite (needs FLOODGATE_REDIS=host:port)
if (args.Length == 0)
{
    Console.Error.WriteLine("usage: load <host:port> [seconds] [in-flight] [keys] | roundtrips <host:port> [requests] | starved <host:port> [seconds] [in-flight] [hogs] [timeout-ms] [decisions/s] | bdn [args]");
    return 2;
}

switch (args[0])
{
    case "load":
        return await Load(args[1], Arg(args, 2, 10), Arg(args, 3, 256), Arg(args, 4, 10_000));
    case "raw":
        return await Raw(args[1], Arg(args, 2, 10), Arg(args, 3, 256), Arg(args, 4, 10_000));
    case "roundtrips":
        return await RoundTrips(args[1], Arg(args, 2, 100_000));
    case "renewals":
        return await Renewals(args[1], Arg(args, 2, 10_000), Arg(args, 3, 5));
    case "starved":
        return await StarvedLoad.RunAsync(args[1], Arg(args, 2, 15), Arg(args, 3, 64), Arg(args, 4, 4), Arg(args, 5, 50), Arg(args, 6, 4000));
    case "bdn":
        BenchmarkSwitcher.FromAssembly(typeof(StoreBenchmarks).Assembly).Run(args[1..]);
        return 0;
    default:
        Console.Error.WriteLine($"unknown mode '{args[0]}'");
        return 2;
}

static int Arg(string[] args, int index, int fallback) =>
    args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;

static async Task<int> Load(string configuration, int seconds, int inFlight, int keyCount)
{
    seconds = Math.Clamp(seconds, 1, 120);
    await using var store = await RedisStore.ConnectAsync(new RedisStoreOptions
    {
        Configuration = configuration,
        KeyPrefix = "bench",
        Timeout = TimeSpan.FromSeconds(1),
        OverLimitCache = false,
    });

    // A generous limit: the load measures the decision path, and every decision is a round trip.
    var limit = Limit.Gcra(new Rate(1_000_000, 1, RateUnit.Second));
    var keys = Enumerable.Range(0, keyCount).Select(i => StoreKey.Create("bench", "key" + i)).ToArray();

    // Warm up: connection, script cache, JIT.
    await Run(store, limit, keys, inFlight, TimeSpan.FromSeconds(2), null);
    var latencies = new List<long>[inFlight];
    for (var i = 0; i < inFlight; i++)
    {
        latencies[i] = new List<long>(100_000);
    }

    var clock = Stopwatch.StartNew();
    var failures = await Run(store, limit, keys, inFlight, TimeSpan.FromSeconds(seconds), latencies);
    var elapsed = clock.Elapsed;
    var all = latencies.SelectMany(l => l).Order().ToArray();
    double Percentile(double p) => all.Length == 0 ? 0 : all[Math.Min(all.Length - 1, (int)(p * all.Length))] * 1000.0 / Stopwatch.Frequency;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"load: {all.Length} decisions in {elapsed.TotalSeconds:F1} s = {all.Length / elapsed.TotalSeconds:F0} decisions/s; p50 {Percentile(0.50):F2} ms, p99 {Percentile(0.99):F2} ms, max {Percentile(1):F2} ms; {inFlight} in flight over {keyCount} keys; {failures} store failures; {store.RoundTrips} round trips"));
    return 0;
}

static async Task<int> Raw(string configuration, int seconds, int inFlight, int keyCount)
{
    seconds = Math.Clamp(seconds, 1, 120);
    await using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(configuration);
    var db = connection.GetDatabase();
    var hash = System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(RedisStore.Script));

    // The arguments the store sends for one enforced gcra check of the load's limit: server time, one group (stage 0,
    // one check).
    var limit = Limit.Gcra(new Rate(1_000_000, 1, RateUnit.Second));
    var arguments = new StackExchange.Redis.RedisValue[DecideProtocol.ArgumentCount(1, 1)];
    var at = DecideProtocol.WriteHeader(arguments, null, 1);
    at = DecideProtocol.WriteGroup(arguments, at, 0, 1);
    DecideProtocol.WriteCheck(arguments, at, new RateLimitCheck(limit, StoreKey.Create("raw", "k"), 1, false), 0, 0, 0);
    var first = await db.ScriptEvaluateAsync(RedisStore.Script, ["raw:{0}:k"], arguments);
    if (!DecideProtocol.TryReadDecided(first, 1, out _, out var evaluated) || evaluated != 1 || !DecideProtocol.ReadCheck(first, 0).IsAllowed)
    {
        Console.Error.WriteLine($"raw: the script did not admit the first call: {first}");
        return 1;
    }

    var keys = Enumerable.Range(0, keyCount).Select(i => (StackExchange.Redis.RedisKey)$"raw:{{{i}}}:k").ToArray();
    var done = 0L;
    var deadline = Stopwatch.StartNew();
    var workers = Enumerable.Range(0, inFlight).Select(w => Task.Run(async () =>
    {
        var random = new Random(w);
        var count = 0;
        while (deadline.Elapsed < TimeSpan.FromSeconds(seconds) && count++ < 10_000_000)
        {
            await db.ScriptEvaluateAsync(hash, [keys[random.Next(keys.Length)]], arguments);
            Interlocked.Increment(ref done);
        }
    })).ToArray();
    await Task.WhenAll(workers);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"raw: {done} EVALSHA in {deadline.Elapsed.TotalSeconds:F1} s = {done / deadline.Elapsed.TotalSeconds:F0}/s through StackExchange.Redis alone; {inFlight} in flight over {keyCount} keys"));
    return 0;
}

static async Task<long> Run(RedisStore store, Limit limit, StoreKey[] keys, int inFlight, TimeSpan duration, List<long>[]? latencies)
{
    var failures = 0L;
    var deadline = Stopwatch.StartNew();
    var workers = new Task[inFlight];
    for (var w = 0; w < inFlight; w++)
    {
        var worker = w;
        workers[w] = Task.Run(async () =>
        {
            var random = new Random(worker);
            var checks = new RateLimitCheck[1];
            var outcomes = new StoreOutcome[1];
            var sink = latencies?[worker];
            var count = 0;
            while (deadline.Elapsed < duration && count++ < 10_000_000)
            {
                checks[0] = new RateLimitCheck(limit, keys[random.Next(keys.Length)], 1, false);
                var start = Stopwatch.GetTimestamp();
                await store.DecideAsync(checks, outcomes);
                sink?.Add(Stopwatch.GetTimestamp() - start);
                if (outcomes[0].IsStoreFailure)
                {
                    Interlocked.Increment(ref failures);
                }
            }
        });
    }

    await Task.WhenAll(workers);
    return failures;
}

static async Task<int> RoundTrips(string configuration, int requests)
{
    requests = Math.Clamp(requests, 1000, 5_000_000);
    foreach (var cache in new[] { false, true })
    {
        await using var store = await RedisStore.ConnectAsync(new RedisStoreOptions
        {
            Configuration = configuration,
            KeyPrefix = "rt" + (cache ? "on" : "off") + Guid.NewGuid().ToString("N")[..6],
            Timeout = TimeSpan.FromSeconds(1),
            OverLimitCache = cache,
        });

        // 10,000 keys: the even ones allow 1 request an hour (over their limit after the first), the odd ones 100,000/s.
        var over = Limit.Gcra(new Rate(1, 1, RateUnit.Hour));
        var under = Limit.Gcra(new Rate(100_000, 1, RateUnit.Second));
        var random = new Random(42);
        var checks = new RateLimitCheck[1];
        var outcomes = new StoreOutcome[1];
        var denied = 0;
        var clock = Stopwatch.StartNew();
        var pending = new List<Task>(64);
        for (var i = 0; i < requests; i += 64)
        {
            pending.Clear();
            for (var j = 0; j < 64 && i + j < requests; j++)
            {
                var key = random.Next(10_000);
                var check = new RateLimitCheck(key % 2 == 0 ? over : under, StoreKey.Create("rt", "key" + key), 1, false);
                pending.Add(Decide(store, check));
            }

            await Task.WhenAll(pending);
        }

        async Task Decide(RedisStore s, RateLimitCheck check)
        {
            var one = new StoreOutcome[1];
            await s.DecideAsync(new[] { check }, one);
            if (!one[0].Outcome.IsAllowed)
            {
                Interlocked.Increment(ref denied);
            }
        }

        _ = checks;
        _ = outcomes;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"roundtrips: over-limit cache {(cache ? "on" : "off")}: {requests} requests, {denied} denied, {store.RoundTrips} round trips = {(double)store.RoundTrips / requests:F3} per request, {store.LocalDecisions} answered locally, in {clock.Elapsed.TotalSeconds:F1} s"));
    }

    return 0;
}

static async Task<int> Renewals(string configuration, int leases, int rounds)
{
    leases = Math.Clamp(leases, 256, 1_000_000);
    rounds = Math.Clamp(rounds, 1, 50);
    await using var store = await RedisStore.ConnectAsync(new RedisStoreOptions
    {
        Configuration = configuration,
        KeyPrefix = "rn" + Guid.NewGuid().ToString("N")[..6],
        Timeout = TimeSpan.FromSeconds(5),
    });

    await using var admin = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(configuration + ",allowAdmin=true");
    var server = admin.GetServer(admin.GetEndPoints()[0]);
    var (takeCalls, takeUsec) = await EvalshaStats(server);

    // Ten leases a key (a route's capacity, say), an hour's timeout: every renewal finds its lease and moves it.
    var limit = Limit.Concurrency(10, TimeSpan.FromHours(1));
    var held = new (RateLimitCheck Check, long LeaseId)[leases];
    var outcomes = new StoreOutcome[1];
    for (var i = 0; i < leases; i++)
    {
        var check = new RateLimitCheck(limit, StoreKey.Create("rn", "route" + (i / 10)), 1, false);
        await store.DecideAsync(new[] { check }, outcomes);
        if (!outcomes[0].Committed || outcomes[0].IsStoreFailure)
        {
            Console.Error.WriteLine($"renewals: lease {i} was not granted.");
            return 1;
        }

        held[i] = (check, outcomes[0].LeaseId);
    }

    var (takenCalls, takenUsec) = await EvalshaStats(server);
    var perDecision = (double)(takenUsec - takeUsec) / Math.Max(1, takenCalls - takeCalls);
    await RenewAll(store, held);
    var (callsBefore, usecBefore) = await EvalshaStats(server);
    var times = new List<double>();
    for (var round = 0; round < rounds; round++)
    {
        var clock = Stopwatch.StartNew();
        var renewed = await RenewAll(store, held);
        times.Add(clock.Elapsed.TotalMilliseconds);
        if (renewed != leases)
        {
            Console.Error.WriteLine($"renewals: {leases - renewed} leases were not renewed.");
            return 1;
        }
    }

    var (callsAfter, usecAfter) = await EvalshaStats(server);
    var perCall = (double)(usecAfter - usecBefore) / Math.Max(1, callsAfter - callsBefore);
    var median = times.Order().ElementAt(times.Count / 2);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"renewals: {leases} leases renewed {rounds} times, 256 in flight: median {median:F1} ms a round = {median * 1000 / leases:F2} us a lease ({leases / median * 1000:F0} renewals/s); redis-server {perCall:F2} us per renew.lua call ({callsAfter - callsBefore} calls), against {perDecision:F2} us per decide.lua call that took a lease, one at a time"));
    return 0;
}

static async Task<int> RenewAll(RedisStore store, (RateLimitCheck Check, long LeaseId)[] held)
{
    // As the engine's renewer sends them: every due lease at once, at most 256 in flight, pipelined on one connection.
    var renewed = 0;
    var pending = new List<Task<LeaseRenewal>>(256);
    for (var i = 0; i < held.Length; i += 256)
    {
        pending.Clear();
        for (var j = i; j < Math.Min(i + 256, held.Length); j++)
        {
            pending.Add(store.RenewAsync(held[j].Check, held[j].LeaseId).AsTask());
        }

        foreach (var answer in await Task.WhenAll(pending))
        {
            renewed += answer == LeaseRenewal.Renewed ? 1 : 0;
        }
    }

    return renewed;
}

static async Task<(long Calls, long Usec)> EvalshaStats(StackExchange.Redis.IServer server)
{
    // INFO commandstats: cmdstat_evalsha:calls=N,usec=M,... (CONFIG RESETSTAT may be refused to clients).
    var line = (await server.InfoAsync("commandstats")).SelectMany(g => g).FirstOrDefault(p => p.Key == "cmdstat_evalsha").Value ?? "";
    var fields = line.Split(',').Select(f => f.Split('=')).Where(f => f.Length == 2).ToDictionary(f => f[0], f => f[1]);
    return (long.Parse(fields.GetValueOrDefault("calls", "0"), CultureInfo.InvariantCulture), long.Parse(fields.GetValueOrDefault("usec", "0"), CultureInfo.InvariantCulture));
}

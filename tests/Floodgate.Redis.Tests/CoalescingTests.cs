using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

/// <summary>
/// On a single node, the calls of concurrent decisions share runs of the script: while one run is in flight the others
/// wait, and go together when it is answered. Each test holds its own server's commands (CLIENT PAUSE) so that a first
/// call is in flight while the next ones queue behind it.
/// </summary>
public sealed class CoalescingTests
{
    private static readonly Rate FivePerDay = new(5, 1, RateUnit.Day);

    [Fact]
    public async Task Calls_queued_behind_a_run_go_as_one_run_and_decide_in_order_as_if_alone()
    {
        using var server = RedisServer.Start();
        await using var store = await TestStores.ConnectAsync(server, o =>
        {
            o.Timeout = TimeSpan.FromSeconds(10);
            o.OverLimitCache = false;
        });
        var warm = new RateLimitCheck(Limit.Gcra(new Rate(1000, 1, RateUnit.Second)), StoreKey.Create("warm", "w"), 1, false);
        Assert.True(await TestStores.DecidedInRedisAsync(store, warm, 1), "the store never reached Redis");

        var gcra = new RateLimitCheck(Limit.Gcra(FivePerDay), StoreKey.Create("gcra", "alice"), 1, false);
        var window = new RateLimitCheck(Limit.FixedWindow(FivePerDay), StoreKey.Create("window", "alice"), 1, false);
        var edge = new RateLimitCheck(Limit.SlidingWindow(FivePerDay), StoreKey.Create("edge", "10.0.0.1"), 1, false);
        var runs = store.Runs;
        server.Cli("CLIENT", "PAUSE", "700", "ALL");

        // In flight (held by the pause): the first call, alone. Queued behind it: 8 decisions of one key, 8 of another,
        // and 6 of two stages (the edge, then the user) whose edge runs out after 5.
        var first = store.DecideAsync(warm);
        var decisions = new List<(string Kind, Task<StoreOutcome[]> Outcomes)>();
        for (var i = 0; i < 8; i++)
        {
            decisions.Add(("gcra", store.DecideAsync(gcra)));
            decisions.Add(("window", store.DecideAsync(window)));
            if (i < 6)
            {
                var outcomes = new StoreOutcome[2];
                var staged = store.DecideStagesAsync(new[] { edge, gcra }, new[] { 1, 2 }, outcomes).AsTask();
                decisions.Add(("staged", staged.ContinueWith(_ => outcomes, TaskScheduler.Default)));
            }
        }

        Assert.False((await first)[0].IsStoreFailure);
        await Task.WhenAll(decisions.Select(d => d.Outcomes)).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(0, store.Failures);
        Assert.Equal(runs + 2, store.Runs);

        // In the order they were made, each saw what the ones before it wrote: the window's 5 go, then 3 are denied;
        // the edge's 5 go; the gcra key is shared by the plain decisions and by the staged ones that passed the edge.
        var remaining = new Dictionary<string, List<long>> { ["gcra"] = [], ["window"] = [], ["edge"] = [] };
        var gcraAdmitted = 0;
        foreach (var (kind, task) in decisions)
        {
            var outcomes = await task;
            if (kind == "staged")
            {
                remaining["edge"].Add(outcomes[0].Outcome.IsAllowed ? outcomes[0].Outcome.Remaining : -1);
                if (outcomes[0].Outcome.IsAllowed && outcomes[1].Committed)
                {
                    gcraAdmitted++;
                }

                continue;
            }

            remaining[kind].Add(outcomes[0].Committed ? outcomes[0].Outcome.Remaining : -1);
            gcraAdmitted += kind == "gcra" && outcomes[0].Committed ? 1 : 0;
        }

        Assert.Equal([4L, 3, 2, 1, 0, -1, -1, -1], remaining["window"]);
        Assert.Equal([4L, 3, 2, 1, 0, -1], remaining["edge"]);
        Assert.Equal(5, gcraAdmitted);

        // Written once per key at the end of the run, with the TTL of its last state.
        var database = store.Database();
        foreach (var check in new[] { gcra, window, edge })
        {
            Assert.True(await database.KeyTimeToLiveAsync(TestStores.KeyOf(store, check)) > TimeSpan.FromHours(1), $"{check.Key} has no TTL of its own");
        }

        var denied = await store.DecideAsync(window);
        Assert.False(denied[0].Outcome.IsAllowed);
    }

    [Fact]
    public async Task A_call_whose_decision_gave_up_while_it_waited_is_never_sent()
    {
        using var server = RedisServer.Start();
        await using var store = await TestStores.ConnectAsync(server, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(150);
            o.FailureMode = RedisFailureMode.Open;
            o.BreakerFailureThreshold = 1000;
            o.OverLimitCache = false;
        });
        var warm = new RateLimitCheck(Limit.Gcra(new Rate(1000, 1, RateUnit.Second)), StoreKey.Create("warm", "w"), 1, false);
        Assert.True(await TestStores.DecidedInRedisAsync(store, warm, 1), "the store never reached Redis");
        var lease = new RateLimitCheck(Limit.Concurrency(1, TimeSpan.FromMinutes(10)), StoreKey.Create("lease", "alice"), 1, false);
        server.Cli("CONFIG", "RESETSTAT");
        server.Cli("CLIENT", "PAUSE", "600", "ALL");

        // The first call is held in Redis; the lease's waits behind it, and its decision times out first.
        var first = store.DecideAsync(warm);
        var waited = await store.DecideAsync(lease);
        Assert.True(waited[0].IsStoreFailure);
        Assert.True((await first)[0].IsStoreFailure);

        // Once Redis resumes it runs the first call only: the lease's was dropped, so it takes no permit.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (!server.Cli("INFO", "commandstats").Contains("cmdstat_evalsha:calls=1,", StringComparison.Ordinal) && watch.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(20);
        }

        await Task.Delay(200);
        var stats = server.Cli("INFO", "commandstats");
        Assert.True(stats.Contains("cmdstat_evalsha:calls=1,", StringComparison.Ordinal), stats);
        Assert.Equal(0, await store.Database().KeyExistsAsync(TestStores.KeyOf(store, lease)) ? 1 : 0);
        Assert.True((await store.DecideAsync(lease))[0].Committed);
    }

    [Fact]
    public async Task A_call_cancelled_while_it_waited_still_frees_the_lease_its_run_takes()
    {
        using var server = RedisServer.Start();
        await using var store = await TestStores.ConnectAsync(server, o =>
        {
            o.Timeout = TimeSpan.FromSeconds(10);
            o.OverLimitCache = false;
        });
        var warm = new RateLimitCheck(Limit.Gcra(new Rate(1000, 1, RateUnit.Second)), StoreKey.Create("warm", "w"), 1, false);
        Assert.True(await TestStores.DecidedInRedisAsync(store, warm, 1), "the store never reached Redis");
        var only = new RateLimitCheck(Limit.Concurrency(1, TimeSpan.FromMinutes(10)), StoreKey.Create("lease", "alice"), 1, false);
        server.Cli("CLIENT", "PAUSE", "500", "ALL");

        // The lease's call waits behind the first; its caller gives up while it waits, with time left, so the call still
        // goes with the next run and takes the only permit. Its release must follow that run, not go before it.
        var first = store.DecideAsync(warm);
        using var cancel = new CancellationTokenSource();
        var outcomes = new StoreOutcome[1];
        var decision = store.DecideAsync(new[] { only }, outcomes, cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => decision);
        Assert.False((await first)[0].IsStoreFailure);

        var free = false;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (!free && watch.Elapsed < TimeSpan.FromSeconds(10))
        {
            var again = await store.DecideAsync(only);
            free = again[0].Committed;
            if (free)
            {
                await store.ReleaseAsync(only, again[0].LeaseId);
            }
            else
            {
                await Task.Delay(50);
            }
        }

        Assert.True(free, "the permit taken by the cancelled decision's run was never freed");
        Assert.Equal(0, store.Failures);
    }

    [Fact]
    public async Task A_call_refused_for_a_key_of_another_type_fails_alone_and_writes_nothing()
    {
        using var server = RedisServer.Start();
        await using var store = await TestStores.ConnectAsync(server, o =>
        {
            o.Timeout = TimeSpan.FromSeconds(10);
            o.FailureMode = RedisFailureMode.Closed;
            o.OverLimitCache = false;
        });
        var warm = new RateLimitCheck(Limit.Gcra(new Rate(1000, 1, RateUnit.Second)), StoreKey.Create("warm", "w"), 1, false);
        Assert.True(await TestStores.DecidedInRedisAsync(store, warm, 1), "the store never reached Redis");
        var limit = Limit.Concurrency(5, TimeSpan.FromMinutes(10));
        var good = new RateLimitCheck(limit, StoreKey.Create("lease", "good"), 1, false);
        var bad = new RateLimitCheck(limit, StoreKey.Create("lease", "edited"), 1, false);
        var counter = new RateLimitCheck(Limit.FixedWindow(FivePerDay), StoreKey.Create("window", "alice"), 1, false);
        Assert.True(await store.Database().StringSetAsync(TestStores.KeyOf(store, bad), "not a lease set"));
        var runs = store.Runs;
        server.Cli("CLIENT", "PAUSE", "500", "ALL");

        // Queued behind the first call, one run: a lease, a decision of two stages whose second holds the edited key, and
        // another lease. The run must not stop at the edited key: the calls after it are decided, and the one refused
        // writes nothing (its first stage's counter included).
        var first = store.DecideAsync(warm);
        var before = store.DecideAsync(good);
        var outcomes = new StoreOutcome[2];
        var refused = store.DecideStagesAsync(new[] { counter, bad }, new[] { 1, 2 }, outcomes).AsTask();
        var after = store.DecideAsync(good);
        await Task.WhenAll(first, before, refused, after).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(runs + 2, store.Runs);

        Assert.True((await before)[0].Committed);
        var last = (await after)[0];
        Assert.True(last.Committed);
        Assert.Equal(3, last.Outcome.Remaining);
        // Its first stage is answered by the failure mode (closed: denied), so its second is not evaluated.
        Assert.True(outcomes[0].IsStoreFailure, "the refused decision was not answered by the failure mode");
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.False(outcomes[1].Committed);
        Assert.False(await store.Database().KeyExistsAsync(TestStores.KeyOf(store, counter)), "the refused call wrote its first stage");
        Assert.Equal(RedisType.String, await store.Database().KeyTypeAsync(TestStores.KeyOf(store, bad)));
        Assert.True(store.IsCircuitClosed);
    }
}

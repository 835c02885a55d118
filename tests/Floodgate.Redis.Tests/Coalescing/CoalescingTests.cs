using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

/// <summary>
/// On a single node, the calls of concurrent decisions share runs of the script: while one run is in flight the others
/// wait, and go together when it is answered. Each test holds its own server's commands (<see cref="RedisServer.Pause"/>:
/// CLIENT PAUSE; on Garnet, which has none, the process is stopped meanwhile) so that a first call is in flight while
/// the next ones queue behind it. Runs on every server kind (Servers.cs).
/// </summary>
public abstract class CoalescingTests(ServerKind kind)
{
    private static readonly Rate FivePerDay = new(5, 1, RateUnit.Day);

    /// <summary>A check each test decides first: the call held in Redis while the others queue.</summary>
    private static readonly RateLimitCheck Warm = new(Limit.Gcra(new Rate(1000, 1, RateUnit.Second)), StoreKey.Create("warm", "w"), 1, false);

    /// <summary>A store of <paramref name="server"/> that has decided in Redis once, so its script is loaded.</summary>
    private static async Task<RedisStore> WarmStoreAsync(RedisServer server, Action<RedisStoreOptions> configure)
    {
        var store = await TestStores.ConnectAsync(server, configure);
        Assert.True(await TestStores.DecidedInRedisAsync(store, Warm, 1), "the store never reached Redis");
        return store;
    }

    /// <summary>
    /// How many times the server ran <paramref name="command"/> (scripts' calls included), by <c>INFO commandstats</c>:
    /// tests compare it before and after, as Garnet has no <c>CONFIG RESETSTAT</c>.
    /// </summary>
    private static long Calls(RedisServer server, string command)
    {
        var prefix = "cmdstat_" + command + ":calls=";
        var line = server.Cli("INFO", "commandstats").Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line.AsSpan(prefix.Length, line.IndexOf(',', StringComparison.Ordinal) - prefix.Length), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Calls_queued_behind_a_run_go_as_one_run_and_decide_in_order_as_if_alone()
    {
        using var server = RedisServer.Start(kind);
        await using var store = await WarmStoreAsync(server, o =>
        {
            o.Timeout = TimeSpan.FromSeconds(10);
            o.OverLimitCache = false;
        });

        var gcra = new RateLimitCheck(Limit.Gcra(FivePerDay), StoreKey.Create("gcra", "alice"), 1, false);
        var window = new RateLimitCheck(Limit.FixedWindow(FivePerDay), StoreKey.Create("window", "alice"), 1, false);
        var edge = new RateLimitCheck(Limit.SlidingWindow(FivePerDay), StoreKey.Create("edge", "10.0.0.1"), 1, false);
        var runs = store.Runs;
        var sets = Calls(server, "set");
        server.Pause(TimeSpan.FromMilliseconds(1000));

        // In flight (held by the pause): the first call, alone. Queued behind it: 8 decisions of one key, 8 of another,
        // and 6 of two stages (the edge, then the user) whose edge runs out after 5.
        var first = store.DecideAsync(Warm);
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

        // Written once per key at the end of the run (3 SETs, and 1 for the first call), with the TTL of its last state:
        // the gcra key's after 5 of 5/day is about a day away, its first state's about 4.8 hours.
        if (kind == ServerKind.Redis)
        {
            // Garnet's INFO commandstats never counts a script's SET … PX (docs/redis.md, Servers): the TTLs below still
            // show each key written with its last state.
            Assert.Equal(sets + 4, Calls(server, "set"));
        }
        var database = store.Database();
        Assert.True(await database.KeyTimeToLiveAsync(TestStores.KeyOf(store, gcra)) > TimeSpan.FromHours(20), "the gcra key kept an earlier state's TTL");
        // A day's window ends at midnight UTC: in the last hour of the day its key has less than an hour to live.
        var windowLeft = DateTime.UtcNow.Date.AddDays(1) - DateTime.UtcNow - TimeSpan.FromMinutes(1);
        var least = windowLeft < TimeSpan.FromHours(1) ? windowLeft : TimeSpan.FromHours(1);
        foreach (var check in new[] { window, edge })
        {
            Assert.True(await database.KeyTimeToLiveAsync(TestStores.KeyOf(store, check)) > least, $"{check.Key} has no TTL of its own");
        }

        var denied = await store.DecideAsync(window);
        Assert.False(denied[0].Outcome.IsAllowed);
    }

    [Fact]
    public async Task A_call_whose_decision_gave_up_while_it_waited_is_never_sent()
    {
        using var server = RedisServer.Start(kind);
        await using var store = await WarmStoreAsync(server, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(150);
            o.FailureMode = StoreFailureMode.Open;
            o.BreakerFailureThreshold = 1000;
            o.OverLimitCache = false;
        });
        var lease = new RateLimitCheck(Limit.Concurrency(1, TimeSpan.FromMinutes(10)), StoreKey.Create("lease", "alice"), 1, false);
        var evalshas = Calls(server, "evalsha");
        server.Pause(TimeSpan.FromMilliseconds(600));

        // The first call is held in Redis; the lease's waits behind it, and its decision times out first.
        var first = store.DecideAsync(Warm);
        var waited = await store.DecideAsync(lease);
        Assert.True(waited[0].IsStoreFailure);
        Assert.True((await first)[0].IsStoreFailure);

        // Once Redis resumes it runs the first call only: the lease's was dropped, so it takes no permit.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (Calls(server, "evalsha") < evalshas + 1 && watch.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(20);
        }

        await Task.Delay(200);
        Assert.True(Calls(server, "evalsha") == evalshas + 1, server.Cli("INFO", "commandstats"));
        Assert.Equal(0, await store.Database().KeyExistsAsync(TestStores.KeyOf(store, lease)) ? 1 : 0);
        Assert.True((await store.DecideAsync(lease))[0].Committed);
    }

    [Fact]
    public async Task A_call_cancelled_while_it_waited_is_never_sent()
    {
        using var server = RedisServer.Start(kind);
        await using var store = await WarmStoreAsync(server, o =>
        {
            o.Timeout = TimeSpan.FromSeconds(10);
            o.OverLimitCache = false;
        });
        var only = new RateLimitCheck(Limit.Concurrency(1, TimeSpan.FromMinutes(10)), StoreKey.Create("lease", "alice"), 1, false);
        var evalshas = Calls(server, "evalsha");
        server.Pause(TimeSpan.FromMilliseconds(1000));

        // The lease's call waits behind the first; its caller gives up while it waits, with time left. It is not sent
        // with the next run: it would take the only permit for nobody.
        var first = store.DecideAsync(Warm);
        using var cancel = new CancellationTokenSource();
        var outcomes = new StoreOutcome[1];
        var decision = store.DecideAsync(new[] { only }, outcomes, cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => decision);
        Assert.False((await first)[0].IsStoreFailure);

        await Task.Delay(200);
        Assert.True(Calls(server, "evalsha") == evalshas + 1, server.Cli("INFO", "commandstats"));
        Assert.False(await store.Database().KeyExistsAsync(TestStores.KeyOf(store, only)));
        Assert.True((await store.DecideAsync(only))[0].Committed);
        Assert.Equal(0, store.Failures);
    }

    [Fact]
    public async Task A_run_stopped_by_a_key_of_another_type_fails_only_the_call_that_meets_it()
    {
        using var server = RedisServer.Start(kind);
        await using var store = await WarmStoreAsync(server, o =>
        {
            o.Timeout = TimeSpan.FromSeconds(10);
            o.FailureMode = StoreFailureMode.Open;
            o.BreakerFailureThreshold = 1000;
            o.OverLimitCache = false;
        });
        var limit = Limit.Concurrency(5, TimeSpan.FromMinutes(10));
        var good = new RateLimitCheck(limit, StoreKey.Create("lease", "good"), 1, false);
        var bad = new RateLimitCheck(limit, StoreKey.Create("lease", "edited"), 1, false);
        var counter = new RateLimitCheck(Limit.FixedWindow(FivePerDay), StoreKey.Create("window", "alice"), 1, false);
        var spent = new RateLimitCheck(Limit.FixedWindow(new Rate(1, 1, RateUnit.Day)), StoreKey.Create("window", "spent"), 1, false);
        Assert.True((await store.DecideAsync(spent))[0].Committed);
        Assert.True(await store.Database().StringSetAsync(TestStores.KeyOf(store, bad), "not a lease set"));
        var runs = store.Runs;
        server.Pause(TimeSpan.FromMilliseconds(1000));

        // Queued behind the first call, one run: a lease; a decision of two stages whose second holds the edited key;
        // one whose first stage is spent, so its second (the edited key again) is never reached; another lease.
        var first = store.DecideAsync(Warm);
        var before = store.DecideAsync(good);
        var outcomes = new StoreOutcome[2];
        var stopped = store.DecideStagesAsync(new[] { counter, bad }, new[] { 1, 2 }, outcomes).AsTask();
        var deniedOutcomes = new StoreOutcome[2];
        var denied = store.DecideStagesAsync(new[] { spent, bad }, new[] { 1, 2 }, deniedOutcomes).AsTask();
        var after = store.DecideAsync(good);
        await Task.WhenAll(first, before, stopped, denied, after).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(store.Runs >= runs + 2);

        // The run stopped at the edited key; sent again call by call, the others are decided as if alone, each lease
        // counted once.
        Assert.True((await before)[0].Committed);
        var last = (await after)[0];
        Assert.True(last.Committed);
        Assert.Equal(3, last.Outcome.Remaining);

        // The call that meets the key fails alone (open: admitted), and writes nothing, its first stage included.
        Assert.True(outcomes[0].IsStoreFailure && outcomes[1].IsStoreFailure, "the call that met the edited key did not fail");
        Assert.False(await store.Database().KeyExistsAsync(TestStores.KeyOf(store, counter)), "the failed call wrote its first stage");
        Assert.Equal(RedisType.String, await store.Database().KeyTypeAsync(TestStores.KeyOf(store, bad)));

        // A call that never reaches the key is decided as before: denied by its spent first stage, not failed open.
        Assert.False(deniedOutcomes[0].IsStoreFailure);
        Assert.False(deniedOutcomes[0].Outcome.IsAllowed);
        Assert.False(deniedOutcomes[1].Committed);
    }
}

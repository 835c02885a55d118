using System.Diagnostics;
using System.Globalization;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Xunit.Abstractions;

namespace Floodgate.Redis.Tests;

/// <summary>Tests that starve this process's thread pool: run alone, so no other test's timing pays for it.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class StarvationCollection
{
    public const string Name = "starvation";
}

/// <summary>
/// The breaker judges Redis, not this process: a decision given up on because the process was late (its thread pool
/// or CPU starved, with Redis healthy) must not open it, while a Redis that really does not answer still does.
/// </summary>
[Collection(StarvationCollection.Name)]
public sealed class StarvationTests(ITestOutputHelper output)
{
    private static readonly RateLimitCheck Check = new(Limit.Gcra(new Rate(1_000_000, 1, RateUnit.Second)), StoreKey.Create("starved", "alice"), 1, false);

    [Fact]
    public async Task A_starved_thread_pool_with_redis_healthy_does_not_open_the_breaker()
    {
        using var server = RedisServer.Start();
        var logs = new FakeLogger<RedisStore>();
        await using var store = await TestStores.ConnectAsync(server.Configuration, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(100);
            o.FailureMode = StoreFailureMode.Closed;
            o.BreakerFailureThreshold = 5;
            // Once open it stays open for the rest of the test: what is asserted is whether it ever opened.
            o.BreakerDuration = TimeSpan.FromMinutes(10);
            o.OverLimitCache = false;
        }, logger: logs);
        Assert.True(await TestStores.DecidedInRedisAsync(store, Check, 5), "the store never reached Redis");

        // Bursts of 20 decisions, each made while every thread of the pool is held for 400 ms (four timeouts): Redis
        // answers at once, but nothing of this process runs until the pool is let go. Three bursts that found the pool
        // held (bounded attempts).
        var held = 0;
        var onFailure = 0;
        for (var attempt = 0; attempt < 10 && held < 3; attempt++)
        {
            Task<StoreOutcome[]>[] burst;
            bool wasHeld;
            using (var starvation = PoolStarvation.Begin())
            {
                burst = [.. Enumerable.Range(0, 20).Select(_ => store.DecideAsync(Check))];
                var window = Stopwatch.StartNew();
                while (window.Elapsed < TimeSpan.FromMilliseconds(400))
                {
                    Thread.Sleep(10);
                }

                starvation.Dispose();
                wasHeld = starvation.Held;
            }

            var outcomes = await Task.WhenAll(burst).WaitAsync(TimeSpan.FromSeconds(30));
            held += wasHeld ? 1 : 0;
            onFailure += wasHeld ? outcomes.Count(o => o[0].IsStoreFailure) : 0;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"burst {attempt}: pool held {wasHeld}, {outcomes.Count(o => o[0].IsStoreFailure)} of 20 by on_failure; {store.Failures} failures, {store.OpenCircuits} breakers open"));
        }

        // The calls given up on while the pool was held are judged once answered (or once Redis has had its time).
        Assert.True(await VerdictsInAsync(store), "calls given up on were still being judged 30 s later");
        foreach (var message in logs.Lines())
        {
            output.WriteLine(message);
        }

        output.WriteLine($"{store.Failures} failures, {store.LateFailures} of them this process's lateness");
        Assert.True(held > 0, "the pool was never held while a burst was decided: nothing was tested");

        // The decisions made while starved were given up on at their deadline (the caller never waits longer), but Redis
        // answered every call: the breaker is still closed, and the next decisions are Redis's.
        Assert.True(store.IsCircuitClosed, $"the breaker opened though Redis answered every call: {onFailure} decisions of {held} starved bursts answered by on_failure, {store.Failures} failures counted");
        Assert.True(await TestStores.DecidedInRedisAsync(store, Check, 3), "decisions after the starvation were not decided in Redis");

        // They were counted as this process's lateness, and said so in the log.
        Assert.True(onFailure > 0, "no decision made while the pool was held was answered by on_failure: the starvation was not seen");
        Assert.True(store.LateFailures > 0, "the decisions given up on while starved were not counted as this process's lateness");
        Assert.Contains(logs.Lines(), m => m.Contains("because this process was late", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_probe_answered_while_the_pool_is_starved_closes_the_breaker_rather_than_opening_it_again()
    {
        // Redis came back; the open breaker's probe goes while this process is starved (as a gateway answering a flood
        // by on_failure is): Redis answers it, but the decision sees its deadline late. The breaker must close, not open
        // for another BreakerDuration. The breaker's clock is the test's, so the probe is due exactly when the test says.
        using var server = RedisServer.Start();
        var clock = TestStores.Clock(DateTimeOffset.UtcNow);
        var logs = new FakeLogger<RedisStore>();
        await using var store = await TestStores.ConnectAsync(server.Configuration, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(100);
            o.FailureMode = StoreFailureMode.Closed;
            o.BreakerFailureThreshold = 1;
            o.BreakerDuration = TimeSpan.FromSeconds(10);
            o.OverLimitCache = false;
        }, clock, logger: logs);
        Assert.True(await TestStores.DecidedInRedisAsync(store, Check, 5), "the store never reached Redis");

        var probed = false;
        for (var attempt = 0; attempt < 5 && !probed; attempt++)
        {
            // Open it: one call a stopped Redis never answers.
            Signal(server.Pid, "STOP");
            try
            {
                Assert.True((await store.DecideOneAsync(Check)).IsStoreFailure);
                Assert.True(await VerdictsInAsync(store), "the call Redis never answered was still being judged 30 s later");
            }
            finally
            {
                Signal(server.Pid, "CONT");
            }

            Assert.False(store.IsCircuitClosed, "the breaker did not open on a call Redis never answered");

            // Redis is back; the probe is due, and goes while every thread of the pool is held.
            clock.Advance(TimeSpan.FromSeconds(11));
            Task<StoreOutcome[]> probe;
            using (var starvation = PoolStarvation.Begin())
            {
                probe = store.DecideAsync(Check);
                var window = Stopwatch.StartNew();
                while (window.Elapsed < TimeSpan.FromMilliseconds(400))
                {
                    Thread.Sleep(10);
                }

                starvation.Dispose();
                probed = starvation.Held;
            }

            var outcome = (await probe.WaitAsync(TimeSpan.FromSeconds(30)))[0];
            output.WriteLine($"attempt {attempt}: pool held {probed}, the probe answered by on_failure: {outcome.IsStoreFailure}");
            Assert.True(await VerdictsInAsync(store), "the probe was still being judged 30 s later");
        }

        foreach (var message in logs.Lines())
        {
            output.WriteLine(message);
        }

        Assert.True(probed, "the pool was never held while the probe was decided: nothing was tested");
        Assert.True(store.IsCircuitClosed, "the breaker opened again on a probe Redis answered, seen late by a starved process");
        Assert.Contains(logs.Lines(), m => m.Contains("closed: its probe succeeded", StringComparison.Ordinal));
        Assert.False((await store.DecideOneAsync(Check)).IsStoreFailure, "the decision after the probe was not decided in Redis");
    }

    /// <summary>Waits (bounded) until the store judged every call it gave up on while this process was late.</summary>
    private static async Task<bool> VerdictsInAsync(RedisStore store)
    {
        var waited = Stopwatch.StartNew();
        while (store.PendingVerdicts > 0 && waited.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(20);
        }

        return store.PendingVerdicts == 0;
    }

    [Fact]
    public async Task A_stopped_redis_opens_the_breaker_after_threshold_decisions_as_before()
    {
        using var server = RedisServer.Start();
        var logs = new FakeLogger<RedisStore>();
        await using var store = await TestStores.ConnectAsync(server.Configuration, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(200);
            o.FailureMode = StoreFailureMode.Closed;
            o.BreakerFailureThreshold = 5;
            o.BreakerDuration = TimeSpan.FromMinutes(10);
            o.OverLimitCache = false;
        }, logger: logs);
        Assert.True(await TestStores.DecidedInRedisAsync(store, Check, 5), "the store never reached Redis");
        await using var burstStore = await TestStores.ConnectAsync(server.Configuration, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(200);
            o.FailureMode = StoreFailureMode.Closed;
            o.BreakerFailureThreshold = 5;
            o.BreakerDuration = TimeSpan.FromMinutes(10);
            o.OverLimitCache = false;
        });
        Assert.True(await TestStores.DecidedInRedisAsync(burstStore, Check, 5), "the second store never reached Redis");

        Signal(server.Pid, "STOP");
        try
        {
            // One decision after another: each waits its timeout, is answered by on_failure and counts against the
            // breaker, which opens at the fifth. A timeout this loaded machine saw late is judged a little later (once a
            // look made on time finds the call still unanswered): then the breaker opens once that verdict is in.
            for (var i = 1; i <= 5; i++)
            {
                Assert.True(store.IsCircuitClosed, $"the breaker opened after {i - 1} decisions, before its threshold");
                Assert.True((await store.DecideOneAsync(Check)).IsStoreFailure, $"decision {i} was not answered by on_failure");
            }

            var judgedLater = store.PendingVerdicts;
            output.WriteLine($"{judgedLater} of the five judged later");
            if (judgedLater == 0)
            {
                Assert.False(store.IsCircuitClosed, "the breaker was still closed after five decisions Redis never answered");
            }

            Assert.True(await VerdictsInAsync(store), "calls Redis never answered were still being judged 30 s later");
            Assert.False(store.IsCircuitClosed, "the breaker was still closed after five decisions Redis never answered, every one judged");
            Assert.Equal(0, store.LateFailures);

            // Twenty at once open it as well: the calls waiting behind the run Redis holds count with it, as before.
            var burst = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => burstStore.DecideOneAsync(Check)));
            Assert.All(burst, o => Assert.True(o.IsStoreFailure));
            Assert.True(await VerdictsInAsync(burstStore), "calls Redis never answered were still being judged 30 s later");
            Assert.False(burstStore.IsCircuitClosed, "a burst of twenty decisions Redis never answered left the breaker closed");
            Assert.Equal(0, burstStore.LateFailures);

            // Open: answered at once by on_failure, Redis not called.
            var failures = store.Failures;
            var open = store.DecideAsync(new[] { Check }, new StoreOutcome[1]);
            Assert.True(open.IsCompleted, "a decision waited on Redis while the breaker was open");
            await open;
            Assert.Equal(failures + 1, store.Failures);
        }
        finally
        {
            Signal(server.Pid, "CONT");
        }

        foreach (var message in logs.Lines())
        {
            output.WriteLine(message);
        }
    }

    /// <summary>Sends a signal to the redis-server this test started, by its PID.</summary>
    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(CultureInfo.InvariantCulture)])!;
        Assert.True(kill.WaitForExit(10_000));
        Assert.Equal(0, kill.ExitCode);
    }
}

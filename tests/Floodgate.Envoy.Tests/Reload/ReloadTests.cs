using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;

namespace Floodgate.Envoy.Tests;

/// <summary>Reloading: a good reload takes effect, a bad one keeps the last good configuration and says why.</summary>
public sealed class ReloadTests
{
    private const string Limit1 = "domain: r\ndescriptors:\n  - key: k\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n";
    private const string Limit5 = "domain: r\ndescriptors:\n  - key: k\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n";

    [Fact]
    public async Task A_good_reload_takes_effect_and_a_bad_one_keeps_the_last_good_configuration()
    {
        await using var server = await EnvoyServer.StartAsync(Limit1);
        Assert.Equal(1u, (await server.CallAsync("r", [("k", "v")])).Statuses[0].CurrentLimit.RequestsPerUnit);

        await File.WriteAllTextAsync(Path.Combine(server.Directory, "config.yaml"), Limit5);
        Assert.True(server.Provider.Reload());
        Assert.Equal(5u, (await server.CallAsync("r", [("k", "v")])).Statuses[0].CurrentLimit.RequestsPerUnit);

        await File.WriteAllTextAsync(Path.Combine(server.Directory, "broken.yaml"), "domain: x\ndescriptors:\n  - key: k\n    rate_limit: { unit: fortnight }\n");
        Assert.False(server.Provider.Reload());
        Assert.Equal("broken.yaml: line 4: invalid rate limit unit 'fortnight' in rate_limit of 'x.k'; use second, minute, hour, day, week, month or year", server.Provider.LastError);
        Assert.Equal(5u, (await server.CallAsync("r", [("k", "v")])).Statuses[0].CurrentLimit.RequestsPerUnit);

        // Degraded still serves: the last good configuration answers.
        var health = new Grpc.Health.V1.Health.HealthClient(server.Channel);
        var reply = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);

        File.Delete(Path.Combine(server.Directory, "broken.yaml"));
        Assert.True(server.Provider.Reload());
        Assert.Null(server.Provider.LastError);
    }

    [Fact]
    public async Task A_directory_without_domains_is_not_serving_and_skipped_entries_are_named_in_a_warning()
    {
        await using var server = await EnvoyServer.StartAsync(Limit1);
        var health = new Grpc.Health.V1.Health.HealthClient(server.Channel);
        var serving = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, serving.Status);

        File.Delete(Path.Combine(server.Directory, "config.yaml"));
        await File.WriteAllTextAsync(Path.Combine(server.Directory, "config.json"), "{}");
        Directory.CreateDirectory(Path.Combine(server.Directory, "nested"));
        Assert.True(server.Provider.Reload());
        Assert.Empty(server.Provider.Current.Domains);
        Assert.Equal(["config.json", "nested" + Path.DirectorySeparatorChar], server.Provider.Current.SkippedEntries);
        var reply = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.NotServing, reply.Status);
    }

    [Fact]
    public void The_provider_warns_of_skipped_entries_and_of_no_domain()
    {
        var directory = Path.Combine(Path.GetTempPath(), "floodgate-envoy-skip-" + Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(directory);
        try
        {
            File.WriteAllText(Path.Combine(directory, "rules.yml.bak"), Limit1);
            File.WriteAllText(Path.Combine(directory, ".hidden.yaml"), Limit1);
            var logger = new FakeLogger<EnvoyConfigProvider>();
            using var provider = new EnvoyConfigProvider(Options.Create(new EnvoyRateLimitOptions { ConfigDirectory = directory, WatchConfigDirectory = false }), new FakeTimeProvider(), logger);
            provider.Start();
            var warnings = logger.Collector.GetSnapshot().Where(r => r.Level == Microsoft.Extensions.Logging.LogLevel.Warning).Select(r => r.Message);
            Assert.Contains(warnings, w => w.Contains("rules.yml.bak", StringComparison.Ordinal) && !w.Contains(".hidden", StringComparison.Ordinal));
            Assert.Contains(warnings, w => w.Contains("declares no domain", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }

    [Fact]
    public async Task A_reload_of_a_cyclic_alias_keeps_the_last_good_configuration()
    {
        await using var server = await EnvoyServer.StartAsync(Limit1);
        await File.WriteAllTextAsync(Path.Combine(server.Directory, "cycle.yaml"), "domain: c\ndescriptors: &d [{key: a, descriptors: *d}]\n");
        Assert.False(server.Provider.Reload());
        Assert.StartsWith("cycle.yaml: line 2: ", server.Provider.LastError, StringComparison.Ordinal);
        Assert.Equal(1u, (await server.CallAsync("r", [("k", "v")])).Statuses[0].CurrentLimit.RequestsPerUnit);
    }

    [Fact]
    public async Task A_configmap_data_swap_arms_a_reload_and_an_editor_swap_file_does_not()
    {
        var directory = Path.Combine(Path.GetTempPath(), "floodgate-envoy-cm-" + Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(directory);
        try
        {
            await File.WriteAllTextAsync(Path.Combine(directory, "a.yaml"), Limit1);
            var debounce = TimeSpan.FromMilliseconds(100);
            var time = new FakeTimeProvider();
            using var provider = new EnvoyConfigProvider(Options.Create(new EnvoyRateLimitOptions { ConfigDirectory = directory, ReloadDebounce = debounce }), time);
            provider.Start();
            var reloads = 0;
            provider.Reloaded += (_, _) => Interlocked.Increment(ref reloads);
            var handled = new System.Collections.Concurrent.ConcurrentQueue<string?>();
            var swapSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var dataSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            provider.WatcherEventHandled += name =>
            {
                handled.Enqueue(name);
                if (name == ".a.yaml.swp")
                {
                    swapSeen.TrySetResult();
                }
                else if (name == "..data")
                {
                    dataSeen.TrySetResult();
                }
            };

            // An editor's swap file is not configuration: the watcher sees it, and no debounce window reloads.
            await File.WriteAllTextAsync(Path.Combine(directory, ".a.yaml.swp"), "x");
            await swapSeen.Task.WaitAsync(TimeSpan.FromSeconds(20));
            time.Advance(debounce);
            time.Advance(debounce);
            Assert.Equal(0, Volatile.Read(ref reloads));

            // A ConfigMap update swaps its ..data link: that alone must reload. It is moved in whole, as the kubelet
            // renames it in: written in place it raises two events, and the second, handled while the test advances the
            // clock, would postpone the debounced reload past the assertion.
            var staged = Path.Combine(Path.GetTempPath(), "floodgate-envoy-data-" + Guid.NewGuid().ToString("n"));
            await File.WriteAllTextAsync(staged, "x");
            File.Move(staged, Path.Combine(directory, "..data"));
            await dataSeen.Task.WaitAsync(TimeSpan.FromSeconds(20));
            time.Advance(debounce);
            Assert.Equal(1, Volatile.Read(ref reloads));
            Assert.Contains("..data", handled);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task The_directory_watcher_reloads_after_a_debounce_and_keeps_the_last_good_on_error()
    {
        var directory = Path.Combine(Path.GetTempPath(), "floodgate-envoy-watch-" + Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(directory);
        try
        {
            await File.WriteAllTextAsync(Path.Combine(directory, "a.yaml"), Limit1);
            var debounce = TimeSpan.FromMilliseconds(100);
            var time = new FakeTimeProvider();
            var options = Options.Create(new EnvoyRateLimitOptions { ConfigDirectory = directory, ReloadDebounce = debounce });
            using var provider = new EnvoyConfigProvider(options, time);
            provider.Start();
            Assert.Equal(["r"], provider.Current.Domains);

            var reloads = 0;
            var good = new TaskCompletionSource<EnvoyConfigReloadedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
            provider.Reloaded += (_, e) =>
            {
                Interlocked.Increment(ref reloads);
                good.TrySetResult(e);
            };

            // A burst of writes is one reload once the directory is quiet. The debounce runs on the fake clock, which
            // stands still until the watcher has handled every event of the burst: the events of one watcher arrive in
            // order, so the event of a file written last (not a configuration file) marks the end of the burst.
            var burstHandled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            provider.WatcherEventHandled += name =>
            {
                if (name == "burst-end.txt")
                {
                    burstHandled.TrySetResult();
                }
            };
            for (var i = 0; i < 5; i++)
            {
                await File.WriteAllTextAsync(Path.Combine(directory, "b.yaml"), $"domain: b\ndescriptors:\n  - key: k{i}\n");
            }

            await File.WriteAllTextAsync(Path.Combine(directory, "burst-end.txt"), "end");
            await burstHandled.Task.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(0, Volatile.Read(ref reloads));

            // One debounce window later (the timer's callback runs inside Advance) there is exactly one reload.
            time.Advance(debounce);
            Assert.Equal(1, Volatile.Read(ref reloads));
            var result = await good.Task.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.True(result.Success);
            Assert.Equal(["r", "b"], provider.Current.Domains);

            // Nothing more is written: further debounce windows pass without another reload.
            for (var i = 0; i < 5; i++)
            {
                time.Advance(debounce);
            }

            Assert.Equal(1, Volatile.Read(ref reloads));

            var bad = new TaskCompletionSource<EnvoyConfigReloadedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
            provider.Reloaded += (_, e) =>
            {
                if (!e.Success)
                {
                    bad.TrySetResult(e);
                }
            };
            await File.WriteAllTextAsync(Path.Combine(directory, "c.yaml"), "domain: r\n");
            var failure = await AdvanceUntil(time, debounce, bad.Task);
            Assert.Equal("c.yaml: line 1: duplicate domain 'r', already declared in a.yaml", failure.Error);
            Assert.Equal(["r", "b"], provider.Current.Domains);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task A_config_without_the_requested_domain_answers_ok_after_reload()
    {
        await using var server = await EnvoyServer.StartAsync(Limit1);
        await server.CallAsync("r", [("k", "v")]);
        Assert.Equal(Code.OverLimit, (await server.CallAsync("r", [("k", "v")])).OverallCode);
        await File.WriteAllTextAsync(Path.Combine(server.Directory, "config.yaml"), "domain: other\n");
        Assert.True(server.Provider.Reload());
        var response = await server.CallAsync("r", [("k", "v")]);
        Assert.Equal(Code.Ok, response.OverallCode);
        var status = Assert.Single(response.Statuses);
        Assert.Equal(Code.Ok, status.Code);
        Assert.Null(status.CurrentLimit);
        Assert.Equal(0u, status.LimitRemaining);
    }

    /// <summary>
    /// Moves the fake clock one debounce window at a time until <paramref name="task"/> completes, waiting for the
    /// watcher's events between steps; bounded at 20 s.
    /// </summary>
    private static async Task<T> AdvanceUntil<T>(FakeTimeProvider time, TimeSpan step, Task<T> task)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (!task.IsCompleted && deadline.Elapsed < TimeSpan.FromSeconds(20))
        {
            time.Advance(step);
            await Task.WhenAny(task, Task.Delay(TimeSpan.FromMilliseconds(20)));
        }

        return await task.WaitAsync(TimeSpan.FromSeconds(1));
    }
}

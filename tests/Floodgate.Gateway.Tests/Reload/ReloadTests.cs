using System.Net;
using System.Text.Json;
using Floodgate.AspNetCore;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Policy;
using Floodgate.Redis;

namespace Floodgate.Gateway.Tests;

public sealed class ReloadTests
{
    private const string Before = """
        upstream: {upstream}
        edge:
          - name: ip
            limit: 2/min
        """;

    [Fact]
    public async Task A_good_policy_change_is_applied_without_a_restart()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: true);
        var version = (await gate.ReadinessAsync()).GetProperty("version").GetString();
        Assert.Equal("\"ip\";q=2;w=60", (await gate.GetAsync("/a")).Header("RateLimit-Policy"));

        await gate.WritePolicyAsync(Before.Replace("2/min", "7/min", StringComparison.Ordinal));
        await WaitUntilAsync(async () => (await gate.ReadinessAsync()).GetProperty("version").GetString() != version);

        using var response = await gate.GetAsync("/a");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("\"ip\";q=7;w=60", response.Header("RateLimit-Policy"));
        Assert.Equal(1, (await gate.ReadinessAsync()).GetProperty("reloads").GetInt32());
    }

    [Fact]
    public async Task A_reload_the_gate_refuses_installs_no_new_identity_either()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            edge:
              - name: ip-flood
                limit: 10/min
            """);
        var version = gate.Host.Policy.Version;
        var next = PolicyLoader.Parse(TestGateway.Expand("""
            upstream: {upstream}
            {identity}
            user:
              - name: per-user
                limit: 5/min
            """, gate.Upstream, gate.Identity), "next.yaml");

        // A ban on a user rule gets past no loader; it stands for any policy the gate refuses after identity was built.
        var refused = Copy(next, bans: BanOnTheUserRule);
        var errors = gate.Host.Runtime.Apply(refused, "next.yaml");
        Assert.StartsWith("next.yaml: (policy): FloodgateOptions.Bans: 'per-user' is not an edge rule of the policy; only edge rules can ban.", errors.Single().ToString(), StringComparison.Ordinal);
        Assert.Equal(version, gate.Host.Policy.Version);

        // The token is not looked at: no identity resolver was installed.
        using (var unchecked_ = await gate.GetAsync("/a", "this.is-not-a.jwt"))
        {
            Assert.Equal(HttpStatusCode.OK, unchecked_.StatusCode);
        }

        Assert.Empty(gate.Host.Runtime.Apply(next, "next.yaml"));
        using var checked_ = await gate.GetAsync("/a", "this.is-not-a.jwt");
        Assert.Equal(HttpStatusCode.Unauthorized, checked_.StatusCode);
    }

    [Fact]
    public async Task A_reload_that_writes_the_store_and_identity_sections_another_way_keeps_the_store_and_the_identity_resolver()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
            user:
              - name: per-user
                limit: 2/min
            """, watch: false);
        var token = gate.Identity.CreateToken(now: gate.Time.GetUtcNow());
        Statuses.Expect([200], await gate.StatusesAsync(1, "/a", token));
        var discoveries = gate.Identity.DiscoveryRequests;

        // The same sections, in another order, layout and quoting, and the memory store's defaults written out.
        var rewritten = $$"""
            # Written another way.
            store: { kind: memory, max_entries: 1000000 }
            identity: { jwt: { audiences: [ "api" ], require_https: false, authority: "{{gate.Identity.Authority}}" } }
            user: [ { limit: 2/min, name: per-user } ]
            upstream: {upstream}
            """;
        await gate.WritePolicyAsync(rewritten);
        var version = gate.Host.Policy.Version;
        Assert.Empty(gate.Host.Reload());
        Assert.NotEqual(version, gate.Host.Policy.Version);

        // The store kept its count and was not replaced; the resolver, its discovery document and token cache.
        Statuses.Expect([200, 429], await gate.StatusesAsync(2, "/a", token));
        Assert.Equal(0, Assert.IsType<SwitchingStore>(gate.Host.Runtime.Store).Retiring);
        Assert.Equal(discoveries, gate.Identity.DiscoveryRequests);

        // A change the resolver must see rebuilds it: the new one has the new clock skew (a token that expired 20 s ago
        // passes the default 30 s, not 10 s). It keeps the key source, whose keys it does not fetch again.
        var resolver = gate.Host.Runtime.Identity;
        var late = gate.Identity.CreateToken(subject: "late", now: gate.Time.GetUtcNow() - TimeSpan.FromHours(1) - TimeSpan.FromSeconds(20));
        Statuses.Expect([200], await gate.StatusesAsync(1, "/a", late));
        await gate.WritePolicyAsync(rewritten.Replace("require_https: false,", "require_https: false, clock_skew: 10s,", StringComparison.Ordinal));
        Assert.Empty(gate.Host.Reload());
        Statuses.Expect([429], await gate.StatusesAsync(1, "/a", token));
        Statuses.Expect([401], await gate.StatusesAsync(1, "/a", late));
        Assert.NotSame(resolver, gate.Host.Runtime.Identity);
        Assert.Equal(discoveries, gate.Identity.DiscoveryRequests);
    }

    [Fact]
    public async Task A_bad_policy_change_is_refused_and_the_last_good_policy_stays()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: true);
        var version = (await gate.ReadinessAsync()).GetProperty("version").GetString();

        await gate.WritePolicyAsync(Before.Replace("2/min", "2/fortnight", StringComparison.Ordinal));
        await WaitUntilAsync(async () => (await gate.ReadinessAsync()).GetProperty("last_reload_error").ValueKind == System.Text.Json.JsonValueKind.String);

        var readiness = await gate.ReadinessAsync();
        Assert.Equal("ready", readiness.GetProperty("status").GetString());
        Assert.Equal(version, readiness.GetProperty("version").GetString());
        var error = readiness.GetProperty("last_reload_error").GetString()!;
        Assert.Contains("policy.yaml:4:12: edge[0].limit:", error, StringComparison.Ordinal);
        Assert.Contains("fortnight", error, StringComparison.Ordinal);

        // The old limit is still in force.
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/a"));
    }

    [Fact]
    public async Task A_configmap_update_swapping_the_data_link_is_reloaded()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: true);
        var directory = Path.GetDirectoryName(gate.PolicyPath)!;

        // The layout a Kubernetes ConfigMap volume has: policy.yaml -> ..data/policy.yaml, ..data -> ..v1.
        Directory.CreateDirectory(Path.Combine(directory, "..v1"));
        await File.WriteAllTextAsync(Path.Combine(directory, "..v1", "policy.yaml"), TestGateway.Expand(Before.Replace("2/min", "3/min", StringComparison.Ordinal), gate.Upstream, gate.Identity));
        File.CreateSymbolicLink(Path.Combine(directory, "..data"), "..v1");
        File.Delete(gate.PolicyPath);
        File.CreateSymbolicLink(gate.PolicyPath, Path.Combine("..data", "policy.yaml"));
        await WaitUntilAsync(async () => (await gate.GetAsync("/a")).Header("RateLimit-Policy") == "\"ip\";q=3;w=60");

        // The kubelet's update: the new version in a directory of its own, then ..data swapped by one rename. No event
        // names policy.yaml.
        Directory.CreateDirectory(Path.Combine(directory, "..v2"));
        await File.WriteAllTextAsync(Path.Combine(directory, "..v2", "policy.yaml"), TestGateway.Expand(Before.Replace("2/min", "7/min", StringComparison.Ordinal), gate.Upstream, gate.Identity));
        File.CreateSymbolicLink(Path.Combine(directory, "..data_tmp"), "..v2");
        RenameOver(Path.Combine(directory, "..data_tmp"), Path.Combine(directory, "..data"));

        await WaitUntilAsync(async () => (await gate.GetAsync("/a")).Header("RateLimit-Policy") == "\"ip\";q=7;w=60");
        Assert.Equal(2, (await gate.ReadinessAsync()).GetProperty("reloads").GetInt32());
    }

    [Fact]
    public async Task A_rotated_key_file_is_put_in_force_by_a_reload_and_the_removed_key_no_longer_passes()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: true);
        var keyFile = Path.Combine(Path.GetDirectoryName(gate.PolicyPath)!, "keys", "signing.pem");
        Directory.CreateDirectory(Path.GetDirectoryName(keyFile)!);
        await File.WriteAllTextAsync(keyFile, gate.Identity.PublicKeyPem(TestIdentityProvider.RsaKeyId));
        await gate.WriteStaticKeyPolicyAsync(keyFile);
        // In force once a request without a token is refused (before, no token was looked at).
        await WaitUntilAsync(async () => (await gate.GetAsync("/a")).StatusCode == HttpStatusCode.Unauthorized);
        var version = gate.Host.Policy.Version;
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/a", gate.Identity.CreateToken(TestIdentityProvider.RsaKeyId, now: gate.Time.GetUtcNow()))).StatusCode);

        // The key file alone changes, as a secret's rotation does: the policy file is untouched.
        gate.Identity.AddRsaKey("rsa-next", publish: false);
        await File.WriteAllTextAsync(keyFile, gate.Identity.PublicKeyPem("rsa-next"));
        await WaitUntilAsync(() => Task.FromResult(gate.Host.Policy.Version != version));

        Assert.Equal(HttpStatusCode.Unauthorized, (await gate.GetAsync("/a", gate.Identity.CreateToken(TestIdentityProvider.RsaKeyId, subject: "bob", now: gate.Time.GetUtcNow()))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/a", gate.Identity.CreateToken("rsa-next", now: gate.Time.GetUtcNow()))).StatusCode);
    }

    [Fact]
    public async Task A_key_file_a_refused_policy_named_is_picked_up_when_it_appears()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: true);
        var keyFile = Path.Combine(Path.GetDirectoryName(gate.PolicyPath)!, "later", "signing.pem");
        Directory.CreateDirectory(Path.GetDirectoryName(keyFile)!);
        await gate.WriteStaticKeyPolicyAsync(keyFile);
        await WaitUntilAsync(async () => (await gate.ReadinessAsync()).GetProperty("last_reload_error") is { ValueKind: JsonValueKind.String } error
            && error.GetString()!.Contains("does not exist", StringComparison.Ordinal));

        // The policy file is not touched again: the key file appearing is what puts the policy in force.
        await File.WriteAllTextAsync(keyFile, gate.Identity.PublicKeyPem(TestIdentityProvider.RsaKeyId));
        await WaitUntilAsync(async () => (await gate.ReadinessAsync()).GetProperty("reloads").GetInt32() == 1);
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/a", gate.Identity.CreateToken(TestIdentityProvider.RsaKeyId, now: gate.Time.GetUtcNow()))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await gate.GetAsync("/a")).StatusCode);
    }

    [Fact]
    public async Task A_refused_edit_undone_clears_the_reload_error()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: false);
        await gate.WritePolicyAsync(Before.Replace("2/min", "2/fortnight", StringComparison.Ordinal));
        Assert.NotEmpty(gate.Host.Reload());
        Assert.Equal(JsonValueKind.String, (await gate.ReadinessAsync()).GetProperty("last_reload_error").ValueKind);

        await gate.WritePolicyAsync(Before);
        Assert.Empty(gate.Host.Reload());
        var readiness = await gate.ReadinessAsync();
        Assert.Equal(JsonValueKind.Null, readiness.GetProperty("last_reload_error").ValueKind);
        Assert.Equal(0, readiness.GetProperty("reloads").GetInt32());
    }

    [Fact]
    public async Task A_reload_whose_routes_the_proxy_refuses_is_refused_whole_and_the_old_rules_and_routes_stay()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: false);
        var version = gate.Host.Policy.Version;
        await gate.WritePolicyAsync("""
            routes:
              - id: api
                path: "/api/{**rest}"
                methods: [GET, get]
                destinations: ["{upstream}"]
            edge:
              - name: ip
                limit: 7/min
            """);

        var error = Assert.Single(gate.Host.Reload()).ToString();
        Assert.Contains("routes: route 'api': ", error, StringComparison.Ordinal);
        Assert.Contains("GET", error, StringComparison.Ordinal);
        Assert.Equal(version, gate.Host.Policy.Version);

        // The rules did not change under the old routes: the whole reload was refused.
        using var response = await gate.GetAsync("/a");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("\"ip\";q=2;w=60", response.Header("RateLimit-Policy"));
    }

    [Fact]
    public async Task Routes_and_clusters_reload_too()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: false);
        await gate.WritePolicyAsync("""
            routes:
              - id: only-api
                path: "/api/{**rest}"
                destinations: ["{upstream}"]
            """);

        Assert.Empty(gate.Host.Reload());

        Assert.Equal(HttpStatusCode.NotFound, (await gate.GetAsync("/a")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/api/a")).StatusCode);
    }

    [Fact]
    public async Task A_store_change_is_applied_by_a_reload_and_the_replaced_store_retires()
    {
        using var redis = RedisServer.Start();
        await using var gate = await TestGateway.StartAsync(Before, watch: false);
        var store = Assert.IsType<SwitchingStore>(gate.Host.Runtime.Store);
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/a"));
        Assert.Equal("memory", (await gate.ReadinessAsync()).GetProperty("store").GetString());

        await gate.WritePolicyAsync(
            $"store: {{ kind: redis, configuration: \"{redis.Configuration}\", on_failure: closed, timeout: 2s, key_prefix: switched }}\n" + Before);
        Assert.Empty(gate.Host.Reload());

        var readiness = await gate.ReadinessAsync();
        Assert.Equal("redis", readiness.GetProperty("store").GetString());
        Assert.Equal("reachable", readiness.GetProperty("store_status").GetString());
        Assert.Equal(1, store.Retiring);

        // The budget is kept in Redis from now on; the memory store's count does not carry over.
        Statuses.Expect([200, 200], await gate.StatusesAsync(2, "/a"));
        Assert.NotEmpty(redis.Cli("--scan", "--pattern", "switched:*"));

        // Decisions depend on Redis now: without it, on_failure: closed answers 503 (while under the limit: a denial
        // would be remembered by the over-limit cache and answered without Redis).
        redis.Kill();
        Statuses.Expect([503], await gate.StatusesAsync(1, "/a"));

        // And back to the memory store, which no longer needs Redis at all.
        await gate.WritePolicyAsync(Before);
        Assert.Empty(gate.Host.Reload());
        Assert.Equal("memory", (await gate.ReadinessAsync()).GetProperty("store").GetString());
        Assert.Equal(2, store.Retiring);
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/a"));
    }

    [Fact]
    public async Task A_replaced_store_stays_as_long_as_the_longest_lease_granted_on_it_could_live()
    {
        const string Slow = """
            upstream: {upstream}
            service:
              - name: slow
                match: { route: "/slow/{id}" }
                concurrency: 2
                lease_timeout: 10m
            """;
        await using var gate = await TestGateway.StartAsync(Slow, watch: false);
        var store = Assert.IsType<SwitchingStore>(gate.Host.Runtime.Store);

        // Leases from now on time out after a minute; those granted before may still live ten.
        await gate.WritePolicyAsync(Slow.Replace("10m", "1m", StringComparison.Ordinal));
        Assert.Empty(gate.Host.Reload());
        await gate.WritePolicyAsync("store: { kind: memory, max_entries: 5000 }\n" + Slow.Replace("10m", "1m", StringComparison.Ordinal));
        Assert.Empty(gate.Host.Reload());
        Assert.Equal(1, store.Retiring);

        gate.Time.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromSeconds(1));
        Assert.Equal(1, store.Retiring);
        gate.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0, store.Retiring);

        // The store that replaced it answers.
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/slow/1")).StatusCode);
    }

    [Fact]
    public async Task A_reload_whose_store_cannot_be_opened_is_refused_and_the_store_in_force_stays()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: false);
        Statuses.Expect([200], await gate.StatusesAsync(1, "/a"));
        var current = gate.Host.Policy;

        // The loader refuses this configuration string; a policy built without it stands for any store that fails to open.
        var unopenable = Copy(current, version: "next", store: new RedisStoreOptions { Configuration = "127.0.0.1:1,nosuchoption=1" });
        var error = Assert.Single(gate.Host.Runtime.Apply(unopenable, "next.yaml")).ToString();
        Assert.StartsWith("next.yaml: store: ", error, StringComparison.Ordinal);
        Assert.Contains("nosuchoption", error, StringComparison.Ordinal);

        Assert.Equal(current.Version, gate.Host.Policy.Version);
        var readiness = await gate.ReadinessAsync();
        Assert.Equal("memory", readiness.GetProperty("store").GetString());
        Assert.Equal(0, Assert.IsType<SwitchingStore>(gate.Host.Runtime.Store).Retiring);

        // The memory store kept its count.
        Statuses.Expect([200, 429], await gate.StatusesAsync(2, "/a"));
    }

    [Fact]
    public async Task A_reload_refused_after_its_store_was_opened_closes_that_store()
    {
        using var redis = RedisServer.Start();
        await using var gate = await TestGateway.StartAsync(Before, watch: false);
        var opened = Track(gate.Host.Runtime);
        var next = PolicyLoader.Parse(TestGateway.Expand("""
            upstream: {upstream}
            user:
              - name: per-user
                limit: 5/min
            """, gate.Upstream, gate.Identity), "next.yaml");

        // The store opens before the gate takes the rules; a ban on a user rule is then refused by the gate.
        var refused = Copy(next, bans: BanOnTheUserRule, store: new RedisStoreOptions { Configuration = redis.Configuration });
        Assert.NotEmpty(gate.Host.Runtime.Apply(refused, "next.yaml"));

        var store = Assert.Single(opened);
        Assert.Equal("redis", store.Kind);
        Assert.Equal(1, store.Closed);
        Assert.Equal("memory", (await gate.ReadinessAsync()).GetProperty("store").GetString());
    }

    [Fact]
    public async Task A_reload_that_ends_after_the_gateway_stopped_closes_its_new_store_and_throws_nothing()
    {
        using var redis = RedisServer.Start();
        await using var gate = await TestGateway.StartAsync(Before, watch: false);
        // The host stops while the reload is opening its store, as when it is stopped during a reload of a changed file.
        var opened = Track(gate.Host.Runtime, afterOpen: () => Task.Run(async () => await gate.Host.DisposeAsync()).GetAwaiter().GetResult());
        var next = PolicyLoader.Parse(
            TestGateway.Expand($"store: {{ kind: redis, configuration: \"{redis.Configuration}\" }}\n" + Before, gate.Upstream, gate.Identity), "next.yaml");

        _ = gate.Host.Runtime.Apply(next, "next.yaml");

        var store = Assert.Single(opened);
        Assert.Equal("redis", store.Kind);
        Assert.Equal(1, store.Closed);
    }

    /// <summary>A ban on the user rule <c>per-user</c>: no loader lets that through, and the gate refuses it after the identity resolver and the store were built.</summary>
    private static readonly Dictionary<string, TimeSpan> BanOnTheUserRule = new() { ["per-user"] = TimeSpan.FromSeconds(10) };

    /// <summary><paramref name="policy"/> with another version, bans or store: what no loader would produce, built directly.</summary>
    private static GatewayPolicy Copy(GatewayPolicy policy, string? version = null, IReadOnlyDictionary<string, TimeSpan>? bans = null, RedisStoreOptions? store = null) => new()
    {
        Source = policy.Source,
        Version = version ?? policy.Version,
        Floodgate = bans is null ? policy.Floodgate : WithBans(policy.Floodgate, bans),
        Routes = policy.Routes,
        Clusters = policy.Clusters,
        Jwt = policy.Jwt,
        KeyFiles = policy.KeyFiles,
        IdentityVersion = policy.IdentityVersion,
        MemoryStore = store is null ? policy.MemoryStore : null,
        RedisStore = store ?? policy.RedisStore,
    };

    /// <summary><paramref name="options"/> with <paramref name="bans"/> in place of its own.</summary>
    private static FloodgateOptions WithBans(FloodgateOptions options, IReadOnlyDictionary<string, TimeSpan> bans)
    {
        var copy = new FloodgateOptions
        {
            Policy = options.Policy,
            Anonymous = options.Anonymous,
            ForwardedHeader = options.ForwardedHeader,
            Headers = options.Headers,
            SubjectClaim = options.SubjectClaim,
            PlanClaim = options.PlanClaim,
        };
        foreach (var range in options.TrustedProxies)
        {
            copy.TrustedProxies.Add(range);
        }

        foreach (var (rule, ban) in bans)
        {
            copy.Bans[rule] = ban;
        }

        return copy;
    }

    /// <summary>Records every store the runtime's reloads open, and how often each is closed.</summary>
    private static List<OpenedStoreRecord> Track(GatewayRuntime runtime, Action? afterOpen = null)
    {
        var opened = new List<OpenedStoreRecord>();
        var open = runtime.StoreOpener;
        runtime.StoreOpener = (policy, path) =>
        {
            var store = open(policy, path);
            var record = new OpenedStoreRecord(store.Kind, store.Owned);
            opened.Add(record);
            afterOpen?.Invoke();
            return store with { Owned = record };
        };
        return opened;
    }

    private sealed class OpenedStoreRecord(string kind, IDisposable? owned) : IDisposable
    {
        public string Kind { get; } = kind;

        public int Closed { get; private set; }

        public void Dispose()
        {
            Closed++;
            owned?.Dispose();
        }
    }

    /// <summary>rename(2) of a link over another, as the kubelet swaps ..data (File.Move follows a link to a directory).</summary>
    private static void RenameOver(string source, string destination)
    {
        using var mv = System.Diagnostics.Process.Start("mv", ["-f", "-T", source, destination]);
        Assert.True(mv.WaitForExit(10_000), "mv did not finish within 10 s");
        Assert.Equal(0, mv.ExitCode);
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition) =>
        Assert.True(await Eventually.HoldsAsync(condition, TimeSpan.FromSeconds(10)), "The condition did not hold within 10 seconds.");
}

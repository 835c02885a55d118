using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Http;
using Floodgate.Gateway.Cli;
using Floodgate.Gateway.Policy;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Gateway.Tests;

public sealed class PolicyTests
{
    [Fact]
    public void The_quickstart_policy_is_valid()
    {
        var policy = PolicyLoader.Load(Path.Combine(RepositoryRoot(), "samples", "quickstart.yaml"));
        Assert.Equal(5, policy.Floodgate.Policy.Rules.Count);
        Assert.Equal(TimeSpan.FromSeconds(30), policy.Floodgate.Bans["ip-flood"]);
        Assert.NotNull(policy.Jwt);
    }

    [Fact]
    public void A_redis_configuration_or_key_prefix_the_store_would_refuse_is_refused_at_load_with_its_line()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            store:
              kind: redis
              configuration: "localhost:6379,password=hunter2,nosuchoption=1"
              key_prefix: "gw:edge"
            """, "bad.yaml"));

        var messages = error.Errors.Select(e => e.ToString()).ToList();
        Assert.Equal(2, messages.Count);
        Assert.StartsWith("bad.yaml:4:18: store.configuration: is not a Redis configuration: ", messages[0], StringComparison.Ordinal);
        Assert.Contains("nosuchoption", messages[0], StringComparison.Ordinal);
        // The message reaches logs and /readyz: the string, and the password in it, are not repeated.
        Assert.DoesNotContain("hunter2", messages[0], StringComparison.Ordinal);
        Assert.StartsWith("bad.yaml:5:15: store.key_prefix: The key prefix (KeyPrefix) 'gw:edge' must be 1 to ", messages[1], StringComparison.Ordinal);
        Assert.EndsWith("without braces, colons or spaces.", messages[1], StringComparison.Ordinal);
    }

    [Fact]
    public void A_field_of_the_other_kind_of_store_is_refused_rather_than_ignored()
    {
        // Without kind: redis the store is memory: each replica would count alone, whatever configuration says.
        var forgotten = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            store:
              configuration: "redis:6379"
              on_failure: closed
            """, "p.yaml"));
        Assert.Equal(
            [
                "p.yaml:3:18: store.configuration: applies to the redis store only, and this store is memory (the default kind): set kind: redis, or remove it.",
                "p.yaml:4:15: store.on_failure: applies to the redis store only, and this store is memory (the default kind): set kind: redis, or remove it.",
            ],
            forgotten.Errors.Select(e => e.ToString()));

        // A misspelt kind is the one error: the fields are not known to be misplaced.
        var misspelt = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            store: { kind: redsi, configuration: "redis:6379" }
            """, "p.yaml"));
        Assert.StartsWith("p.yaml:2:16: store.kind: 'redsi' is not one of: ", Assert.Single(misspelt.Errors).ToString(), StringComparison.Ordinal);

        var written = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            store: { kind: memory, timeout: 20ms }
            """, "p.yaml"));
        Assert.Equal("p.yaml:2:33: store.timeout: applies to the redis store only, and this store is memory: set kind: redis, or remove it.", Assert.Single(written.Errors).ToString());

        // An empty field says nothing, so it is not refused.
        Assert.Equal(StoreKind.Memory, PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            store: { kind: memory, configuration: }
            """, "p.yaml").StoreKind);

        var misplaced = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            store: { kind: redis, configuration: "redis:6379", max_entries: 10 }
            """, "p.yaml"));
        Assert.Equal("p.yaml:2:65: store.max_entries: applies to the memory store only, and this store is redis: set kind: memory, or remove it.", Assert.Single(misplaced.Errors).ToString());
    }

    [Fact]
    public void A_rule_s_leased_slice_is_refused_with_the_memory_store()
    {
        // Without a store section the store is memory, which decides in process: a slice would save nothing, and do nothing.
        const string Rule = """
            upstream: http://127.0.0.1:5000
            user:
              - name: u
                limit: 100/min
                leased_slice: 10
            """;
        var implicitMemory = Assert.Throws<PolicyException>(() => PolicyLoader.Parse(Rule, "p.yaml"));
        Assert.Equal(
            "p.yaml:5:19: user[0].leased_slice: applies to the redis store only (the memory store decides in process, with no round trip to save), and the store is memory (the default kind): set kind: redis in the store section, or remove it.",
            Assert.Single(implicitMemory.Errors).ToString());

        var namedMemory = Assert.Throws<PolicyException>(() => PolicyLoader.Parse(Rule + "\nstore: { kind: memory }\n", "p.yaml"));
        Assert.StartsWith("p.yaml:5:19: user[0].leased_slice: applies to the redis store only (", Assert.Single(namedMemory.Errors).ToString(), StringComparison.Ordinal);
        Assert.Contains("and the store is memory: set kind: redis in the store section", namedMemory.Errors[0].Message, StringComparison.Ordinal);

        // A misspelt kind is the one error: the slice is not known to be misplaced.
        var misspelt = Assert.Throws<PolicyException>(() => PolicyLoader.Parse(Rule + "\nstore: { kind: redsi }\n", "p.yaml"));
        Assert.Equal("store.kind", Assert.Single(misspelt.Errors).Field);

        var redis = PolicyLoader.Parse(Rule + "\nstore: { kind: redis, configuration: \"localhost:6379\" }\n", "p.yaml");
        Assert.Equal(10, redis.Floodgate.Policy.Rules.Single().Limit!.LeasedSlice);
    }

    [Fact]
    public void A_rule_s_on_failure_is_refused_with_the_memory_store()
    {
        // The memory store never fails: a rule's failure mode would never apply.
        const string Rule = """
            upstream: http://127.0.0.1:5000
            global:
              - name: g
                limit: 100/s
                on_failure: closed
            """;
        var implicitMemory = Assert.Throws<PolicyException>(() => PolicyLoader.Parse(Rule, "p.yaml"));
        Assert.Equal(
            "p.yaml:5:17: global[0].on_failure: applies to the redis store only (the memory store never fails), and the store is memory (the default kind): set kind: redis in the store section, or remove it.",
            Assert.Single(implicitMemory.Errors).ToString());

        var namedMemory = Assert.Throws<PolicyException>(() => PolicyLoader.Parse(Rule + "\nstore: { kind: memory, max_entries: 1000 }\n", "p.yaml"));
        Assert.Equal(
            "p.yaml:5:17: global[0].on_failure: applies to the redis store only (the memory store never fails), and the store is memory: set kind: redis in the store section, or remove it.",
            Assert.Single(namedMemory.Errors).ToString());

        // An empty field says nothing, so it is not refused.
        Assert.Single(PolicyLoader.Parse(Rule.Replace("on_failure: closed", "on_failure:", StringComparison.Ordinal), "p.yaml").Floodgate.Policy.Rules);

        var redis = PolicyLoader.Parse(Rule + "\nstore: { kind: valkey, configuration: \"localhost:6379\" }\n", "p.yaml");
        Assert.Equal(StoreFailureMode.Closed, redis.Floodgate.Policy.Rules.Single().OnStoreFailure);
    }

    [Fact]
    public void Every_field_is_read()
    {
        var policy = PolicyLoader.Parse("""
            routes:
              - id: orders
                path: "/orders/{id}"
                methods: [GET, POST]
                hosts: [api.example.com]
                cluster: app
            clusters:
              app:
                destinations: { a: "http://127.0.0.1:5001", b: "http://127.0.0.1:5002" }
                load_balancing: round_robin
            store: { kind: redis, configuration: "localhost:6379", on_failure: local, replicas: 3, timeout: 20ms, key_prefix: gw }
            identity:
              jwt:
                jwks_url: https://idp.example.com/jwks
                issuer: https://idp.example.com
                audiences: [api]
                subject: [sub, account_id]
                plan: tier
                default_plan: free
                clock_skew: 10s
                algorithms: [RS256, ES256]
              anonymous: reject
            plans:
              free: { per_user: 300/min, burst: 50 }
            edge:
              - name: ip
                match: { path: [/api/**, /v2/**], host: "*.example.com", headers: { x-tenant: "*" } }
                key: [client_ip]
                limit: 2000/min
                ban: 1m
            user:
              - name: per-user
                limit: plan.per_user
              - name: monthly
                algorithm: quota
                limit: 50000/month
                time_zone: Europe/Paris
                cost: 2
                mode: shadow
              - name: window
                algorithm: sliding_window
                limit: 10/s
            service:
              - name: search
                match: { route: "/search/{query}" }
                concurrency: 200
                lease_timeout: 10s
            global:
              - name: all
                algorithm: fixed_window
                limit: 100k/s
                on_failure: closed
            trusted_proxies: [10.0.0.0/8, 192.168.1.1]
            headers: { ietf: false, legacy: true }
            ipv6_prefix: 56
            """, "p.yaml");

        Assert.Equal(["orders"], policy.Routes.Select(r => r.RouteId));
        Assert.Equal(2, policy.Clusters.Single().Destinations!.Count);
        Assert.Equal("RoundRobin", policy.Clusters.Single().LoadBalancingPolicy);
        Assert.Equal(StoreKind.Redis, policy.StoreKind);
        Assert.Equal(StoreFailureMode.Local, policy.RedisStore!.FailureMode);
        Assert.Equal(TimeSpan.FromMilliseconds(20), policy.RedisStore.Timeout);
        Assert.Equal(["sub", "account_id"], policy.Jwt!.SubjectClaims);
        Assert.Equal(AspNetCore.AnonymousPolicy.Reject, policy.Floodgate.Anonymous);
        Assert.Equal(TimeSpan.FromMinutes(1), policy.Floodgate.Bans["ip"]);
        var rules = policy.Floodgate.Policy;
        Assert.Equal(50, rules.Rules.Single(r => r.Name == "per-user").LimitFor("free")!.Burst);
        var monthly = rules.Rules.Single(r => r.Name == "monthly");
        Assert.Equal(LimitAlgorithm.Quota, monthly.Limit!.Algorithm);
        Assert.Equal(RuleMode.Shadow, monthly.Mode);
        Assert.Equal(2, monthly.Cost);
        Assert.Equal(LimitAlgorithm.Concurrency, rules.Rules.Single(r => r.Name == "search").Limit!.Algorithm);
        Assert.Equal(100_000, rules.Rules.Single(r => r.Name == "all").Limit!.Amount);
        Assert.Equal(StoreFailureMode.Closed, rules.Rules.Single(r => r.Name == "all").OnStoreFailure);
        Assert.Equal(StoreFailureMode.Default, monthly.OnStoreFailure);
        Assert.Equal(56, rules.Ipv6PrefixLength);
        Assert.False(policy.Floodgate.Headers.Ietf);
        Assert.True(policy.Floodgate.Headers.Legacy);
        Assert.Equal(2, rules.Rules.Single(r => r.Name == "ip").Match.Paths.Count);
    }

    [Fact]
    public void Errors_name_file_line_and_field()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            plans:
              free: { per_user: 5/mn }
            user:
              - name: a
                limit: plan.per_user
                ban: 10s
              - name: b
                limt: 10/s
            trusted_proxies: [10.0.0.0/33]
            global:
              - name: c
                limit: 10/s
                on_failure: sometimes
            """, "bad.yaml"));

        var messages = error.Errors.Select(e => e.ToString()).ToList();
        Assert.Contains(messages, m => m.StartsWith("bad.yaml:3:21: plans.free.per_user: '5/mn' is not a rate", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("bad.yaml:7:10: user[0].ban: only edge rules can ban", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("bad.yaml:9:5: user[1].limt: unknown field", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("bad.yaml:10:19: trusted_proxies:", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("bad.yaml:14:17: global[0].on_failure:", StringComparison.Ordinal) && m.Contains("closed", StringComparison.Ordinal));
    }

    [Fact]
    public void Forwarded_header_names_the_one_header_read_and_is_validated()
    {
        Assert.Equal(ForwardedHeader.XForwardedFor, PolicyLoader.Parse("upstream: http://127.0.0.1:5000\n", "p.yaml").Floodgate.ForwardedHeader);
        Assert.Equal(ForwardedHeader.Forwarded, PolicyLoader.Parse("upstream: http://127.0.0.1:5000\nforwarded_header: forwarded\n", "p.yaml").Floodgate.ForwardedHeader);
        Assert.Equal(ForwardedHeader.XForwardedFor, PolicyLoader.Parse("upstream: http://127.0.0.1:5000\nforwarded_header: X-Forwarded-For\n", "p.yaml").Floodgate.ForwardedHeader);
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("upstream: http://127.0.0.1:5000\nforwarded_header: x-real-ip\n", "bad.yaml"));
        Assert.Equal("bad.yaml:2:19: forwarded_header: 'x-real-ip' is not one of: x-forwarded-for, forwarded.", error.Errors.Single().ToString());
    }

    [Fact]
    public void The_reset_header_s_format_is_read_and_validated()
    {
        Assert.Equal(RateLimitResetFormat.DeltaSeconds, PolicyLoader.Parse("upstream: http://127.0.0.1:5000\nheaders: { legacy: true }\n", "p.yaml").Floodgate.Headers.LegacyReset);
        Assert.Equal(RateLimitResetFormat.UnixSeconds, PolicyLoader.Parse("upstream: http://127.0.0.1:5000\nheaders: { legacy: true, legacy_reset: epoch }\n", "p.yaml").Floodgate.Headers.LegacyReset);
        Assert.Equal(RateLimitResetFormat.DeltaSeconds, PolicyLoader.Parse("upstream: http://127.0.0.1:5000\nheaders: { x_ratelimit: true, legacy_reset: seconds }\n", "p.yaml").Floodgate.Headers.LegacyReset);

        var unknown = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("upstream: http://127.0.0.1:5000\nheaders: { legacy: true, legacy_reset: unix }\n", "bad.yaml"));
        Assert.Equal("bad.yaml:2:40: headers.legacy_reset: 'unix' is not one of: seconds, epoch.", unknown.Errors.Single().ToString());

        // Without the legacy headers there is no X-RateLimit-Reset: the format is a mistake, not a no-op.
        var orphan = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("upstream: http://127.0.0.1:5000\nheaders:\n  legacy_reset: epoch\n", "bad.yaml"));
        Assert.StartsWith("bad.yaml:3:17: headers.legacy_reset: sets the format of X-RateLimit-Reset, which only legacy: true sends", orphan.Errors.Single().ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Edge_rules_that_need_the_identity_are_refused()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            plans:
              free: { per_user: 5/min }
            edge:
              - name: a
                key: [subject]
                limit: 10/s
              - name: b
                key: [client_ip, claim:tenant]
                limit: 10/s
              - name: c
                key: [plan]
                limit: 10/s
              - name: d
                limit: plan.per_user
            user:
              - name: e
                key: [subject, claim:tenant, plan]
                limit: plan.per_user
            """, "edge.yaml"));

        var messages = error.Errors.Select(e => e.ToString()).ToList();
        Assert.Equal(4, messages.Count);
        Assert.StartsWith("edge.yaml:6:11: edge[0].key: an edge rule cannot key on 'subject'", messages[0], StringComparison.Ordinal);
        Assert.StartsWith("edge.yaml:9:22: edge[1].key: an edge rule cannot key on 'claim:tenant'", messages[1], StringComparison.Ordinal);
        Assert.StartsWith("edge.yaml:12:11: edge[2].key: an edge rule cannot key on 'plan'", messages[2], StringComparison.Ordinal);
        Assert.StartsWith("edge.yaml:15:12: edge[3].limit: an edge rule cannot take its limit from a plan ('plan.per_user')", messages[3], StringComparison.Ordinal);
    }

    [Fact]
    public void Check_refuses_a_rule_name_that_is_not_printable_ascii_with_line_and_field()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-check-").FullName;
        try
        {
            var bad = Path.Combine(directory, "bad.yaml");
            File.WriteAllText(bad, "upstream: http://127.0.0.1:5000\nuser:\n  - name: über-api\n    limit: 10/s\n");
            var (code, _, errors) = Run("check", bad);
            Assert.Equal(1, code);
            Assert.Contains("bad.yaml:3:11: user[0].name: 'über-api' is sent in the RateLimit and RateLimit-Policy headers: use printable ASCII (0x20 to 0x7E) without '\"' or '\\'.", errors, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void A_second_yaml_document_is_refused_at_its_line_rather_than_dropped()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            ---
            edge:
              - name: ip
                limit: 10/min
            """, "two.yaml"));
        Assert.Equal("two.yaml:3:1: (file): holds more than one YAML document ('---'); a policy is one document.", error.Errors.Single().ToString());
    }

    [Fact]
    public void A_list_or_mapping_where_a_name_belongs_is_an_error_with_its_line_not_a_crash()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            plans:
              ? [a, b]
              : { per_user: 10/min }
              pro: { ? { x: 1 } : 10/min }
            clusters:
              ? [c]
              : { destinations: ["http://127.0.0.1:5001"] }
            """, "names.yaml"));
        Assert.Equal(
            [
                "names.yaml:3:5: plans: a name here must be a plain value, not a list or a mapping.",
                "names.yaml:5:12: plans.pro: a name here must be a plain value, not a list or a mapping.",
                "names.yaml:7:5: clusters: a name here must be a plain value, not a list or a mapping.",
            ],
            error.Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void Route_and_cluster_ids_the_proxy_would_find_twice_are_refused_with_their_lines()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            clusters:
              upstream: { destinations: ["http://127.0.0.1:5001"] }
              x-cluster: { destinations: ["http://127.0.0.1:5002"] }
            routes:
              - id: a
                path: /a
                cluster: upstream
              - id: A
                path: /b
                cluster: upstream
              - id: x
                path: /x
                destinations: ["http://127.0.0.1:5003"]
            """, "ids.yaml"));
        Assert.Equal(
            [
                "ids.yaml:1:11: upstream: the upstream shortcut makes a route and a cluster named 'upstream', and that is also clusters.upstream; rename it, or list the upstream as a route.",
                "ids.yaml:9:9: routes[1].id: 'A' is also the id of routes[0]; route ids must be unique (case-insensitive).",
                "ids.yaml:12:5: routes[2].destinations: a route's destinations make a cluster named 'x-cluster', and that is also clusters.x-cluster; rename one.",
            ],
            error.Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void A_default_plan_under_jwt_and_a_slice_over_the_burst_are_reported_at_their_own_lines_in_one_line_each()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            default_plan: free
            identity:
              jwt:
                secret: "0123456789abcdef0123456789abcdef0123"
                issuer: me
                audiences: [api]
                algorithms: [HS256]
                default_plan: frree
            plans:
              free: { per_user: 10/min }
            user:
              - name: u
                limit: 10/min
                leased_slice: 1000
            store: { kind: redis, configuration: "localhost:6379" }
            """, "p.yaml"));
        Assert.Equal(
            [
                "p.yaml:9:19: identity.jwt.default_plan: 'frree' is not a plan; the plans are: free.",
                "p.yaml:15:19: user[0].leased_slice: slice ('1000') must be less than or equal to '10'.",
            ],
            error.Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void Yaml_syntax_errors_are_located()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("upstream: [http://a\nedge: {", "syntax.yaml"));
        Assert.StartsWith("syntax.yaml:", error.Errors.Single().ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Check_exits_zero_for_a_valid_policy_and_non_zero_with_every_error()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-check-").FullName;
        try
        {
            var good = Path.Combine(directory, "good.yaml");
            var bad = Path.Combine(directory, "bad.yaml");
            File.WriteAllText(good, "upstream: http://127.0.0.1:5000\nedge:\n  - name: ip\n    limit: 10/s\n");
            File.WriteAllText(bad, "upstream: http://127.0.0.1:5000\nedge:\n  - name: ip\n    limit: 10/sec0\n");

            var (code, output, _) = Run("check", good);
            Assert.Equal(0, code);
            Assert.Contains("OK", output, StringComparison.Ordinal);

            (code, _, var errors) = Run("check", bad);
            Assert.Equal(1, code);
            Assert.Contains("bad.yaml:4:12: edge[0].limit:", errors, StringComparison.Ordinal);

            // What the proxy itself would refuse, check refuses too.
            var proxy = Path.Combine(directory, "proxy.yaml");
            File.WriteAllText(proxy, "routes:\n  - id: api\n    path: /api\n    methods: [GET, get]\n    destinations: [\"http://127.0.0.1:5000\"]\n");
            (code, _, errors) = Run("check", proxy);
            Assert.Equal(1, code);
            Assert.Contains("proxy.yaml: routes: route 'api': Duplicate HTTP method 'GET' for route 'api'.", errors, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Check_accepts_a_PEM_file_of_several_keys_and_names_the_key_file_it_refuses()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-check-").FullName;
        try
        {
            using var ec = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
            var two = Path.Combine(directory, "two.pem");
            var bad = Path.Combine(directory, "bad.pem");
            File.WriteAllText(two, TestIdentityProvider.PooledRsa(43).ExportSubjectPublicKeyInfoPem() + "\n" + ec.ExportSubjectPublicKeyInfoPem());
            File.WriteAllText(bad, ec.ExportSubjectPublicKeyInfoPem() + "\n" + ec.ExportPkcs8PrivateKeyPem());
            var policy = """
                upstream: http://127.0.0.1:5000
                identity:
                  jwt:
                    keys: [{file}]
                    issuer: https://idp.example.com
                    audiences: [api]
                """;
            File.WriteAllText(Path.Combine(directory, "two.yaml"), policy.Replace("{file}", two, StringComparison.Ordinal));
            File.WriteAllText(Path.Combine(directory, "bad.yaml"), policy.Replace("{file}", bad, StringComparison.Ordinal));

            var (code, output, errors) = Run("check", Path.Combine(directory, "two.yaml"));
            Assert.True(code == 0, errors);
            Assert.Contains("OK", output, StringComparison.Ordinal);

            (code, _, errors) = Run("check", Path.Combine(directory, "bad.yaml"));
            Assert.Equal(1, code);
            Assert.Contains($"identity.jwt.keys: key file '{bad}' (PEM block 2): is a private key; give the public key.", errors, StringComparison.Ordinal);

            // Starting the gateway with the bad file names it the same way.
            var refused = await Assert.ThrowsAsync<PolicyException>(() => Hosting.GatewayHost.StartAsync(new Hosting.GatewayHostOptions
            {
                PolicyPath = Path.Combine(directory, "bad.yaml"),
                Listen = new Uri("http://127.0.0.1:0"),
                Admin = null,
                WatchPolicy = false,
            }));
            Assert.Contains(refused.Errors, e => e.Message.StartsWith($"key file '{bad}' (PEM block 2): is a private key", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Token_mints_a_token_with_the_demo_key()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-token-").FullName;
        try
        {
            var (code, output, errors) = Run("token", "--sub", "alice", "--plan", "free", "--key", Path.Combine(directory, "key.pem"));
            Assert.True(code == 0, errors);
            var token = new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(output.Trim());
            Assert.Equal("alice", token.Subject);
            Assert.Equal("free", token.GetClaim("plan").Value);
            Assert.True(File.Exists(Path.Combine(directory, "key.pem")));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    internal static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Floodgate.slnx")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("The tests run outside the repository.");
    }

    private static (int Code, string Output, string Errors) Run(params string[] args)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = GatewayCli.Build(output, errors).Parse(args).Invoke();
        return (code, output.ToString(), errors.ToString());
    }
}

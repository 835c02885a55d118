using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Http;
using Floodgate.Gateway.Cli;
using Floodgate.Gateway.Policy;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Gateway.Tests;

public sealed partial class PolicyTests
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

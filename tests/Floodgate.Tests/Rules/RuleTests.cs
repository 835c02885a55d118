using System.Net;
using Floodgate.Limits;
using Floodgate.Rules;

namespace Floodgate.Tests.Rules;

public sealed class RuleTests
{
    [Theory]
    [InlineData("/api/**", "/api", true)]
    [InlineData("/api/**", "/api/v1/orders/7", true)]
    [InlineData("/api/**", "/apix", false)]
    [InlineData("/api/*/orders", "/api/v1/orders", true)]
    [InlineData("/api/*/orders", "/api/v1/v2/orders", false)]
    [InlineData("/api/v?/x", "/api/v2/x", true)]
    [InlineData("/API/orders", "/api/ORDERS/", true)]
    [InlineData("/**/health", "/a/b/health", true)]
    [InlineData("/files/*.png", "/files/cat.png", true)]
    [InlineData("/files/*.png", "/files/cat.jpg", false)]
    [InlineData("/", "/", true)]
    [InlineData("/", "/x", false)]
    public void Path_globs(string pattern, string path, bool matches) => Assert.Equal(matches, new PathGlob(pattern).IsMatch(path));

    [Theory]
    [InlineData("/orders/{id}", "/orders/1", true)]
    [InlineData("/orders/{id}", "/orders", false)]
    [InlineData("/orders/{id}", "/orders/1/items", false)]
    [InlineData("/orders/{id:int}", "/orders/abc", false)]
    [InlineData("/orders/{id:int}", "/orders/-42", true)]
    [InlineData("/orders/{id:guid}", "/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301", true)]
    [InlineData("/search/{query?}", "/search", true)]
    [InlineData("/search/{query?}", "/search/cats", true)]
    [InlineData("/files/{**path}", "/files/a/b/c.txt", true)]
    [InlineData("/files/{*path}", "/files", true)]
    [InlineData("/Orders/{id}", "/orders/9", true)]
    public void Route_templates(string template, string path, bool matches) => Assert.Equal(matches, new RouteTemplate(template).IsMatch(path));

    [Theory]
    [InlineData("orders/{id}", "must start with '/'")]
    [InlineData("/orders/{id:regex}", "constraint 'regex'")]
    [InlineData("/orders/{}", "malformed parameter")]
    [InlineData("/orders/x{id}", "malformed segment")]
    [InlineData("/files/{**path}/more", "before its last segment")]
    public void Malformed_route_templates_are_explained(string template, string expected)
    {
        var error = Assert.Throws<FormatException>(() => new RouteTemplate(template));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains(template, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("client_ip", KeyPartKind.ClientIp, null)]
    [InlineData("subject", KeyPartKind.Subject, null)]
    [InlineData("claim:tenant_id", KeyPartKind.Claim, "tenant_id")]
    [InlineData("header:X-Api-Key", KeyPartKind.Header, "X-Api-Key")]
    [InlineData("route", KeyPartKind.Route, null)]
    [InlineData("const:shared", KeyPartKind.Constant, "shared")]
    public void Key_parts_parse(string text, KeyPartKind kind, string? name)
    {
        var part = KeyPart.Parse(text);
        Assert.Equal(kind, part.Kind);
        Assert.Equal(name, part.Name);
        Assert.Equal(part, KeyPart.Parse(part.ToString()));
    }

    [Theory]
    [InlineData("cookie")]
    [InlineData("claim:")]
    [InlineData("subject:x")]
    public void Unknown_key_parts_list_the_forms(string text)
    {
        var error = Assert.Throws<FormatException>(() => KeyPart.Parse(text));
        Assert.Contains("client_ip, subject, claim:<name>", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Matches_combine_every_condition()
    {
        var match = new RuleMatch
        {
            Methods = ["POST", "put"],
            Paths = [new PathGlob("/api/**")],
            Hosts = ["*.example.com"],
            Headers = new Dictionary<string, string> { ["X-Tier"] = "gold", ["X-Trace"] = "*" },
        };
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { ["x-tier"] = "GOLD", ["X-Trace"] = "1" };
        Assert.True(match.IsMatch(new RequestContext { Method = "PUT", Path = "/api/x", Host = "eu.example.com", Headers = headers }));
        Assert.False(match.IsMatch(new RequestContext { Method = "GET", Path = "/api/x", Host = "eu.example.com", Headers = headers }));
        Assert.False(match.IsMatch(new RequestContext { Method = "POST", Path = "/web", Host = "eu.example.com", Headers = headers }));
        Assert.False(match.IsMatch(new RequestContext { Method = "POST", Path = "/api/x", Host = "example.org", Headers = headers }));
        Assert.False(match.IsMatch(new RequestContext { Method = "POST", Path = "/api/x", Host = "eu.example.com" }));
    }

    [Fact]
    public void A_route_match_accepts_the_front_doors_template()
    {
        var match = new RuleMatch { Route = new RouteTemplate("/orders/{id}") };
        Assert.True(match.IsMatch(new RequestContext { Path = "/v2/x", RouteTemplate = "/orders/{id}" }));
    }

    [Fact]
    public void Keys_hash_parts_unambiguously_and_group_by_identity()
    {
        var limit = Limit.FixedWindow(Rate.Parse("1/s"));
        var rule = new RateLimitRule("r", RateLimitTier.User, limit) { Key = [KeyPart.Subject, new KeyPart(KeyPartKind.Header, "X-A")] };
        var other = new RateLimitRule("other", RateLimitTier.User, limit) { Key = [KeyPart.Subject, KeyPart.Route] };

        static RequestContext Ctx(string subject, string header) => new()
        {
            Subject = subject,
            Headers = new Dictionary<string, string> { ["X-A"] = header },
        };

        Assert.True(RuleKeys.TryBuild(rule, limit, Ctx("ab", "c"), 64, out var k1));
        Assert.True(RuleKeys.TryBuild(rule, limit, Ctx("a", "bc"), 64, out var k2));
        Assert.NotEqual(k1.Value, k2.Value);
        Assert.NotEqual(k1.Identity, k2.Identity);

        // Another rule on the same subject shares the identity (one atomic group, one cluster slot) but not the key.
        Assert.True(RuleKeys.TryBuild(other, limit, new RequestContext { Subject = "ab" }, 64, out var k3));
        Assert.True(RuleKeys.TryBuild(new RateLimitRule("x", RateLimitTier.User, limit), limit, new RequestContext { Subject = "ab" }, 64, out var k4));
        Assert.Equal(k3.Identity, k4.Identity);
        Assert.NotEqual(k3.Value, k4.Value);

        // A 10 KB hostile subject yields a key of the same size.
        Assert.True(RuleKeys.TryBuild(rule, limit, Ctx(new string('{', 10_000), "}"), 64, out var big));
        Assert.Equal(32, big.ValueHex.Length);
        Assert.False(RuleKeys.TryBuild(rule, limit, new RequestContext { Subject = "a" }, 64, out _));
    }

    [Fact]
    public void Policies_reject_duplicate_rule_names()
    {
        var limit = Limit.FixedWindow(Rate.Parse("1/s"));
        var error = Assert.Throws<ArgumentException>(() => new RateLimitPolicy([new RateLimitRule("a", RateLimitTier.Edge, limit), new RateLimitRule("A", RateLimitTier.User, limit)]));
        Assert.Contains("'A'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Default_keys_follow_the_tier()
    {
        var limit = Limit.FixedWindow(Rate.Parse("1/s"));
        Assert.Equal([KeyPart.ClientIp], new RateLimitRule("e", RateLimitTier.Edge, limit).Key);
        Assert.Equal([KeyPart.Subject], new RateLimitRule("u", RateLimitTier.User, limit).Key);
        Assert.Equal([KeyPart.Route], new RateLimitRule("s", RateLimitTier.Service, limit).Key);
        Assert.Empty(new RateLimitRule("g", RateLimitTier.Global, limit).Key);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RateLimitRule("c", RateLimitTier.User, limit) { Cost = -1 });
        Assert.Equal(IPAddress.Loopback, new RequestContext { ClientIp = IPAddress.Loopback }.ClientIp);
    }
}

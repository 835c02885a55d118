using Floodgate.AspNetCore.Identity;
using Floodgate.Gateway.Policy;

namespace Floodgate.Gateway.Tests;

/// <summary>The <c>api_keys</c> section and a route's <c>credentials</c> field.</summary>
public sealed class ApiKeyPolicyTests
{
    [Fact]
    public void The_section_is_read_into_the_key_options_and_a_route_carries_its_credentials()
    {
        var policy = PolicyLoader.Parse("""
            routes:
              - { id: llm, path: "/v1/{**rest}", destinations: ["http://127.0.0.1:5000"], credentials: api_key }
              - { id: app, path: "/{**rest}", destinations: ["http://127.0.0.1:5000"] }
            default_plan: free
            plans:
              free: { per_user: 5/h }
            api_keys:
              prefix: acme_live_
              header: X-API-Key
              accept: api_key
            """, "p.yaml");

        var keys = policy.ApiKeys!;
        Assert.Equal(("acme_live_", "X-API-Key", "free", CredentialKinds.ApiKey), (keys.Prefix, keys.Header, keys.DefaultPlan, keys.Accept));
        Assert.Equal("ApiKey", policy.Routes.Single(r => r.RouteId == "llm").Metadata!["Floodgate.Credentials"]);
        Assert.Null(policy.Routes.Single(r => r.RouteId == "app").Metadata);

        // The section counts in the identity's version: changing it rebuilds the resolver on a reload.
        var without = PolicyLoader.Parse("upstream: http://127.0.0.1:5000\n", "p.yaml");
        Assert.Null(without.ApiKeys);
        Assert.NotEqual(without.IdentityVersion, PolicyLoader.Parse("upstream: http://127.0.0.1:5000\napi_keys: {}\n", "p.yaml").IdentityVersion);
    }

    [Fact]
    public void Bad_fields_are_refused_with_their_line_and_field()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            routes:
              - { id: a, path: "/a", destinations: ["http://127.0.0.1:5000"], credentials: keys }
            plans:
              free: { per_user: 5/h }
            api_keys:
              accept: jwt
              default_plan: gold
            """, "bad.yaml"));

        var messages = error.Errors.Select(e => e.ToString()).ToList();
        Assert.Equal(3, messages.Count);
        Assert.Equal("bad.yaml:2:80: routes[0].credentials: 'keys' is not one of: jwt, api_key, both.", messages[0]);
        Assert.StartsWith("bad.yaml:6:11: api_keys.accept: JWTs are accepted, but the policy has no identity.jwt section", messages[1], StringComparison.Ordinal);
        Assert.StartsWith("bad.yaml:7:17: api_keys.default_plan: ", messages[2], StringComparison.Ordinal);
    }

    [Fact]
    public void A_prefix_or_header_the_resolver_would_refuse_is_refused_at_load()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            api_keys:
              prefix: "fg live"
              header: Authorization
            """, "bad.yaml"));
        var messages = error.Errors.Select(e => e.ToString()).ToList();
        Assert.Equal(2, messages.Count);
        Assert.StartsWith("bad.yaml:3:11: api_keys.prefix: 'fg live' must be 1 to 32 ASCII letters", messages[0], StringComparison.Ordinal);
        Assert.StartsWith("bad.yaml:4:11: api_keys.header: keys in Authorization are read as Bearer tokens already", messages[1], StringComparison.Ordinal);
    }

    [Fact]
    public void A_route_that_accepts_keys_needs_the_section()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            routes:
              - { id: a, path: "/a", destinations: ["http://127.0.0.1:5000"], credentials: both }
            """, "bad.yaml"));
        Assert.Equal("bad.yaml:2:80: routes[0].credentials: 'both' accepts API keys, but the policy has no api_keys section.", Assert.Single(error.Errors).ToString());
    }
}

using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Http;
using Floodgate.Gateway.Cli;
using Floodgate.Gateway.Policy;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Gateway.Tests;

/// <summary>The store section: fields the store would refuse, and fields of the other kind of store.</summary>
public sealed partial class PolicyTests
{
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
}

using Floodgate.Envoy.Configuration;
using Microsoft.Extensions.Options;

namespace Floodgate.Envoy.Tests;

/// <summary>Each malformed configuration is refused with a message naming the file, the line and the key.</summary>
public sealed class ConfigErrorTests
{
    public static TheoryData<string, string> Malformed => new()
    {
        { "domain: a\nfoo: 1\n", "rules.yaml: line 2: unknown key 'foo' in the file; expected one of domain, descriptors" },
        {
            "domain: a\ndescriptors:\n  - key: k\n    valeu: v\n",
            "rules.yaml: line 4: unknown key 'valeu' in the descriptor under 'a'; expected one of key, value, rate_limit, descriptors, shadow_mode, quota_mode, detailed_metric, value_to_metric, share_threshold, metadata"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n      requests_per_minute: 5\n",
            "rules.yaml: line 6: unknown key 'requests_per_minute' in rate_limit of 'a.k'; expected one of unit, requests_per_unit, unlimited, name, replaces, algorithm, burst"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    value: v\n  - key: k\n    value: v\n",
            "rules.yaml: line 5: duplicate descriptor composite key 'a.k_v'"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    descriptors:\n      - key: n\n      - key: n\n",
            "rules.yaml: line 6: duplicate descriptor composite key 'a.k.n'"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    value: v*\n  - key: k\n    value: v*\n",
            "rules.yaml: line 5: duplicate descriptor composite key 'a.k_v*'"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n      requests_per_unit: 1\n      replaces:\n        - name: \"\"\n",
            "rules.yaml: line 8: 'replaces' of 'a.k' has an entry with an empty 'name'"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      name: me\n      unit: second\n      requests_per_unit: 1\n      replaces:\n        - name: me\n",
            "rules.yaml: line 9: 'replaces' of 'a.k' names the rule itself ('me')"
        },
        { "descriptors: []\n", "rules.yaml: line 1: the key 'domain' is missing or empty" },
        { "domain: a\ndescriptors:\n  - value: v\n", "rules.yaml: line 3: a descriptor under 'a' has no 'key'" },
        {
            "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: fortnight\n      requests_per_unit: 1\n",
            "rules.yaml: line 5: invalid rate limit unit 'fortnight' in rate_limit of 'a.k'; use second, minute, hour, day, week, month or year"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      requests_per_unit: 1\n",
            "rules.yaml: line 5: rate_limit of 'a.k' has no 'unit'; use second, minute, hour, day, week, month or year, or 'unlimited: true'"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      unlimited: true\n      unit: second\n",
            "rules.yaml: line 6: rate_limit of 'a.k' is unlimited and must not also specify a 'unit'"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    value: v\n    share_threshold: true\n",
            "rules.yaml: line 5: 'share_threshold' needs a wildcard value (one with '*'), but 'a.k_v' has none"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n      requests_per_unit: 5\n      burst: 3\n",
            "rules.yaml: line 7: 'burst' in rate_limit of 'a.k' needs 'algorithm: gcra'"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n      requests_per_unit: 5\n      algorithm: leaky\n",
            "rules.yaml: line 7: unknown algorithm 'leaky' in rate_limit of 'a.k'; use fixed_window, sliding_window or gcra"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n      requests_per_unit: -5\n",
            "rules.yaml: line 6: 'requests_per_unit' of 'a.k' must be a whole number from 0 to 4294967295"
        },
        {
            "domain: a\ndescriptors:\n  - key: k\n    shadow_mode: maybe\n",
            "rules.yaml: line 4: 'shadow_mode' must be true or false, not 'maybe'"
        },
        { "domain: a\ndescriptors: 5\n", "rules.yaml: line 2: 'descriptors' under 'a' must be a list" },
        { "", "rules.yaml: the file is empty; it must declare a 'domain'" },
        { "- a\n- b\n", "rules.yaml: line 1: the file must be a mapping of keys to values" },
        {
            "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      <<: 5\n      unit: second\n",
            "rules.yaml: line 5: the merge key '<<' in rate_limit of 'a.k' must name a mapping or a list of mappings"
        },
        { "domain: a\n---\ndomain: b\n", "rules.yaml: line 3: the file holds several YAML documents; put one domain in each file" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void A_malformed_file_is_refused_with_its_message(string yaml, string message)
    {
        var error = Assert.Throws<EnvoyConfigException>(() => EnvoyConfig.Parse([new EnvoyConfigFile("rules.yaml", yaml)]));
        Assert.Equal(message, error.Message);
        Assert.Equal("rules.yaml", error.FileName);
    }

    [Fact]
    public void Invalid_yaml_is_refused_with_the_parser_line()
    {
        var error = Assert.Throws<EnvoyConfigException>(() => EnvoyConfig.Parse([new EnvoyConfigFile("rules.yaml", "domain: a\ndescriptors:\n  - key: [unclosed\n")]));
        Assert.StartsWith("rules.yaml: line ", error.Message, StringComparison.Ordinal);
        Assert.Contains("not valid YAML", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_duplicate_key_in_one_mapping_is_refused()
    {
        var error = Assert.Throws<EnvoyConfigException>(() => EnvoyConfig.Parse([new EnvoyConfigFile("rules.yaml", "domain: a\ndomain: b\n")]));
        Assert.Equal("rules.yaml: line 2, column 1: the file is not valid YAML: 'domain' is given twice in this mapping (first on line 1): expected each field once.", error.Message);
        Assert.Equal((2L, 1L), (error.Line, error.Column));
    }

    [Theory]
    [InlineData("domain: a\ndescriptors:\n\t- key: k\n", "rules.yaml: line 3, column 1: the file is not valid YAML: a tab indents this line, and YAML indents with spaces only: expected spaces here.")]
    [InlineData("domain: a\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1\n", "rules.yaml: line 4, column 17: the file is not valid YAML: this '{' is never closed: expected '}' after the last field of the mapping it opens.")]
    [InlineData("domain: a\ndescriptors:\n  - key: \"k\n", "rules.yaml: line 3, column 10: the file is not valid YAML: this quoted value is never closed: expected a closing \" after it.")]
    public void A_yaml_syntax_error_names_its_line_and_column_as_the_gateway_s_policy_errors_do(string yaml, string message)
    {
        var error = Assert.Throws<EnvoyConfigException>(() => EnvoyConfig.Parse([new EnvoyConfigFile("rules.yaml", yaml)]));
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void A_gcra_rate_finer_than_a_microsecond_is_refused_with_the_engine_message()
    {
        var error = Assert.Throws<EnvoyConfigException>(() => EnvoyConfig.Parse([new EnvoyConfigFile(
            "rules.yaml",
            "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n      requests_per_unit: 2000000\n      algorithm: gcra\n")]));
        Assert.StartsWith("rules.yaml: line 5: rate_limit of 'a.k': The rate 2000000/s is above one per microsecond", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_domain_declared_twice_is_refused_naming_both_files_unless_merging()
    {
        EnvoyConfigFile[] files =
        [
            new("a.yaml", "domain: shared\ndescriptors:\n  - key: one\n    rate_limit: { unit: second, requests_per_unit: 1 }\n"),
            new("b.yaml", "domain: shared\ndescriptors:\n  - key: two\n    rate_limit: { unit: second, requests_per_unit: 1 }\n"),
        ];
        var error = Assert.Throws<EnvoyConfigException>(() => EnvoyConfig.Parse(files));
        Assert.Equal("b.yaml: line 1: duplicate domain 'shared', already declared in a.yaml", error.Message);

        var merged = EnvoyConfig.Parse(files, mergeDomains: true);
        Assert.Equal(["shared"], merged.Domains);
        Assert.Equal(2, merged.RuleCount);
    }

    [Fact]
    public void The_reference_format_loads_with_its_optional_keys()
    {
        var config = EnvoyConfig.Parse([new EnvoyConfigFile("rules.yaml", TestConfig.Yaml), new EnvoyConfigFile("other.yml", """
            domain: other
            descriptors:
              - key: k
                value: "*"
                detailed_metric: true
                value_to_metric: true
                metadata:
                  team: edge
                rate_limit:
                  unit: Minute
                  requests_per_unit: 1
                  name: any
              - key: empty
                descriptors:
            """)]);
        Assert.Equal(["test", "other"], config.Domains);
        Assert.Equal(["rules.yaml", "other.yml"], config.Files);
    }

    [Fact]
    public void Plain_null_values_are_absent_and_quoted_ones_are_literal()
    {
        var config = EnvoyConfig.Parse([new EnvoyConfigFile("nulls.yaml", """
            domain: n
            descriptors:
              - key: a
                value: ~
                shadow_mode: null
                rate_limit: { unit: minute, requests_per_unit: 1 }
              - key: b
                value: NULL
                rate_limit: { unit: minute, requests_per_unit: 2 }
              - key: c
                value: "~"
                rate_limit: { unit: minute, requests_per_unit: 3 }
              - key: d
                value: 'null'
                rate_limit: { unit: minute, requests_per_unit: 4 }
            """)]);
        Assert.Equal(1u, Limit(config, "a", "anything"));
        Assert.False(config.Match("n", [new() { Key = "a", Value = "anything" }]).Rule!.ShadowMode);
        Assert.Equal(2u, Limit(config, "b", "anything"));
        Assert.Null(Limit(config, "c", "anything"));
        Assert.Equal(3u, Limit(config, "c", "~"));
        Assert.Equal(4u, Limit(config, "d", "null"));
    }

    private static uint? Limit(EnvoyConfig config, string key, string value) =>
        config.Match("n", [new() { Key = key, Value = value }]).Rule?.RequestsPerUnit;

    [Fact]
    public void A_descriptor_list_that_contains_itself_through_an_alias_is_refused()
    {
        var error = Assert.Throws<EnvoyConfigException>(() => EnvoyConfig.Parse([new EnvoyConfigFile("cycle.yaml", "domain: c\ndescriptors: &d [{key: a, descriptors: *d}]\n")]));
        Assert.Equal("cycle.yaml", error.FileName);
        Assert.Contains("contain themselves through a YAML alias", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Descriptors_nested_too_deep_are_refused()
    {
        var yaml = new System.Text.StringBuilder("domain: d\ndescriptors:\n");
        for (var i = 0; i < 32 + 1; i++)
        {
            var indent = new string(' ', 2 + (4 * i));
            yaml.Append(indent).Append("- key: k").Append(i).Append('\n').Append(indent).Append("  descriptors:\n");
        }

        var error = Assert.Throws<EnvoyConfigException>(() => EnvoyConfig.Parse([new EnvoyConfigFile("deep.yaml", yaml.ToString())]));
        Assert.Equal("deep.yaml", error.FileName);
        Assert.Contains("nest deeper than 32 levels", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Alias_fan_out_past_the_descriptor_cap_is_refused()
    {
        // Each level lists the previous one ten times: 10^6 descriptors from a few hundred bytes.
        var yaml = new System.Text.StringBuilder("domain: f\ndescriptors:\n  - key: l0\n    descriptors: &l0 [{key: x, rate_limit: {unit: second, requests_per_unit: 1}}]\n");
        for (var i = 1; i <= 6; i++)
        {
            yaml.Append("  - key: l").Append(i).Append("\n    descriptors: &l").Append(i).Append(" [");
            for (var j = 0; j < 10; j++)
            {
                yaml.Append(j > 0 ? ", " : string.Empty).Append("{key: k").Append(j).Append(", descriptors: *l").Append(i - 1).Append('}');
            }

            yaml.Append("]\n");
        }

        var fanned = yaml.ToString();
        var error = Assert.Throws<EnvoyConfigException>(() => EnvoyConfig.Parse([new EnvoyConfigFile("fan.yaml", fanned)]));
        Assert.Equal("fan.yaml", error.FileName);
        Assert.Contains("more than 100000 descriptors", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_deeply_nested_flow_collection_is_refused_without_exhausting_the_stack()
    {
        var yaml = "domain: n\ndescriptors: " + new string('[', 200_000) + new string(']', 200_000) + "\n";
        var error = Assert.Throws<EnvoyConfigException>(() => EnvoyConfig.Parse([new EnvoyConfigFile("nested.yaml", yaml)]));
        Assert.Equal("nested.yaml", error.FileName);
        Assert.Contains("nests deeper than", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_too_large_is_refused_before_it_is_parsed()
    {
        var directory = Path.Combine(Path.GetTempPath(), "floodgate-envoy-big-" + Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(directory);
        try
        {
            File.WriteAllText(Path.Combine(directory, "big.yaml"), "domain: b\n#" + new string('x', 4 * 1024 * 1024) + "\n");
            var error = Assert.Throws<EnvoyConfigException>(() => EnvoyConfig.LoadDirectory(directory));
            Assert.Equal("big.yaml", error.FileName);
            Assert.Contains("at most 4194304 are read", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }

    [Fact]
    public void Anchors_aliases_and_merge_keys_are_resolved()
    {
        var config = EnvoyConfig.Parse([new EnvoyConfigFile("rules.yaml", """
            domain: m
            descriptors:
              - key: a
                rate_limit: &per_minute
                  unit: minute
                  requests_per_unit: 5
              - key: b
                rate_limit:
                  <<: *per_minute
                  requests_per_unit: 7
              - key: c
                rate_limit: *per_minute
            """)]);
        Assert.Equal(3, config.RuleCount);
        foreach (var (key, expected) in new[] { ("a", 5u), ("b", 7u), ("c", 5u) })
        {
            var rule = config.Match("m", [new() { Key = key, Value = "v" }]).Rule;
            Assert.NotNull(rule);
            Assert.Equal(expected, rule.RequestsPerUnit);
            Assert.Equal(global::Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.RateLimit.Types.Unit.Minute, rule.Unit);
        }
    }

    [Fact]
    public async Task The_service_refuses_to_start_on_an_invalid_configuration()
    {
        var error = await Assert.ThrowsAsync<EnvoyConfigException>(() => EnvoyServer.StartAsync("domain: a\nbogus: true\n"));
        Assert.Equal("config.yaml: line 2: unknown key 'bogus' in the file; expected one of domain, descriptors", error.Message);
    }

    [Fact]
    public async Task The_service_refuses_invalid_options()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EnvoyServer.StartAsync("domain: a\n", o => o.NearLimitRatio = 2));
        Assert.Contains("NearLimitRatio must be between 0 and 1, not 2", error.Message, StringComparison.Ordinal);
        var max = await Assert.ThrowsAsync<OptionsValidationException>(() => EnvoyServer.StartAsync("domain: a\n", o => o.MaxDescriptors = 0));
        Assert.Contains("MaxDescriptors must be at least 1, not 0", max.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_directory_is_refused_by_name()
    {
        var error = Assert.Throws<DirectoryNotFoundException>(() => EnvoyConfig.LoadDirectory("/nonexistent/floodgate-envoy"));
        Assert.Contains("/nonexistent/floodgate-envoy", error.Message, StringComparison.Ordinal);
    }
}

using System.Globalization;
using Floodgate.Limits;
using YamlDotNet.RepresentationModel;
using Unit = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.RateLimit.Types.Unit;

namespace Floodgate.Envoy.Configuration;

// Reading a descriptor's rate_limit: unit, requests, name and replaces, Floodgate's algorithm and burst, each checked.
public sealed partial class EnvoyConfig
{
    private sealed partial class FileParser
    {
        private static readonly string[] RateLimitKeys = ["unit", "requests_per_unit", "unlimited", "name", "replaces", "algorithm", "burst"];
        private static readonly string[] ReplacesKeys = ["name"];

        private EnvoyRule LoadRule(YamlNode yaml, string domain, string fullKey, bool shadow, bool quota, bool detailed)
        {
            var map = AsMapping(yaml, $"'rate_limit' of '{fullKey}'");
            var where = $"rate_limit of '{fullKey}'";
            CheckKeys(map, RateLimitKeys, where);
            var unlimited = Flag(map, "unlimited");
            var unitText = OptionalString(map, "unit");
            var unit = Unit.Unknown;
            if (unitText is not null && !EnvoyUnits.TryParse(unitText, out unit) && !unlimited)
            {
                throw Error(Find(map, "unit")!.Start.Line, $"invalid rate limit unit '{unitText}' in {where}; use second, minute, hour, day, week, month or year");
            }

            if (unlimited && unit != Unit.Unknown)
            {
                throw Error(Find(map, "unit")!.Start.Line, $"{where} is unlimited and must not also specify a 'unit'");
            }

            if (!unlimited && unit == Unit.Unknown)
            {
                throw Error(map.Start.Line, $"{where} has no 'unit'; use second, minute, hour, day, week, month or year, or 'unlimited: true'");
            }

            uint requests = 0;
            if (Find(map, "requests_per_unit") is { } requestsNode
                && !uint.TryParse(Scalar(requestsNode, "requests_per_unit"), NumberStyles.None, CultureInfo.InvariantCulture, out requests))
            {
                throw Error(requestsNode.Start.Line, $"'requests_per_unit' of '{fullKey}' must be a whole number from 0 to {uint.MaxValue}");
            }

            var name = OptionalString(map, "name");
            var replaces = new List<string>();
            if (Find(map, "replaces") is { } replacesNode && !IsNull(replacesNode))
            {
                if (replacesNode is not YamlSequenceNode replacesList)
                {
                    throw Error(replacesNode.Start.Line, $"'replaces' of '{fullKey}' must be a list of '- name: ...' entries");
                }

                foreach (var entry in replacesList)
                {
                    var entryMap = AsMapping(entry, $"an entry of 'replaces' of '{fullKey}'");
                    CheckKeys(entryMap, ReplacesKeys, $"'replaces' of '{fullKey}'");
                    var replaced = OptionalString(entryMap, "name");
                    if (string.IsNullOrEmpty(replaced))
                    {
                        throw Error(entry.Start.Line, $"'replaces' of '{fullKey}' has an entry with an empty 'name'");
                    }

                    if (replaced == name)
                    {
                        throw Error(entry.Start.Line, $"'replaces' of '{fullKey}' names the rule itself ('{name}')");
                    }

                    replaces.Add(replaced);
                }
            }

            var algorithm = LimitAlgorithm.FixedWindow;
            if (OptionalString(map, "algorithm") is { } algorithmText)
            {
                algorithm = algorithmText.ToLowerInvariant() switch
                {
                    "fixed_window" => LimitAlgorithm.FixedWindow,
                    "sliding_window" => LimitAlgorithm.SlidingWindow,
                    "gcra" or "token_bucket" => LimitAlgorithm.Gcra,
                    _ => throw Error(Find(map, "algorithm")!.Start.Line, $"unknown algorithm '{algorithmText}' in {where}; use fixed_window, sliding_window or gcra"),
                };
            }

            long? burst = null;
            if (Find(map, "burst") is { } burstNode)
            {
                if (algorithm != LimitAlgorithm.Gcra)
                {
                    throw Error(burstNode.Start.Line, $"'burst' in {where} needs 'algorithm: gcra'");
                }

                if (!long.TryParse(Scalar(burstNode, "burst"), NumberStyles.None, CultureInfo.InvariantCulture, out var b) || b < 1)
                {
                    throw Error(burstNode.Start.Line, $"'burst' in {where} must be a whole number of at least 1");
                }

                burst = b;
            }

            if (unlimited && Find(map, "algorithm") is { } algorithmNode)
            {
                throw Error(algorithmNode.Start.Line, $"{where} is unlimited and must not also specify an 'algorithm'");
            }

            try
            {
                return new EnvoyRule(domain, fullKey, requests, unit, algorithm, burst, name, [.. replaces], unlimited, shadow, quota, detailed);
            }
            catch (ArgumentException ex)
            {
                throw Error(map.Start.Line, $"{where}: {ex.Message}", ex);
            }
        }
    }
}

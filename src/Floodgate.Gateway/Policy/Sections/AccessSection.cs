using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Access;
using Floodgate.AspNetCore.Http;
using Floodgate.Rules;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// The access lists: <c>bypass</c> (rules that let the operator's own services skip tiers, by network, claim, secret
/// header or client certificate) and <c>deny</c> (addresses, ranges and subjects answered 403), read into
/// <see cref="FloodgateOptions.Access"/> (docs/edge.md).
/// </summary>
internal static class AccessSection
{
    private static readonly (string Name, RateLimitTier Tier)[] TierNames =
        [("edge", RateLimitTier.Edge), ("user", RateLimitTier.User), ("service", RateLimitTier.Service), ("global", RateLimitTier.Global)];

    public static void Read(YamlReader reader, YamlMappingNode root, SecretSources secrets, FloodgateOptions floodgate)
    {
        var access = floodgate.Access;
        var deny = reader.Map(YamlReader.Get(root, "deny"), "deny", "addresses", "subjects");
        foreach (var (range, node) in reader.StringList(deny, "addresses", "deny"))
        {
            try
            {
                TrustedProxies.ParseRange(range);
                access.DeniedAddresses.Add(range);
            }
            catch (FormatException e)
            {
                reader.Error(node, "deny.addresses", e.Message);
            }
        }

        foreach (var (subject, _) in reader.StringList(deny, "subjects", "deny"))
        {
            access.DeniedSubjects.Add(subject);
        }

        var bypass = YamlReader.Get(root, "bypass");
        if (bypass is null || YamlReader.IsNull(bypass))
        {
            return;
        }

        if (bypass is not YamlSequenceNode list)
        {
            reader.Error(bypass, "bypass", "expected a list of bypass rules such as - { name: internal, networks: [10.0.0.0/8] }.");
            return;
        }

        for (var i = 0; i < list.Children.Count; i++)
        {
            var field = $"bypass[{i}]";
            var map = reader.Map(list.Children[i], field, "name", "tiers", "networks", "claims", "header", "client_certificates");
            if (map is null)
            {
                reader.Error(list.Children[i], field, "expected a mapping of name, tiers and at least one of networks, claims, header, client_certificates.");
                continue;
            }

            if (ReadRule(reader, map, field, secrets) is not { } rule)
            {
                continue;
            }

            try
            {
                rule.Validate();
                if (access.Bypass.Any(r => string.Equals(r.Name, rule.Name, StringComparison.OrdinalIgnoreCase)))
                {
                    reader.Error(YamlReader.Get(map, "name"), $"{field}.name", $"'{rule.Name}' names two bypass rules; each must be unique.");
                    continue;
                }

                access.Bypass.Add(rule);
            }
            catch (ArgumentException e)
            {
                reader.Error(map, field, PolicyLoader.MessageOf(e));
            }
        }
    }

    private static BypassRule? ReadRule(YamlReader reader, YamlMappingNode map, string field, SecretSources secrets)
    {
        var name = reader.String(map, "name", field);
        if (string.IsNullOrWhiteSpace(name))
        {
            reader.Error(map, $"{field}.name", "is required: the name metrics give the requests this rule lets through.");
            return null;
        }

        var header = reader.Map(YamlReader.Get(map, "header"), $"{field}.header", "name", "file", "env");
        var headerName = header is null ? null : reader.String(header, "name", $"{field}.header");
        if (header is not null && string.IsNullOrWhiteSpace(headerName))
        {
            reader.Error(header, $"{field}.header.name", "is required: the header that carries the secret.");
            return null;
        }

        var rule = new BypassRule { Name = name, HeaderName = headerName };
        foreach (var (tier, node) in reader.StringList(map, "tiers", field))
        {
            var found = Array.Find(TierNames, t => string.Equals(t.Name, tier, StringComparison.OrdinalIgnoreCase));
            if (found.Name is null)
            {
                reader.Error(node, $"{field}.tiers", $"'{tier}' is not a tier; expected edge, user, service or global.");
                return null;
            }

            rule.Tiers.Add(found.Tier);
        }

        foreach (var (range, node) in reader.StringList(map, "networks", field))
        {
            try
            {
                TrustedProxies.ParseRange(range);
                rule.Networks.Add(range);
            }
            catch (FormatException e)
            {
                reader.Error(node, $"{field}.networks", e.Message);
                return null;
            }
        }

        if (reader.Map(YamlReader.Get(map, "claims"), $"{field}.claims") is { } claims)
        {
            foreach (var (key, _) in claims.Children)
            {
                if (reader.KeyName(key, $"{field}.claims") is { } claim)
                {
                    rule.Claims[claim] = [.. reader.StringList(claims, claim, $"{field}.claims").Select(v => v.Value)];
                }
            }
        }

        if (header is not null)
        {
            foreach (var secret in secrets.Read(header, $"{field}.header", BypassRule.MinSecretLength))
            {
                rule.HeaderSecrets.Add(secret);
            }

            if (rule.HeaderSecrets.Count == 0)
            {
                return null;
            }
        }

        foreach (var (thumbprint, node) in reader.StringList(map, "client_certificates", field))
        {
            if (!BypassRule.IsThumbprint(thumbprint))
            {
                reader.Error(node, $"{field}.client_certificates", $"'{thumbprint}' is not a SHA-256 thumbprint: 64 hexadecimal digits (colons allowed), such as the output of: openssl x509 -noout -fingerprint -sha256 -in client.pem.");
                return null;
            }

            rule.CertificateThumbprints.Add(thumbprint);
        }

        return rule;
    }
}

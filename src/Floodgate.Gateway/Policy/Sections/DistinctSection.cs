using Floodgate.Abuse;
using Floodgate.Rules;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// A rule's <c>distinct:</c>, which makes it count distinct values of one key part per key (docs/edge.md, abuse
/// signals). Builds the engine's <see cref="DistinctCounting"/>.
/// </summary>
/// <remarks>
/// <code>
/// distinct:
///   of: client_ip          # or network (/24 and /64), subject, claim:&lt;name&gt;, header:&lt;name&gt;
///   ipv4_prefix: 24        # client_ip only: the bits that count as one value (32 and 128 by default; network: 24 and 64)
///   ipv6_prefix: 64
///   action: ban            # reject (the default), ban, flag
///   status: 403            # reject: 429 (the default) or 403
///   ban: 1h                # ban: how long (1h by default)
/// </code>
/// </remarks>
internal sealed class DistinctSection(YamlReader reader)
{
    private static readonly string[] Fields = ["of", "ipv4_prefix", "ipv6_prefix", "action", "status", "ban"];

    /// <summary>The distinct settings at <paramref name="node"/>; <see langword="null"/> when refused (the errors say why).</summary>
    /// <param name="node">The <c>distinct</c> mapping.</param>
    /// <param name="field">Its path, for errors.</param>
    /// <param name="key">The rule's key: a ban names a subject or a client, so it needs one of those alone.</param>
    public DistinctCounting? Read(YamlNode node, string field, IReadOnlyList<KeyPart> key)
    {
        var map = reader.Map(node, field, Fields);
        if (map is null)
        {
            reader.Error(node, field, "expected a mapping: 'distinct: { of: client_ip, action: reject }'.");
            return null;
        }

        var errors = reader.Errors.Count;
        var ofText = reader.String(map, "of", field) ?? "client_ip";
        var network = string.Equals(ofText.Trim(), "network", StringComparison.OrdinalIgnoreCase);
        KeyPart of = KeyPart.ClientIp;
        if (!network)
        {
            try
            {
                of = KeyPart.Parse(ofText);
            }
            catch (FormatException e)
            {
                reader.Error(YamlReader.Get(map, "of"), $"{field}.of", e.Message);
                return null;
            }

            if (!of.IsIdentity)
            {
                reader.Error(YamlReader.Get(map, "of"), $"{field}.of", $"a distinct rule counts who calls: client_ip, network, subject, claim:<name> or header:<name>, not '{ofText}'.");
                return null;
            }
        }

        var v4 = reader.Integer(map, "ipv4_prefix", field, 8, 32);
        var v6 = reader.Integer(map, "ipv6_prefix", field, 8, 128);
        if (of.Kind != KeyPartKind.ClientIp && (v4 is not null || v6 is not null))
        {
            reader.Error(YamlReader.Get(map, "ipv4_prefix") ?? YamlReader.Get(map, "ipv6_prefix")!, field, "prefixes group client addresses: they need 'of: client_ip' or 'of: network'.");
        }

        if (key.Any(p => p == of))
        {
            reader.Error(node, $"{field}.of", $"the rule is keyed on '{of}' already: each key would only ever show one value. Key on what the values are counted per (subject for addresses, client_ip for subjects).");
        }

        var action = reader.Enum(map, "action", field, ("reject", DistinctAction.Reject), ("ban", DistinctAction.Ban), ("flag", DistinctAction.Flag)) ?? DistinctAction.Reject;
        var status = reader.Integer(map, "status", field, 100, 599);
        if (status is not null and not (429 or 403))
        {
            reader.Error(YamlReader.Get(map, "status"), $"{field}.status", "a distinct rule rejects with 429 or 403.");
        }
        else if (status is not null && action != DistinctAction.Reject)
        {
            reader.Error(YamlReader.Get(map, "status"), $"{field}.status", "a status is for 'action: reject'; a ban is answered as any ban.");
        }

        var ban = reader.Duration(map, "ban", field, TimeSpan.FromSeconds(1), TimeSpan.FromDays(365));
        if (ban is not null && action != DistinctAction.Ban)
        {
            reader.Error(YamlReader.Get(map, "ban"), $"{field}.ban", "a ban's duration is for 'action: ban'.");
        }

        if (action == DistinctAction.Ban && !(key.Count == 1 && key[0].Kind is KeyPartKind.Subject or KeyPartKind.ClientIp))
        {
            reader.Error(YamlReader.Get(map, "action")!, $"{field}.action", "a ban names a subject or a client: key the rule on [subject] or [client_ip] alone.");
        }

        if (reader.Errors.Count > errors)
        {
            return null;
        }

        return new DistinctCounting
        {
            Of = of,
            Ipv4Prefix = (int)(v4 ?? (network ? 24 : 32)),
            Ipv6Prefix = (int)(v6 ?? (network ? 64 : 128)),
            Action = action,
            RejectStatus = (int)(status ?? 429),
            BanDuration = ban ?? TimeSpan.FromHours(1),
        };
    }
}

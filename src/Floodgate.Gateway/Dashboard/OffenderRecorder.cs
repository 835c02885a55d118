using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Floodgate.Engine;
using Floodgate.Logging;
using Floodgate.Rules;

namespace Floodgate.Gateway.Dashboard;

/// <summary>
/// The top offenders per rule: subjects and client networks by rejections, and by a shadow rule's would-be rejections,
/// each in a <see cref="HeavyHitters"/> sketch of <see cref="Capacity"/> keys. Fed only by rejections
/// (<see cref="IRejectionObserver"/>), so an admitted request costs nothing here.
/// </summary>
internal sealed class OffenderRecorder : IRejectionObserver
{
    /// <summary>How many keys each sketch holds.</summary>
    public const int Capacity = 32;

    /// <summary>The most rules followed at once; rules past it (after many reloads renaming rules) are not followed.</summary>
    public const int MaxRules = 256;

    private readonly ConcurrentDictionary<string, RuleOffenders> _rules = new(StringComparer.Ordinal);

    public void OnRejected(in RateLimitDecision decision, IRequestContext request)
    {
        var rule = decision.Rule!.Name;
        if (!_rules.TryGetValue(rule, out var offenders))
        {
            if (_rules.Count >= MaxRules)
            {
                return;
            }

            offenders = _rules.GetOrAdd(rule, static _ => new RuleOffenders());
        }

        var (subjects, networks) = decision.IsShadowed ? (offenders.ShadowSubjects, offenders.ShadowNetworks) : (offenders.Subjects, offenders.Networks);
        Interlocked.Increment(ref decision.IsShadowed ? ref offenders.Shadowed : ref offenders.Rejected);
        if (request.Subject is { } subject)
        {
            // The client's text, cut so a key's size is bounded too.
            subjects.Add(LogValues.Escape(subject)!);
        }

        if (request.ClientIp is { } ip)
        {
            networks.Add(NetworkOf(ip));
        }
    }

    /// <summary>Each rule's top <paramref name="top"/> offenders, rules by name.</summary>
    public IReadOnlyList<RuleOffendersView> Snapshot(int top) =>
        [.. _rules.OrderBy(r => r.Key, StringComparer.Ordinal).Select(r => new RuleOffendersView(
            r.Key,
            new OffendersView(Interlocked.Read(ref r.Value.Rejected), r.Value.Subjects.Top(top), r.Value.Networks.Top(top)),
            new OffendersView(Interlocked.Read(ref r.Value.Shadowed), r.Value.ShadowSubjects.Top(top), r.Value.ShadowNetworks.Top(top))))];

    /// <summary>The client's network: its /24 for IPv4, its /64 for IPv6 (one host or one subscriber, in practice).</summary>
    internal static string NetworkOf(IPAddress ip)
    {
        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }

        Span<byte> bytes = stackalloc byte[16];
        ip.TryWriteBytes(bytes, out var length);
        var prefix = ip.AddressFamily == AddressFamily.InterNetwork ? 24 : 64;
        bytes[(prefix / 8)..length].Clear();
        return $"{new IPAddress(bytes[..length])}/{prefix}";
    }

    private sealed class RuleOffenders
    {
        public long Rejected;
        public long Shadowed;

        public HeavyHitters Subjects { get; } = new(Capacity);

        public HeavyHitters Networks { get; } = new(Capacity);

        public HeavyHitters ShadowSubjects { get; } = new(Capacity);

        public HeavyHitters ShadowNetworks { get; } = new(Capacity);
    }
}

/// <summary>One rule's offenders.</summary>
/// <param name="Rule">The rule's name.</param>
/// <param name="Rejected">Whom it rejected.</param>
/// <param name="Shadow">Whom it would have rejected, as a shadow rule.</param>
internal sealed record RuleOffendersView(string Rule, OffendersView Rejected, OffendersView Shadow);

/// <summary>Rejections and their top subjects and client networks.</summary>
/// <param name="Total">Rejections counted.</param>
/// <param name="Subjects">The top subjects.</param>
/// <param name="Networks">The top client networks.</param>
internal sealed record OffendersView(long Total, HeavyHitter[] Subjects, HeavyHitter[] Networks);

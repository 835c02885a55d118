using System.Text;
using Floodgate.AspNetCore.Access;
using Floodgate.AspNetCore.RateLimitIds;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;

namespace Floodgate.AspNetCore.Configuration;

/// <summary>
/// Reads the <c>Access</c> (bypass and deny lists) and <c>RateLimitId</c> sections into <see cref="FloodgateOptions.Access"/>
/// and <see cref="FloodgateOptions.RateLimitId"/>, as the policy's <c>deny</c>, <c>bypass</c> and <c>ratelimit_id</c>
/// are read for the gateway (docs/edge.md). Secrets are never read from the configuration itself: each names a
/// <c>File</c> or an <c>Env</c> variable, read whenever the configuration is (at start and on each reload). Problems are
/// recorded with their configuration path, never thrown.
/// </summary>
internal static class AccessConfigurationReader
{
    private static readonly string[] AccessFields = ["DeniedAddresses", "DeniedSubjects", "Bypass"];
    private static readonly string[] BypassFields = ["Name", "Tiers", "Networks", "Claims", "Header", "ClientCertificates"];
    private static readonly string[] HeaderFields = ["Name", "File", "Env"];
    private static readonly string[] IdFields = ["HeaderName", "Keys", "Claims", "Endpoints", "IssuePath", "Cookie", "OnInvalid"];
    private static readonly string[] KeyFields = ["Id", "File", "Env"];

    /// <summary>The <c>Access</c> section, when present.</summary>
    public static void ReadAccess(IConfigurationSection section, FloodgateOptions options, List<string> problems)
    {
        if (!section.Exists())
        {
            return;
        }

        Check(section, AccessFields, problems);
        var access = new AccessOptions();
        foreach (var address in Strings(section.GetSection("DeniedAddresses")))
        {
            access.DeniedAddresses.Add(address);
        }

        foreach (var subject in Strings(section.GetSection("DeniedSubjects")))
        {
            access.DeniedSubjects.Add(subject);
        }

        foreach (var child in section.GetSection("Bypass").GetChildren())
        {
            if (ReadBypass(child, problems) is { } rule)
            {
                access.Bypass.Add(rule);
            }
        }

        options.Access = access;
    }

    /// <summary>The <c>RateLimitId</c> section, when present.</summary>
    public static void ReadRateLimitId(IConfigurationSection section, FloodgateOptions options, List<string> problems)
    {
        if (!section.Exists())
        {
            return;
        }

        Check(section, IdFields, problems);
        var ids = new RateLimitIdOptions();
        if (section["HeaderName"] is { Length: > 0 } header)
        {
            ids.HeaderName = header;
        }

        foreach (var key in section.GetSection("Keys").GetChildren())
        {
            Check(key, KeyFields, problems);
            var id = key["Id"];
            if (string.IsNullOrEmpty(id))
            {
                problems.Add($"{key.Path}: every key needs an Id, such as k1.");
                continue;
            }

            if (ReadSecrets(key, problems, oneSecret: true) is [var secret])
            {
                ids.Keys.Add(new RateLimitIdKey(id, Encoding.UTF8.GetBytes(secret)));
            }
        }

        foreach (var claim in Strings(section.GetSection("Claims")))
        {
            ids.Claims.Add(claim);
        }

        foreach (var endpoint in Strings(section.GetSection("Endpoints")))
        {
            ids.EndpointClasses.Add(endpoint);
        }

        if (section["IssuePath"] is { Length: > 0 } path)
        {
            if (path.StartsWith('/'))
            {
                ids.IssuePath = new PathString(path);
            }
            else
            {
                problems.Add($"{section.GetSection("IssuePath").Path}: '{path}' is not a path starting with '/'.");
            }
        }

        ids.CookieName = section["Cookie"] is { Length: > 0 } cookie ? cookie : null;
        if (section["OnInvalid"] is { } onInvalid)
        {
            if (Enum.TryParse<InvalidRateLimitIdAction>(onInvalid, ignoreCase: true, out var action) && Enum.IsDefined(action) && !char.IsAsciiDigit(onInvalid.TrimStart('-')[0]))
            {
                ids.OnInvalid = action;
            }
            else
            {
                problems.Add($"{section.GetSection("OnInvalid").Path}: '{onInvalid}' is not one of Ignore, Unauthorized, TooManyRequests.");
            }
        }

        options.RateLimitId = ids;
    }

    private static BypassRule? ReadBypass(IConfigurationSection section, List<string> problems)
    {
        Check(section, BypassFields, problems);
        if (section["Name"] is not { Length: > 0 } name)
        {
            problems.Add($"{section.Path}: every bypass rule needs a Name; it names the rule in metrics.");
            return null;
        }

        var header = section.GetSection("Header");
        string? headerName = null;
        string[] secrets = [];
        if (header.Exists())
        {
            Check(header, HeaderFields, problems);
            headerName = header["Name"];
            if (string.IsNullOrEmpty(headerName))
            {
                problems.Add($"{header.Path}: the header needs a Name, such as X-Floodgate-Bypass.");
            }

            secrets = ReadSecrets(header, problems, oneSecret: false) ?? [];
        }

        var rule = new BypassRule { Name = name, HeaderName = headerName };
        foreach (var secret in secrets)
        {
            rule.HeaderSecrets.Add(secret);
        }

        foreach (var tier in Strings(section.GetSection("Tiers")))
        {
            if (Enum.TryParse<RateLimitTier>(tier, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed) && !char.IsAsciiDigit(tier[0]))
            {
                rule.Tiers.Add(parsed);
            }
            else
            {
                problems.Add($"{section.GetSection("Tiers").Path}: '{tier}' is not a tier (Edge, User, Service or Global).");
            }
        }

        foreach (var network in Strings(section.GetSection("Networks")))
        {
            rule.Networks.Add(network);
        }

        foreach (var claim in section.GetSection("Claims").GetChildren())
        {
            var values = Strings(claim);
            if (values.Count == 0)
            {
                problems.Add($"{claim.Path}: list the values of the claim that bypass, such as [\"billing\"].");
                continue;
            }

            rule.Claims[claim.Key] = values;
        }

        foreach (var thumbprint in Strings(section.GetSection("ClientCertificates")))
        {
            rule.CertificateThumbprints.Add(thumbprint);
        }

        return rule;
    }

    /// <summary>
    /// The secrets a section names by <c>File</c> (one per non-empty line, trimmed; a key's file is one secret) or
    /// <c>Env</c>; <see langword="null"/> when neither or both are given, or when the source cannot be read.
    /// </summary>
    private static string[]? ReadSecrets(IConfigurationSection section, List<string> problems, bool oneSecret)
    {
        var file = section["File"];
        var env = section["Env"];
        if ((file is null) == (env is null))
        {
            problems.Add($"{section.Path}: give the secret's File or its Env variable (one of them), never the secret itself.");
            return null;
        }

        string text;
        if (file is not null)
        {
            try
            {
                text = File.ReadAllText(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                problems.Add($"{section.GetSection("File").Path}: the secret file '{file}' cannot be read: {e.Message}");
                return null;
            }
        }
        else if (Environment.GetEnvironmentVariable(env!) is { Length: > 0 } value)
        {
            text = value;
        }
        else
        {
            problems.Add($"{section.GetSection("Env").Path}: the environment variable '{env}' is not set.");
            return null;
        }

        string[] secrets = oneSecret ? [text.Trim()] : [.. text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0)];
        if (secrets.Length == 0 || secrets[0].Length == 0)
        {
            problems.Add($"{section.Path}: the secret is empty.");
            return null;
        }

        return secrets;
    }

    private static List<string> Strings(IConfigurationSection section)
    {
        // A list (Networks:0, Networks:1...) or, from an environment variable, one value.
        if (section.Value is { Length: > 0 } one)
        {
            return [one];
        }

        return [.. section.GetChildren().Select(c => c.Value).OfType<string>().Where(v => v.Length > 0)];
    }

    private static void Check(IConfigurationSection section, string[] fields, List<string> problems)
    {
        foreach (var child in section.GetChildren())
        {
            if (!fields.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                problems.Add($"{child.Path}: unknown field; the fields here are {string.Join(", ", fields)}.");
            }
        }
    }
}

using Floodgate.ApiKeys;

namespace Floodgate.AspNetCore.Identity;

/// <summary>How API keys are recognized and what identity they resolve to (<see cref="ApiKeyIdentityResolver"/>).</summary>
public sealed class ApiKeyIdentityOptions
{
    /// <summary>The prefix every key begins with, such as <c>fg_live_</c>; a Bearer token with it is read as a key.</summary>
    public string Prefix { get; set; } = ApiKeySecret.DefaultPrefix;

    /// <summary>A header a key may be presented in besides <c>Authorization: Bearer</c>, such as <c>X-API-Key</c>; none by default.</summary>
    public string? Header { get; set; }

    /// <summary>The plan of a key that names none; <see langword="null"/> for the rules' default plan.</summary>
    public string? DefaultPlan { get; set; }

    /// <summary>What a route accepts unless its endpoint says otherwise (<see cref="AcceptCredentialsMetadata"/>): both by default.</summary>
    public CredentialKinds Accept { get; set; } = CredentialKinds.Both;

    /// <summary>The problems with these options; empty when they are valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (!ApiKeySecret.IsValidPrefix(Prefix))
        {
            problems.Add($"Prefix: '{Prefix}' must be 1 to {ApiKeySecret.MaxPrefixLength} ASCII letters, digits and underscores.");
        }
        else if (Prefix.StartsWith("ey", StringComparison.Ordinal))
        {
            problems.Add($"Prefix: '{Prefix}' begins as a JWT does; keys and tokens must be told apart.");
        }

        if (Header is { } header && (header.Length == 0 || header.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))))
        {
            problems.Add($"Header: '{header}' is not a header name.");
        }
        else if (string.Equals(Header, "Authorization", StringComparison.OrdinalIgnoreCase))
        {
            problems.Add("Header: keys in Authorization are read as Bearer tokens already; name another header, or none.");
        }

        if (DefaultPlan is { Length: 0 })
        {
            problems.Add("DefaultPlan: is empty; give a plan's name, or none for the rules' default plan.");
        }

        if (Accept is not (CredentialKinds.Jwt or CredentialKinds.ApiKey or CredentialKinds.Both))
        {
            problems.Add($"Accept: {(int)Accept} is not jwt, api_key or both.");
        }

        return problems;
    }
}

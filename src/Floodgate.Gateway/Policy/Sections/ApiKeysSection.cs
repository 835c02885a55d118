using Floodgate.AspNetCore.Identity;
using Microsoft.AspNetCore.Builder;
using Yarp.ReverseProxy.Configuration;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// The <c>api_keys</c> section, read into <see cref="ApiKeyIdentityOptions"/>: the key prefix, the header a key may come
/// in besides <c>Authorization: Bearer</c>, the plan of a key that names none, and what routes accept by default; and a
/// route's own <c>credentials</c> field (<c>jwt</c>, <c>api_key</c> or <c>both</c>).
/// </summary>
internal static class ApiKeysSection
{
    /// <summary>The route metadata that carries a route's <c>credentials</c> to its endpoint.</summary>
    public const string CredentialsMetadata = "Floodgate.Credentials";

    private const string Field = "api_keys";

    private static readonly (string, CredentialKinds)[] Kinds = [("jwt", CredentialKinds.Jwt), ("api_key", CredentialKinds.ApiKey), ("both", CredentialKinds.Both)];

    /// <summary>The section's options, and its fingerprint (empty without the section); <see langword="null"/> options without it.</summary>
    public static (ApiKeyIdentityOptions? Options, string Version) Read(YamlReader reader, YamlMappingNode root, PlanSet plans, bool hasJwt)
    {
        var node = YamlReader.Get(root, Field);
        var map = reader.Map(node, Field, "prefix", "header", "default_plan", "accept");
        if (map is null)
        {
            CheckRoutes(reader, root, null);
            return (null, string.Empty);
        }

        var errorsBefore = reader.Errors.Count;
        var options = new ApiKeyIdentityOptions
        {
            Prefix = reader.String(map, "prefix", Field) ?? Floodgate.ApiKeys.ApiKeySecret.DefaultPrefix,
            Header = reader.String(map, "header", Field),
            DefaultPlan = reader.String(map, "default_plan", Field) ?? plans.DefaultPlan,
            Accept = reader.Enum(map, "accept", Field, Kinds) ?? CredentialKinds.Both,
        };
        plans.CheckName(reader, YamlReader.Get(map, "default_plan"), $"{Field}.default_plan");
        if (reader.Errors.Count == errorsBefore)
        {
            foreach (var problem in options.Validate())
            {
                var (name, message) = problem.IndexOf(':', StringComparison.Ordinal) is > 0 and var colon ? (problem[..colon], problem[(colon + 2)..]) : (string.Empty, problem);
                var key = name switch { "Prefix" => "prefix", "Header" => "header", "DefaultPlan" => "default_plan", _ => "accept" };
                reader.Error(YamlReader.Get(map, key) ?? map, $"{Field}.{key}", message);
            }
        }

        if ((options.Accept & CredentialKinds.Jwt) != 0 && !hasJwt && YamlReader.Get(map, "accept") is { } accept)
        {
            reader.Error(accept, $"{Field}.accept", "JWTs are accepted, but the policy has no identity.jwt section to validate them; accept api_key, or add the section.");
        }

        CheckRoutes(reader, root, options);
        return (options, YamlFingerprint.Of(map, options.DefaultPlan));
    }

    /// <summary>
    /// <paramref name="config"/> with the credentials its route's <c>credentials</c> field names, as route metadata
    /// the gateway turns into the endpoint's <see cref="AcceptCredentialsMetadata"/>.
    /// </summary>
    public static RouteConfig Route(YamlReader reader, RouteConfig config, YamlMappingNode route, string field)
    {
        if (reader.Enum(route, "credentials", field, Kinds) is not { } kinds)
        {
            return config;
        }

        var metadata = new Dictionary<string, string>(config.Metadata ?? new Dictionary<string, string>(), StringComparer.Ordinal)
        {
            [CredentialsMetadata] = kinds.ToString(),
        };
        return config with { Metadata = metadata };
    }

    /// <summary>Gives <paramref name="endpoint"/> the credentials its route's metadata names, if any.</summary>
    public static void AcceptCredentials(IEndpointConventionBuilder endpoint, RouteConfig route)
    {
        if (route.Metadata is { } metadata && metadata.TryGetValue(CredentialsMetadata, out var text) && System.Enum.TryParse<CredentialKinds>(text, out var kinds))
        {
            endpoint.AcceptCredentials(kinds);
        }
    }

    /// <summary>A route that accepts API keys needs the <c>api_keys</c> section.</summary>
    private static void CheckRoutes(YamlReader reader, YamlMappingNode root, ApiKeyIdentityOptions? options)
    {
        if (options is not null || YamlReader.Get(root, "routes") is not YamlSequenceNode routes)
        {
            return;
        }

        for (var i = 0; i < routes.Children.Count; i++)
        {
            if (routes.Children[i] is YamlMappingNode route && YamlReader.Get(route, "credentials") is YamlScalarNode { Value: { } value } node
                && !string.Equals(value, "jwt", StringComparison.OrdinalIgnoreCase))
            {
                reader.Error(node, $"routes[{i}].credentials", $"'{value}' accepts API keys, but the policy has no api_keys section.");
            }
        }
    }
}

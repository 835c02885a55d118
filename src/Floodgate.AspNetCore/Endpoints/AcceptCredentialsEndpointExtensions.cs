using Floodgate.AspNetCore.Identity;

// The conventional namespace of endpoint conventions, so that they are found without a using of ours.
namespace Microsoft.AspNetCore.Builder;

/// <summary>Says which credentials an endpoint accepts when API keys are in use (<c>AddFloodgateApiKeys</c>).</summary>
public static class AcceptCredentialsEndpointExtensions
{
    /// <summary>The endpoint accepts <paramref name="kinds"/>: JWTs, API keys or both, in place of the default.</summary>
    /// <param name="builder">The endpoint, or a group.</param>
    /// <param name="kinds">The credentials it accepts.</param>
    public static TBuilder AcceptCredentials<TBuilder>(this TBuilder builder, CredentialKinds kinds)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        var metadata = new AcceptCredentialsMetadata(kinds);
        builder.Add(endpoint => endpoint.Metadata.Add(metadata));
        return builder;
    }
}

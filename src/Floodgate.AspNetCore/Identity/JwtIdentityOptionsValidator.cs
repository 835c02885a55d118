using Microsoft.Extensions.Options;

namespace Floodgate.AspNetCore.Identity;

/// <summary>Validates <see cref="JwtIdentityOptions"/>; each failure names the field.</summary>
public sealed class JwtIdentityOptionsValidator : IValidateOptions<JwtIdentityOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, JwtIdentityOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = Check(options);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>
    /// Checks a JSON Web Key Set document as the resolver reads <see cref="JwtIdentityOptions.JsonWebKeySet"/>, for a host
    /// that reads it from a file and names the file in its messages, as the gateway does.
    /// </summary>
    /// <param name="jwks">The document.</param>
    /// <param name="source">What each message starts with, such as <c>key file 'jwks.json'</c>.</param>
    /// <returns>What is wrong, one message each; empty when the resolver can use the document.</returns>
    public static IReadOnlyList<string> CheckJsonWebKeySet(string jwks, string source)
    {
        ArgumentNullException.ThrowIfNull(jwks);
        ArgumentNullException.ThrowIfNull(source);
        var errors = new List<string>();
        StaticKeys.LoadJsonWebKeySet(jwks, source, [], errors);
        return errors;
    }

    /// <summary>
    /// Checks a PEM text as the resolver reads an entry of <see cref="JwtIdentityOptions.PublicKeysPem"/>, for a host that
    /// reads it from a file and names the file in its messages, as the gateway does.
    /// </summary>
    /// <param name="pem">The text: public keys and certificates.</param>
    /// <param name="source">What each message starts with, such as <c>key file 'signing.pem'</c>.</param>
    /// <returns>What is wrong, one message each; empty when the resolver can use every block.</returns>
    public static IReadOnlyList<string> CheckPublicKeysPem(string pem, string source)
    {
        ArgumentNullException.ThrowIfNull(pem);
        ArgumentNullException.ThrowIfNull(source);
        var errors = new List<string>();
        StaticKeys.LoadPem(pem, source, [], errors);
        return errors;
    }

    internal static List<string> Check(JwtIdentityOptions options)
    {
        const string Prefix = nameof(JwtIdentityOptions) + ".";
        var errors = new List<string>();

        var hasAuthority = !string.IsNullOrWhiteSpace(options.Authority);
        var hasJwksUri = !string.IsNullOrWhiteSpace(options.JwksUri);
        if (hasAuthority && hasJwksUri)
            errors.Add($"{Prefix}{nameof(options.JwksUri)}: set either {nameof(options.Authority)} or {nameof(options.JwksUri)}, not both.");
        if (hasAuthority)
            CheckUrl(options.Authority!, nameof(options.Authority));
        if (hasJwksUri)
            CheckUrl(options.JwksUri!, nameof(options.JwksUri));

        var staticKeys = StaticKeys.Load(options, errors);
        var hasSecret = options.SymmetricSecret is not null;
        if (!hasAuthority && !hasJwksUri && staticKeys.Count == 0 && !hasSecret)
        {
            errors.Add($"{Prefix}{nameof(options.Authority)}: no signing keys; set {nameof(options.Authority)}, {nameof(options.JwksUri)}, " +
                $"{nameof(options.JsonWebKeySet)}, {nameof(options.PublicKeysPem)} or {nameof(options.SymmetricSecret)}.");
        }

        if (options.Audiences.Count == 0)
            errors.Add($"{Prefix}{nameof(options.Audiences)}: at least one audience is required.");
        for (var i = 0; i < options.Audiences.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(options.Audiences[i]))
                errors.Add($"{Prefix}{nameof(options.Audiences)}[{i}]: must not be empty.");
        }

        if (options.Issuers.Count == 0 && !hasAuthority)
            errors.Add($"{Prefix}{nameof(options.Issuers)}: at least one issuer is required unless {nameof(options.Authority)} is set.");
        for (var i = 0; i < options.Issuers.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(options.Issuers[i]))
                errors.Add($"{Prefix}{nameof(options.Issuers)}[{i}]: must not be empty.");
        }

        var hmac = false;
        for (var i = 0; i < options.Algorithms.Count; i++)
        {
            var alg = options.Algorithms[i];
            if (string.Equals(alg, "none", StringComparison.OrdinalIgnoreCase))
                errors.Add($"{Prefix}{nameof(options.Algorithms)}[{i}]: 'none' is never allowed.");
            else if (!JwtIdentityOptions.SupportedAlgorithms.Contains(alg, StringComparer.Ordinal))
                errors.Add($"{Prefix}{nameof(options.Algorithms)}[{i}]: '{alg}' is not supported; use one of {string.Join(", ", JwtIdentityOptions.SupportedAlgorithms)}.");
            else if (alg.StartsWith("HS", StringComparison.Ordinal))
                hmac = true;
        }

        if (hmac && !hasSecret)
            errors.Add($"{Prefix}{nameof(options.Algorithms)}: HS256/384/512 require {nameof(options.SymmetricSecret)}.");
        if (hasSecret)
        {
            if (System.Text.Encoding.UTF8.GetByteCount(options.SymmetricSecret!) < 32)
                errors.Add($"{Prefix}{nameof(options.SymmetricSecret)}: must be at least 32 bytes.");
            if (!hmac)
                errors.Add($"{Prefix}{nameof(options.SymmetricSecret)}: list HS256, HS384 or HS512 in {nameof(options.Algorithms)} to use a shared secret.");
        }

        if (options.ClockSkew < TimeSpan.Zero || options.ClockSkew > TimeSpan.FromMinutes(5))
            errors.Add($"{Prefix}{nameof(options.ClockSkew)}: must be between 0 and 5 minutes.");

        for (var i = 0; i < options.SubjectClaims.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(options.SubjectClaims[i]))
                errors.Add($"{Prefix}{nameof(options.SubjectClaims)}[{i}]: must not be empty.");
        }

        if (options.SubjectClaims.Distinct(StringComparer.Ordinal).Count() != options.SubjectClaims.Count)
            errors.Add($"{Prefix}{nameof(options.SubjectClaims)}: lists a claim twice.");
        if (string.IsNullOrWhiteSpace(options.PlanClaim))
            errors.Add($"{Prefix}{nameof(options.PlanClaim)}: must not be empty.");
        if (options.DefaultPlan is { } plan && string.IsNullOrWhiteSpace(plan))
            errors.Add($"{Prefix}{nameof(options.DefaultPlan)}: must be null or a plan name.");

        if (options.KeyRefreshInterval < TimeSpan.FromSeconds(2))
            errors.Add($"{Prefix}{nameof(options.KeyRefreshInterval)}: must be at least 2 seconds.");
        if (options.KeyAutomaticRefreshInterval < TimeSpan.FromMinutes(5))
            errors.Add($"{Prefix}{nameof(options.KeyAutomaticRefreshInterval)}: must be at least 5 minutes.");
        if (options.BackchannelTimeout <= TimeSpan.Zero || options.BackchannelTimeout > TimeSpan.FromMinutes(5))
            errors.Add($"{Prefix}{nameof(options.BackchannelTimeout)}: must be more than 0 and at most 5 minutes.");
        if (options.TokenCacheSize < 0)
            errors.Add($"{Prefix}{nameof(options.TokenCacheSize)}: must be 0 (no cache) or more.");

        return errors;

        void CheckUrl(string value, string field)
        {
            if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
                errors.Add($"{Prefix}{field}: '{value}' is not an absolute http(s) URL.");
            else if (uri.Scheme == Uri.UriSchemeHttp && options.RequireHttpsMetadata)
                errors.Add($"{Prefix}{field}: '{value}' is not HTTPS; set {nameof(options.RequireHttpsMetadata)} to false to allow HTTP (local tests only).");
        }
    }
}

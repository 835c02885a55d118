using Floodgate.AspNetCore.Identity;
using Floodgate.Gateway.Policy;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.Gateway.Identity;

/// <summary>Builds the <see cref="JwtIdentityResolver"/> an <c>identity.jwt</c> section describes.</summary>
internal static class IdentityFactory
{
    /// <exception cref="PolicyException">The section is invalid, or a key file cannot be read.</exception>
    public static JwtIdentityResolver Create(JwtPolicy jwt, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(jwt);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var options = ToOptions(jwt);
        try
        {
            return new JwtIdentityResolver(Options.Create(options), time, loggerFactory.CreateLogger<JwtIdentityResolver>());
        }
        catch (OptionsValidationException e)
        {
            throw new PolicyException([.. e.Failures.Select(f => new PolicyError("policy", 0, 0, "identity.jwt", f))]);
        }
    }

    /// <exception cref="PolicyException">A key file cannot be read, or holds no usable key; the message names the file.</exception>
    public static JwtIdentityOptions ToOptions(JwtPolicy jwt)
    {
        ArgumentNullException.ThrowIfNull(jwt);
        var options = new JwtIdentityOptions
        {
            Authority = jwt.Authority,
            JwksUri = jwt.JwksUrl,
            SymmetricSecret = jwt.Secret,
            PlanClaim = jwt.PlanClaim,
            DefaultPlan = jwt.DefaultPlan,
            ClockSkew = jwt.ClockSkew,
            RequireHttpsMetadata = jwt.RequireHttps,
        };
        foreach (var issuer in jwt.Issuers)
        {
            options.Issuers.Add(issuer);
        }

        foreach (var audience in jwt.Audiences)
        {
            options.Audiences.Add(audience);
        }

        foreach (var claim in jwt.SubjectClaims)
        {
            options.SubjectClaims.Add(claim);
        }

        foreach (var algorithm in jwt.Algorithms)
        {
            options.Algorithms.Add(algorithm);
        }

        // Each file is checked on its own with the resolver's readers, so that a message names the file (and, in a PEM
        // file of several blocks, the block); the resolver then finds nothing left to refuse in them.
        var errors = new List<string>();
        var keys = new List<Microsoft.IdentityModel.Tokens.SecurityKey>();
        foreach (var file in jwt.KeyFiles)
        {
            string text;
            try
            {
                text = File.ReadAllText(PolicyLoader.ExpandHome(file));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new PolicyException([new PolicyError("policy", 0, 0, "identity.jwt.keys", $"the key file '{file}' cannot be read: {e.Message}")]);
            }

            var source = $"key file '{file}'";
            if (text.TrimStart().StartsWith('{'))
            {
                if (options.JsonWebKeySet is not null)
                {
                    throw new PolicyException([new PolicyError("policy", 0, 0, "identity.jwt.keys", $"'{file}' is a second JWKS file; put every JSON key in one JWKS file (PEM files may be several).")]);
                }

                StaticKeys.LoadJsonWebKeySet(text, source, keys, errors);
                options.JsonWebKeySet = text;
            }
            else
            {
                StaticKeys.LoadPem(text, source, keys, errors);
                options.PublicKeysPem.Add(text);
            }
        }

        if (errors.Count > 0)
        {
            throw new PolicyException([.. errors.Select(e => new PolicyError("policy", 0, 0, "identity.jwt.keys", e))]);
        }

        return options;
    }
}

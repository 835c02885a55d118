using System.Security.Claims;

namespace Floodgate.AspNetCore.Identity;

// The subject and the plan, named from a validated token's claims.
public sealed partial class JwtIdentityResolver
{
    /// <summary>The plan the token's plan claim names; the default plan when it is absent or empty.</summary>
    private string? Plan(ClaimsIdentity identity)
    {
        var plan = identity.FindFirst(_planClaim)?.Value;
        return string.IsNullOrEmpty(plan) ? _defaultPlan : plan;
    }

    private string? Subject(ClaimsIdentity identity)
    {
        if (_subjectClaims.Length == 1)
            return Single(identity, _subjectClaims[0]);

        // Length-prefixed, so that ("a|b", "c") and ("a", "b|c") can never give the same subject.
        var builder = new System.Text.StringBuilder();
        foreach (var claim in _subjectClaims)
        {
            var value = Single(identity, claim);
            if (value is null)
                return null;
            builder.Append(value.Length).Append(':').Append(value);
        }

        return builder.ToString();

        static string? Single(ClaimsIdentity identity, string type)
        {
            string? found = null;
            foreach (var claim in identity.FindAll(type))
            {
                if (found is not null)
                    return null;
                found = claim.Value;
            }

            return string.IsNullOrEmpty(found) ? null : found;
        }
    }
}

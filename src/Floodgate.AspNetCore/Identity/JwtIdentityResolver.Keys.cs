using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.AspNetCore.Identity;

// The keys in force and the token validation parameters built from them.
public sealed partial class JwtIdentityResolver
{
    /// <summary>
    /// The keys in force: the remote and static keys; the static keys alone without a remote source, or while the
    /// remote keys cannot be fetched (then <c>RemoteMissing</c>); <see langword="null"/> when there are no keys at all.
    /// </summary>
    private async ValueTask<(KeySnapshot? Snapshot, bool RemoteMissing)> GetSnapshotAsync(CancellationToken cancellationToken)
    {
        if (_remote is null)
            return (_staticSnapshot, false);
        var configuration = await _remote.GetAsync(cancellationToken).ConfigureAwait(false);
        return configuration is null ? (_staticSnapshot, true) : (SnapshotFor(configuration), false);
    }

    private KeySnapshot SnapshotFor(OpenIdConnectConfiguration configuration)
    {
        var current = Volatile.Read(ref _remoteSnapshot);
        if (current is not null && ReferenceEquals(current.Configuration, configuration))
            return current;
        List<SecurityKey> keys = [.. _staticKeys, .. configuration.SigningKeys.Where(key => !StaticKeys.IsSymmetric(key))];
        var snapshot = NewSnapshot(configuration, keys);
        Volatile.Write(ref _remoteSnapshot, snapshot);
        return snapshot;
    }

    private KeySnapshot NewSnapshot(OpenIdConnectConfiguration? configuration, List<SecurityKey> keys)
    {
        List<SecurityKey> keyless = [.. keys.Where(key => string.IsNullOrEmpty(key.KeyId))];
        return new KeySnapshot(configuration, keys, BuildParameters(keys, configuration), keyless.Count == 0 ? null : BuildParameters(keyless, configuration));
    }

    private TokenValidationParameters BuildParameters(List<SecurityKey> keys, OpenIdConnectConfiguration? configuration)
    {
        List<string> issuers = [.. _issuers];
        if (issuers.Count == 0)
        {
            if (!string.IsNullOrEmpty(configuration?.Issuer))
                issuers.Add(configuration.Issuer);
            if (_authority is not null)
                issuers.Add(_authority);
        }

        return new TokenValidationParameters
        {
            ValidIssuers = issuers,
            ValidateIssuer = true,
            ValidAudiences = _audiences,
            ValidateAudience = true,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = _clockSkew,
            ValidAlgorithms = [.. _algorithms],
            IssuerSigningKeys = keys,
            TryAllIssuerSigningKeys = true,
            LifetimeValidator = ValidateLifetime,
            AuthenticationType = "Bearer",
            NameClaimType = _subjectClaims[0],
            RoleClaimType = "roles",
        };
    }

    /// <summary>Checks <c>nbf</c> and <c>exp</c> on the injected clock, with the configured skew.</summary>
    private bool ValidateLifetime(DateTime? notBefore, DateTime? expires, SecurityToken token, TokenValidationParameters parameters)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        var skew = parameters.ClockSkew;
        if (expires is not { } exp)
            throw new SecurityTokenNoExpirationException("The token has no expiry.");
        if (notBefore is { } nbf && nbf > exp)
            throw new SecurityTokenInvalidLifetimeException("The token's nbf is after its exp.") { NotBefore = nbf, Expires = exp };
        if (notBefore is { } early && early > now + skew)
            throw new SecurityTokenNotYetValidException("The token is not yet valid.") { NotBefore = early };
        if (exp < now - skew)
            throw new SecurityTokenExpiredException("The token has expired.") { Expires = exp };
        return true;
    }

    /// <summary>The keys in force and the validation parameters built from them.</summary>
    private sealed class KeySnapshot
    {
        private readonly HashSet<string> _keyIds = new(StringComparer.Ordinal);

        public KeySnapshot(OpenIdConnectConfiguration? configuration, List<SecurityKey> keys, TokenValidationParameters parameters, TokenValidationParameters? keylessParameters)
        {
            Configuration = configuration;
            Parameters = parameters;
            KeylessParameters = keylessParameters;
            foreach (var key in keys)
            {
                if (!string.IsNullOrEmpty(key.KeyId))
                    _keyIds.Add(key.KeyId);
            }
        }

        public OpenIdConnectConfiguration? Configuration { get; }

        /// <summary>All the keys: the key a token's kid names, or every key for a token without a kid.</summary>
        public TokenValidationParameters Parameters { get; }

        /// <summary>The keys without a kid, for a token whose kid names none of the keys; <see langword="null"/> when there are none.</summary>
        public TokenValidationParameters? KeylessParameters { get; }

        public bool Knows(string kid) => _keyIds.Contains(kid);
    }
}

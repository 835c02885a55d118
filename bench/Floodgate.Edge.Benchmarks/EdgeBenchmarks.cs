using System.Net;
using System.Security.Cryptography;
using System.Text;
using BenchmarkDotNet.Attributes;
using Floodgate.AspNetCore.Access;
using Floodgate.AspNetCore.RateLimitIds;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.Edge.Benchmarks;

/// <summary>
/// The rate-limit id's check (parse, then the tag's HMAC compared in constant time: what the gateway does on every request
/// that carries one, before the edge tier) beside the JWT signature checks it lets a flood skip, and the access lists'
/// address lookups.
/// </summary>
[MemoryDiagnoser]
public class EdgeBenchmarks
{
    private static readonly byte[] Secret = Encoding.UTF8.GetBytes(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = true };
    private string _id = string.Empty;
    private string _rs256 = string.Empty;
    private string _es256 = string.Empty;
    private TokenValidationParameters _rsParameters = null!;
    private TokenValidationParameters _esParameters = null!;
    private AddressSet _denyList = null!;
    private IPAddress _client = null!;

    [GlobalSetup]
    public void Setup()
    {
        _id = RateLimitId.Create(Secret, "k1", "user-1234567", "account-42");
        var rsa = new RsaSecurityKey(RSA.Create(2048)) { KeyId = "rsa" };
        var ec = new ECDsaSecurityKey(ECDsa.Create(ECCurve.NamedCurves.nistP256)) { KeyId = "ec" };
        _rs256 = Token(new SigningCredentials(rsa, SecurityAlgorithms.RsaSha256));
        _es256 = Token(new SigningCredentials(ec, SecurityAlgorithms.EcdsaSha256));
        _rsParameters = Parameters(rsa);
        _esParameters = Parameters(ec);

        // A deny list of 1,000 addresses and 100 ranges; the client is in none of them (the common case: every request pays it).
        var entries = Enumerable.Range(0, 1000).Select(i => $"203.0.{i / 256}.{i % 256}")
            .Concat(Enumerable.Range(0, 100).Select(i => $"198.{i}.0.0/16"));
        _denyList = new AddressSet(entries);
        _client = IPAddress.Parse("192.0.2.77");
    }

    [Benchmark(Baseline = true, Description = "rate-limit id: parse and verify the tag (HMAC-SHA256)")]
    public bool VerifyRateLimitId()
    {
        Span<byte> uid = stackalloc byte[RateLimitId.PartBytes];
        Span<byte> tag = stackalloc byte[RateLimitId.PartBytes];
        return RateLimitId.TryParse(_id, out var keyId, uid, tag) && RateLimitId.VerifyTag(Secret, keyId, uid, tag);
    }

    [Benchmark(Description = "rate-limit id: bind to the subject (uid's HMAC-SHA256 again)")]
    public byte BindRateLimitId()
    {
        Span<byte> uid = stackalloc byte[RateLimitId.PartBytes];
        RateLimitId.Uid(Secret, "user-1234567", ["account-42"], uid);
        return uid[0];
    }

    [Benchmark(Description = "JWT RS256: validate (signature, lifetime, issuer, audience)")]
    public async Task<bool> ValidateRs256() => (await _handler.ValidateTokenAsync(_rs256, _rsParameters)).IsValid;

    [Benchmark(Description = "JWT ES256: validate (signature, lifetime, issuer, audience)")]
    public async Task<bool> ValidateEs256() => (await _handler.ValidateTokenAsync(_es256, _esParameters)).IsValid;

    [Benchmark(Description = "deny list: 1,000 addresses + 100 ranges, a miss")]
    public bool DenyListMiss() => _denyList.Contains(_client);

    private string Token(SigningCredentials credentials) => _handler.CreateToken(new SecurityTokenDescriptor
    {
        Issuer = "https://issuer.example",
        Audience = "api",
        Claims = new Dictionary<string, object> { ["sub"] = "user-1234567", ["account"] = "account-42" },
        Expires = DateTime.UtcNow.AddHours(1),
        SigningCredentials = credentials,
    });

    private static TokenValidationParameters Parameters(SecurityKey key) => new()
    {
        ValidIssuer = "https://issuer.example",
        ValidAudience = "api",
        IssuerSigningKey = key,
    };
}

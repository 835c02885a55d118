using BenchmarkDotNet.Attributes;
using Floodgate.ApiKeys;
using Floodgate.AspNetCore.Identity;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace Floodgate.Benchmarks;

/// <summary>
/// What verifying an API key costs the identity step, against what a JWT costs it once validated and cached: 100,000
/// keys stored (memory store), 1,000 requests each presenting a different key (or a different cached JWT), visited in
/// a fixed shuffled order through <see cref="IIdentityResolver.TryResolveCached"/>, the call the middleware makes
/// first. A key is one SHA-256 hash of the key, a lookup of its id and a constant-time compare; a cached JWT is one
/// SHA-256 hash of the token and a cache lookup. Also the same keys through the resolver that routes between keys and
/// JWTs, as the gateway uses it.
/// </summary>
[MemoryDiagnoser]
public class ApiKeyBenchmarks
{
    private const int Stored = 100_000;
    private const int Requests = 1_000;

    private HttpContext[] _keyRequests = null!;
    private HttpContext[] _tokenRequests = null!;
    private ApiKeyIdentityResolver _keys = null!;
    private CredentialIdentityResolver _both = null!;
    private JwtIdentityResolver _jwt = null!;
    private DemoTokenIssuer _issuer = null!;

    [GlobalSetup]
    public void Setup()
    {
        var store = new MemoryApiKeyStore();
        var keys = new string[Stored];
        for (var i = 0; i < Stored; i++)
        {
            var id = ApiKeySecret.NewId();
            var (key, hash) = ApiKeySecret.NewKey(ApiKeySecret.DefaultPrefix, id);
            _ = store.CreateAsync(new ApiKeyRecord(id, hash, $"subject-{i}", null, "pro", DateTimeOffset.UtcNow)).AsTask().Result;
            keys[i] = key;
        }

        _issuer = DemoTokenIssuer.CreateEcdsa("https://issuer.bench", "api");
        _jwt = new JwtIdentityResolver(Options.Create(new JwtIdentityOptions { JsonWebKeySet = _issuer.PublicJsonWebKeySet, Issuers = { _issuer.Issuer }, Audiences = { _issuer.Audience } }));
        _keys = new ApiKeyIdentityResolver(store, new ApiKeyIdentityOptions());
        _both = new CredentialIdentityResolver(_jwt, _keys);

        var order = new Random(7);
        _keyRequests = [.. Enumerable.Range(0, Requests).Select(_ => Request(keys[order.Next(Stored)]))];
        _tokenRequests = [.. Enumerable.Range(0, Requests).Select(i => Request(_issuer.Issue($"subject-{i}", "pro", TimeSpan.FromHours(1))))];

        // Every token validated once, so each request below is a cache hit; every key used once, as after its first use.
        foreach (var request in _tokenRequests)
        {
            _ = _jwt.ResolveAsync(request, CancellationToken.None).AsTask().Result;
        }

        foreach (var request in _keyRequests)
        {
            if (!_keys.TryResolveCached(request, out var identity) || identity.Status != IdentityStatus.Valid)
            {
                throw new InvalidOperationException("a stored key was not verified");
            }
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _jwt.Dispose();
        _issuer.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Requests)]
    public int Cached_jwt()
    {
        var valid = 0;
        foreach (var request in _tokenRequests)
        {
            valid += _jwt.TryResolveCached(request, out _) ? 1 : 0;
        }

        return valid;
    }

    [Benchmark(OperationsPerInvoke = Requests)]
    public int Api_key()
    {
        var valid = 0;
        foreach (var request in _keyRequests)
        {
            valid += _keys.TryResolveCached(request, out _) ? 1 : 0;
        }

        return valid;
    }

    [Benchmark(OperationsPerInvoke = Requests)]
    public int Api_key_beside_jwts()
    {
        var valid = 0;
        foreach (var request in _keyRequests)
        {
            valid += _both.TryResolveCached(request, out _) ? 1 : 0;
        }

        return valid;
    }

    private static DefaultHttpContext Request(string credential)
    {
        var context = new DefaultHttpContext();
        context.Request.Headers.Authorization = "Bearer " + credential;
        return context;
    }
}

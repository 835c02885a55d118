using Floodgate.AspNetCore.Identity;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.AspNetCore.Tests.Identity;

/// <summary>
/// The remote key source of the JWT resolver against a real identity provider: when it fetches, what it logs when a
/// fetch fails, and what it reports.
/// </summary>
public sealed class KeySourceTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly List<IDisposable> _disposables = [];
    private readonly FakeLogger<JwtIdentityResolver> _logs = new();
    private TestIdentityProvider _idp = null!;

    public async Task InitializeAsync() => _idp = await TestIdentityProvider.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var disposable in _disposables)
            disposable.Dispose();
        await _idp.DisposeAsync();
    }

    [Fact]
    public async Task The_first_fetch_starts_the_unknown_kid_refresh_interval()
    {
        var resolver = Resolver();
        var now = _time.GetUtcNow();
        Assert.Equal(IdentityStatus.Valid, (await Resolve(resolver, _idp.CreateToken(now: now))).Status);
        Assert.Equal(1, _idp.JwksRequests);

        // The keys are a moment old: an unknown kid now is not a reason to fetch them again.
        var forged = _idp.Sign(new SigningCredentials(new RsaSecurityKey(TestIdentityProvider.PooledRsa(33)) { KeyId = "forged" }, SecurityAlgorithms.RsaSha256), now: now);
        Assert.Equal(IdentityErrors.UnknownKey, (await Resolve(resolver, forged)).ErrorDescription);
        Assert.Equal(1, _idp.JwksRequests);

        // A full interval later it is.
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(IdentityErrors.UnknownKey, (await Resolve(resolver, forged)).ErrorDescription);
        Assert.Equal(2, _idp.JwksRequests);
    }

    [Fact]
    public async Task A_failed_first_fetch_is_logged_at_error_in_our_words_without_a_stack_trace()
    {
        _idp.Failing = true;
        var resolver = Resolver();

        Assert.Equal(IdentityStatus.Unavailable, (await Resolve(resolver, _idp.CreateToken(now: _time.GetUtcNow()))).Status);

        var line = Assert.Single(_logs.Collector.AtLeast(LogLevel.Warning));
        Assert.Equal(LogLevel.Error, line.Level);
        Assert.Null(line.Exception);
        Assert.Contains(_idp.Authority + "/.well-known/openid-configuration", line.Message, StringComparison.Ordinal);
        Assert.Contains("500", line.Message, StringComparison.Ordinal);
        Assert.Contains((_time.GetUtcNow() + TimeSpan.FromSeconds(30)).ToString("u", System.Globalization.CultureInfo.InvariantCulture), line.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("IDX", line.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("0001", line.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failed_refresh_while_keys_are_in_force_is_logged_at_error_and_the_keys_stay()
    {
        var resolver = Resolver();
        var now = _time.GetUtcNow();
        Assert.Equal(IdentityStatus.Valid, (await Resolve(resolver, _idp.CreateToken(now: now))).Status);

        _idp.Failing = true;
        _time.Advance(TimeSpan.FromSeconds(31));
        var kid = _idp.Rotate();
        var rotated = await Resolve(resolver, _idp.CreateToken(kid, "bob", now));
        Assert.Equal(IdentityErrors.UnknownKey, rotated.ErrorDescription);

        var line = Assert.Single(_logs.Collector.AtLeast(LogLevel.Warning));
        Assert.Equal(LogLevel.Error, line.Level);
        Assert.Null(line.Exception);
        Assert.Contains(_idp.Authority + "/.well-known/openid-configuration", line.Message, StringComparison.Ordinal);
        Assert.Contains("500", line.Message, StringComparison.Ordinal);
        Assert.Contains("stay in force", line.Message, StringComparison.Ordinal);

        // The keys fetched before the outage still validate, a token never seen before included.
        Assert.Equal("carol", (await Resolve(resolver, _idp.CreateToken(subject: "carol", now: now))).Subject);
    }

    [Fact]
    public async Task A_resolver_built_from_one_with_the_same_key_source_takes_over_its_keys_through_an_outage()
    {
        var first = Resolver();
        var now = _time.GetUtcNow();
        Assert.Equal(IdentityStatus.Valid, (await Resolve(first, _idp.CreateToken(now: now))).Status);
        _idp.Failing = true;

        // Other settings, the same source: the new resolver validates with the keys in hand, fetching nothing, and keeps
        // them once the first one is disposed.
        var second = Track(new JwtIdentityResolver(Settings(o => o.ClockSkew = TimeSpan.FromSeconds(5)), _time, _logs, null, first));
        Assert.True(second.SharesKeySourceWith(first));
        first.Dispose();
        Assert.Equal("bob", (await Resolve(second, _idp.CreateToken(subject: "bob", now: now))).Subject);
        Assert.Equal(1, _idp.DiscoveryRequests);
        Assert.True(second.KeyStatus!.HasKeys);

        // Another source, or the same URL fetched another way, is a source of its own.
        var third = Track(new JwtIdentityResolver(Settings(o =>
        {
            (o.Authority, o.JwksUri) = (null, _idp.JwksUri);
            o.Issuers.Add(_idp.Issuer);
        }), _time, _logs, null, second));
        var fourth = Track(new JwtIdentityResolver(Settings(o => o.KeyRefreshInterval = TimeSpan.FromSeconds(10)), _time, _logs, null, second));
        Assert.False(third.SharesKeySourceWith(second));
        Assert.False(fourth.SharesKeySourceWith(second));
        Assert.False(third.KeyStatus!.HasKeys);
    }

    [Fact]
    public async Task After_a_failed_fetch_the_keys_are_fetched_again_on_schedule_without_waiting_for_a_request()
    {
        _idp.Failing = true;
        var resolver = Resolver();
        var failed = await resolver.FetchKeysAsync(CancellationToken.None);

        Assert.False(failed!.HasKeys);
        Assert.Equal(_time.GetUtcNow(), failed.FailedAt);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(30), failed.NextAttempt);
        Assert.Equal($"{failed.Address} answered HTTP 500 (Internal Server Error).", failed.Error);

        // Not a request: the retry is due (a replica reported unready gets no request to fetch with).
        _idp.Failing = false;
        _time.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(1, _idp.DiscoveryRequests);
        _time.Advance(TimeSpan.FromSeconds(1));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (resolver.KeyStatus is not { HasKeys: true } && DateTime.UtcNow < deadline)
            await Task.Delay(10);

        var fetched = resolver.KeyStatus!;
        Assert.True(fetched.HasKeys);
        Assert.Equal(_time.GetUtcNow(), fetched.FetchedAt);
        Assert.Null(fetched.Error);
        Assert.Equal(2, _idp.DiscoveryRequests);
    }

    private JwtIdentityOptions Settings(Action<JwtIdentityOptions>? configure = null)
    {
        var options = new JwtIdentityOptions { Authority = _idp.Authority, RequireHttpsMetadata = false };
        options.Audiences.Add(TestIdentityProvider.DefaultAudience);
        configure?.Invoke(options);
        return options;
    }

    private JwtIdentityResolver Resolver(Action<JwtIdentityOptions>? configure = null) =>
        Track(new JwtIdentityResolver(Options.Create(Settings(configure)), _time, _logs));

    private JwtIdentityResolver Track(JwtIdentityResolver resolver)
    {
        _disposables.Add(resolver);
        return resolver;
    }

    private static async Task<IdentityResult> Resolve(JwtIdentityResolver resolver, string token)
    {
        var context = new DefaultHttpContext();
        context.Request.Headers.Authorization = "Bearer " + token;
        return await resolver.ResolveAsync(context, CancellationToken.None);
    }
}

using System.Diagnostics;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Xunit.Abstractions;

namespace Floodgate.Redis.Tests;

/// <summary>A TLS-only redis-server whose certificate a private CA made for the test signed.</summary>
public sealed class TlsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(100);

    // Scheduling slack on a shared 2-core machine: a decision may be answered a little after its timeout fires.
    private static readonly TimeSpan Slack = TimeSpan.FromMilliseconds(200);

    [Fact]
    public async Task A_store_that_trusts_the_private_CA_decides_over_TLS()
    {
        using var certificates = TestCertificates.Create();
        using var server = RedisServer.StartTls(certificates.ServerCertificate, certificates.ServerKey, certificates.Authority);
        Assert.DoesNotContain("PONG", server.PlainCli("PING"), StringComparison.Ordinal);

        // No ssl=true in the string: trusting a CA turns TLS on.
        await using var store = await TestStores.ConnectAsync(server.Configuration, o => o.TrustedCertificateAuthority = certificates.Authority, prefix: "tls");
        Assert.True(store.Connection.IsConnected);
        await AssertDecidesExactlyAsync(store, server, "tls");
        Assert.Equal(0, store.Failures);
    }

    public static TheoryData<string> Untrusted() => ["no CA", "another CA", "another host name"];

    [Theory]
    [MemberData(nameof(Untrusted))]
    public async Task An_untrusted_server_is_never_used_and_the_store_answers_by_its_failure_mode_at_once(string trust)
    {
        using var certificates = TestCertificates.Create();
        using var other = TestCertificates.Create("Another CA");
        using var server = RedisServer.StartTls(certificates.ServerCertificate, certificates.ServerKey, certificates.Authority);
        var configuration = server.Configuration + ",ssl=true,connectTimeout=1000";
        var watch = Stopwatch.StartNew();
        await using var store = await TestStores.ConnectAsync(
            trust == "another host name" ? configuration + ",sslHost=redis.example.com" : configuration,
            o =>
            {
                o.TrustedCertificateAuthority = trust switch
                {
                    "no CA" => null,
                    "another CA" => other.Authority,
                    _ => certificates.Authority,
                };
                o.Timeout = Timeout;
                o.FailureMode = StoreFailureMode.Closed;
            });
        output.WriteLine($"{trust}: connecting took {watch.Elapsed.TotalMilliseconds:F0} ms");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"connecting took {watch.Elapsed}");
        Assert.False(store.Connection.IsConnected);

        var check = new RateLimitCheck(Limit.FixedWindow(new Rate(3, 1, RateUnit.Hour)), StoreKey.Create("tls", "alice"), 1, false);
        for (var i = 0; i < 20; i++)
        {
            var one = Stopwatch.StartNew();
            var outcome = await store.DecideOneAsync(check);
            Assert.True(one.Elapsed <= Timeout + Slack, $"decision {i} took {one.Elapsed.TotalMilliseconds} ms");
            Assert.True(outcome.IsStoreFailure, $"decision {i} was not a store failure");
            Assert.False(outcome.Outcome.IsAllowed);
        }

        Assert.Equal(string.Empty, server.Cli("--scan"));
    }

    [Fact]
    public async Task Mutual_TLS_admits_the_store_that_presents_its_client_certificate_and_only_that()
    {
        using var certificates = TestCertificates.Create();
        using var server = RedisServer.StartTls(certificates.ServerCertificate, certificates.ServerKey, certificates.Authority, (certificates.ClientCertificate, certificates.ClientKey));

        await using (var anonymous = await TestStores.ConnectAsync(server.Configuration + ",connectTimeout=1000", o =>
        {
            o.TrustedCertificateAuthority = certificates.Authority;
            o.Timeout = Timeout;
        }))
        {
            var outcome = await anonymous.DecideOneAsync(new RateLimitCheck(Limit.FixedWindow(new Rate(3, 1, RateUnit.Hour)), StoreKey.Create("mtls", "alice"), 1, false));
            Assert.True(outcome.IsStoreFailure);
            Assert.False(anonymous.Connection.IsConnected);
        }

        await using var store = await TestStores.ConnectAsync(server.Configuration, o =>
        {
            o.TrustedCertificateAuthority = certificates.Authority;
            o.ClientCertificate = certificates.ClientCertificate;
            o.ClientCertificateKey = certificates.ClientKey;
        }, prefix: "mtls");
        await AssertDecidesExactlyAsync(store, server, "mtls");
    }

    [Fact]
    public async Task A_renewed_client_certificate_is_presented_from_the_next_connection_without_a_restart()
    {
        using var certificates = TestCertificates.Create();
        using var other = TestCertificates.Create("Another CA");
        using var server = RedisServer.StartTls(certificates.ServerCertificate, certificates.ServerKey, certificates.Authority, (certificates.ClientCertificate, certificates.ClientKey));
        var live = Directory.CreateDirectory(Path.Combine(certificates.Directory, "live")).FullName;
        var certificate = Path.Combine(live, "client.pem");
        var key = Path.Combine(live, "client.key");

        // The store starts with a certificate of a CA the server does not trust: every connection is refused.
        File.Copy(other.ClientCertificate, certificate);
        File.Copy(other.ClientKey, key);
        await using var store = await TestStores.ConnectAsync(server.Configuration + ",connectTimeout=1000", o =>
        {
            o.TrustedCertificateAuthority = certificates.Authority;
            o.ClientCertificate = certificate;
            o.ClientCertificateKey = key;
            o.Timeout = Timeout;
        });
        var check = new RateLimitCheck(Limit.FixedWindow(new Rate(100, 1, RateUnit.Hour)), StoreKey.Create("renewed", "alice"), 1, false);
        Assert.True((await store.DecideOneAsync(check)).IsStoreFailure);

        // Renewed in place, as a certificate manager does: the store's next connection attempt presents the new one.
        File.Copy(certificates.ClientCertificate, certificate, overwrite: true);
        File.Copy(certificates.ClientKey, key, overwrite: true);
        var outcome = default(StoreOutcome);
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < TimeSpan.FromSeconds(30))
        {
            outcome = await store.DecideOneAsync(check);
            if (!outcome.IsStoreFailure)
            {
                break;
            }

            await Task.Delay(100);
        }

        output.WriteLine($"the renewed certificate was in use after {waited.ElapsedMilliseconds} ms");
        Assert.False(outcome.IsStoreFailure, "the renewed client certificate was never presented");
        Assert.True(outcome.Outcome.IsAllowed);
    }

    [Fact]
    public void TLS_files_are_checked_when_the_options_are_validated()
    {
        using var certificates = TestCertificates.Create();
        var missing = Path.Combine(certificates.Directory, "missing.pem");

        var error = Assert.Throws<ArgumentException>(() => new RedisStoreOptions { Configuration = "x", TrustedCertificateAuthority = missing }.Validate());
        Assert.Equal(nameof(RedisStoreOptions.TrustedCertificateAuthority), error.ParamName);
        Assert.Contains(missing, error.Message, StringComparison.Ordinal);

        // A key is not a certificate.
        error = Assert.Throws<ArgumentException>(() => new RedisStoreOptions { Configuration = "x", TrustedCertificateAuthority = certificates.ServerKey }.Validate());
        Assert.Contains("holds no PEM certificate", error.Message, StringComparison.Ordinal);

        // A certificate without its key, a key without its certificate, a key of another certificate.
        error = Assert.Throws<ArgumentException>(() => new RedisStoreOptions { Configuration = "x", ClientCertificate = certificates.ClientCertificate }.Validate());
        Assert.Equal(nameof(RedisStoreOptions.ClientCertificate), error.ParamName);
        error = Assert.Throws<ArgumentException>(() => new RedisStoreOptions { Configuration = "x", ClientCertificateKey = certificates.ClientKey }.Validate());
        Assert.Equal(nameof(RedisStoreOptions.ClientCertificateKey), error.ParamName);
        error = Assert.Throws<ArgumentException>(() => new RedisStoreOptions { Configuration = "x", ClientCertificate = certificates.ClientCertificate, ClientCertificateKey = certificates.ServerKey }.Validate());
        Assert.Equal(nameof(RedisStoreOptions.ClientCertificate), error.ParamName);

        // Connecting validates first: nothing is attempted with a file that cannot be used.
        Assert.Throws<ArgumentException>(() => RedisStore.Connect(new RedisStoreOptions { Configuration = "127.0.0.1:1", TrustedCertificateAuthority = missing }));

        new RedisStoreOptions
        {
            Configuration = "x",
            TrustedCertificateAuthority = certificates.Authority,
            ClientCertificate = certificates.ClientCertificate,
            ClientCertificateKey = certificates.ClientKey,
        }.Validate();
    }

    /// <summary>A 3/h limit: three decisions committed, the fourth denied, its key on the server.</summary>
    private static async Task AssertDecidesExactlyAsync(RedisStore store, RedisServer server, string prefix)
    {
        await TestStores.SpendThreePerHourAsync(store, prefix);
        Assert.Single(server.Cli("--scan", "--pattern", prefix + ":*").Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}

using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Http;
using Floodgate.Gateway.Cli;
using Floodgate.Gateway.Policy;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Gateway.Tests;

/// <summary>floodgate check and floodgate token: exit codes, messages and key files.</summary>
public sealed partial class PolicyTests
{
    [Fact]
    public void Yaml_syntax_errors_are_located()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("upstream: [http://a\nedge: {", "syntax.yaml"));
        Assert.StartsWith("syntax.yaml:", error.Errors.Single().ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Check_exits_zero_for_a_valid_policy_and_non_zero_with_every_error()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-check-").FullName;
        try
        {
            var good = Path.Combine(directory, "good.yaml");
            var bad = Path.Combine(directory, "bad.yaml");
            File.WriteAllText(good, "upstream: http://127.0.0.1:5000\nedge:\n  - name: ip\n    limit: 10/s\n");
            File.WriteAllText(bad, "upstream: http://127.0.0.1:5000\nedge:\n  - name: ip\n    limit: 10/sec0\n");

            var (code, output, _) = Run("check", good);
            Assert.Equal(0, code);
            Assert.Contains("OK", output, StringComparison.Ordinal);

            (code, _, var errors) = Run("check", bad);
            Assert.Equal(1, code);
            Assert.Contains("bad.yaml:4:12: edge[0].limit:", errors, StringComparison.Ordinal);

            // What the proxy itself would refuse, check refuses too.
            var proxy = Path.Combine(directory, "proxy.yaml");
            File.WriteAllText(proxy, "routes:\n  - id: api\n    path: /api\n    methods: [GET, get]\n    destinations: [\"http://127.0.0.1:5000\"]\n");
            (code, _, errors) = Run("check", proxy);
            Assert.Equal(1, code);
            Assert.Contains("proxy.yaml: routes: route 'api': Duplicate HTTP method 'GET' for route 'api'.", errors, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Check_accepts_a_PEM_file_of_several_keys_and_names_the_key_file_it_refuses()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-check-").FullName;
        try
        {
            using var ec = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
            var two = Path.Combine(directory, "two.pem");
            var bad = Path.Combine(directory, "bad.pem");
            File.WriteAllText(two, TestIdentityProvider.PooledRsa(43).ExportSubjectPublicKeyInfoPem() + "\n" + ec.ExportSubjectPublicKeyInfoPem());
            File.WriteAllText(bad, ec.ExportSubjectPublicKeyInfoPem() + "\n" + ec.ExportPkcs8PrivateKeyPem());
            var policy = """
                upstream: http://127.0.0.1:5000
                identity:
                  jwt:
                    keys: [{file}]
                    issuer: https://idp.example.com
                    audiences: [api]
                """;
            File.WriteAllText(Path.Combine(directory, "two.yaml"), policy.Replace("{file}", two, StringComparison.Ordinal));
            File.WriteAllText(Path.Combine(directory, "bad.yaml"), policy.Replace("{file}", bad, StringComparison.Ordinal));

            var (code, output, errors) = Run("check", Path.Combine(directory, "two.yaml"));
            Assert.True(code == 0, errors);
            Assert.Contains("OK", output, StringComparison.Ordinal);

            (code, _, errors) = Run("check", Path.Combine(directory, "bad.yaml"));
            Assert.Equal(1, code);
            Assert.Contains($"identity.jwt.keys: key file '{bad}' (PEM block 2): is a private key; give the public key.", errors, StringComparison.Ordinal);

            // Starting the gateway with the bad file names it the same way.
            var refused = await Assert.ThrowsAsync<PolicyException>(() => Hosting.GatewayHost.StartAsync(new Hosting.GatewayHostOptions
            {
                PolicyPath = Path.Combine(directory, "bad.yaml"),
                Listen = new Uri("http://127.0.0.1:0"),
                Admin = null,
                WatchPolicy = false,
            }));
            Assert.Contains(refused.Errors, e => e.Message.StartsWith($"key file '{bad}' (PEM block 2): is a private key", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Token_mints_a_token_with_the_demo_key()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-token-").FullName;
        try
        {
            var (code, output, errors) = Run("token", "--sub", "alice", "--plan", "free", "--key", Path.Combine(directory, "key.pem"));
            Assert.True(code == 0, errors);
            var token = new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(output.Trim());
            Assert.Equal("alice", token.Subject);
            Assert.Equal("free", token.GetClaim("plan").Value);
            Assert.True(File.Exists(Path.Combine(directory, "key.pem")));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

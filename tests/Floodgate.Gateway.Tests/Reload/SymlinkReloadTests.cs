using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// A policy reached through symbolic links that a deploy tool swaps (<c>current -> releases/vN</c>, replaced by a
/// rename), on real files: the gateway follows the link to the new release. The certificate's case is in
/// <see cref="TlsTests"/>.
/// </summary>
public sealed class SymlinkReloadTests : IDisposable
{
    private const string Policy = """
        upstream: {upstream}
        edge:
          - name: ip
            limit: 2/min
        """;

    private readonly string _root = Directory.CreateTempSubdirectory("floodgate-gateway-link-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Where the link that is swapped sits relative to the policy file.</summary>
    public enum Layout
    {
        /// <summary>The policy's directory is the link: <c>current/policy.yaml</c>, <c>current -> releases/v1</c>.</summary>
        DirectoryIsTheLink,

        /// <summary>The link is an ancestor: <c>current/floodgate/policy.yaml</c>.</summary>
        AncestorIsTheLink,

        /// <summary>The policy's directory is a link to a second link, the one swapped: <c>current -> stable -> releases/v1</c>.</summary>
        ChainedLinks,
    }

    [Theory]
    [InlineData(Layout.DirectoryIsTheLink)]
    [InlineData(Layout.AncestorIsTheLink)]
    [InlineData(Layout.ChainedLinks)]
    public async Task A_swapped_link_to_the_policy_directory_is_followed_and_a_bad_release_keeps_the_last_good_policy(Layout layout)
    {
        var sub = layout == Layout.AncestorIsTheLink ? "floodgate" : string.Empty;
        var swapped = layout == Layout.ChainedLinks ? "stable" : "current";
        foreach (var release in new[] { "v1", "v2", "v3" })
        {
            Directory.CreateDirectory(Path.Combine(_root, "releases", release, sub));
        }

        SymbolicLinks.Swap(Path.Combine(_root, swapped), Path.Combine("releases", "v1"));
        if (layout == Layout.ChainedLinks)
        {
            File.CreateSymbolicLink(Path.Combine(_root, "current"), "stable");
        }

        await using var gate = await TestGateway.StartAsync(Policy, watch: true, policyPath: Path.Combine(_root, "current", sub, "policy.yaml"));
        Assert.True(File.Exists(Path.Combine(_root, "releases", "v1", sub, "policy.yaml")), "The policy was not written through the link.");
        Assert.Equal("\"ip\";q=2;w=60", (await gate.GetAsync("/a")).Header("RateLimit-Policy"));

        // The link is replaced by a rename: the new release's policy is served, and /readyz counts the reload.
        await WriteReleaseAsync(gate, "v2", sub, Policy.Replace("2/min", "7/min", StringComparison.Ordinal));
        SymbolicLinks.Swap(Path.Combine(_root, swapped), Path.Combine("releases", "v2"));
        await WaitUntilAsync(async () => await LimitAsync(gate) == "\"ip\";q=7;w=60");

        // The reload is counted just after its settings are served, so the count may trail the first answer by a moment.
        await WaitUntilAsync(async () => (await gate.ReadinessAsync()).GetProperty("reloads").GetInt32() >= 1);
        var readiness = await gate.ReadinessAsync();
        Assert.Equal(1, readiness.GetProperty("reloads").GetInt32());
        Assert.Equal(JsonValueKind.Null, readiness.GetProperty("last_reload_error").ValueKind);

        // A release whose policy is invalid is refused and reported; the last good policy stays in force.
        await WriteReleaseAsync(gate, "v3", sub, Policy.Replace("2/min", "2/fortnight", StringComparison.Ordinal));
        SymbolicLinks.Swap(Path.Combine(_root, swapped), Path.Combine("releases", "v3"));
        await WaitUntilAsync(async () => (await gate.ReadinessAsync()).GetProperty("last_reload_error") is { ValueKind: JsonValueKind.String } error
            && error.GetString()!.Contains("fortnight", StringComparison.Ordinal));
        readiness = await gate.ReadinessAsync();
        Assert.Equal("ready", readiness.GetProperty("status").GetString());
        Assert.Equal(1, readiness.GetProperty("reloads").GetInt32());
        Assert.Equal("\"ip\";q=7;w=60", await LimitAsync(gate));

        // The watch moved to the new release with the link: fixing the file there is picked up, and clears the error.
        await WriteReleaseAsync(gate, "v3", sub, Policy.Replace("2/min", "5/min", StringComparison.Ordinal));
        await WaitUntilAsync(async () => await LimitAsync(gate) == "\"ip\";q=5;w=60");
        Assert.Equal(JsonValueKind.Null, (await gate.ReadinessAsync()).GetProperty("last_reload_error").ValueKind);

        // A link to nothing is refused too; swapped back to a release, it is followed again.
        SymbolicLinks.Swap(Path.Combine(_root, swapped), Path.Combine("releases", "missing"));
        await WaitUntilAsync(async () => (await gate.ReadinessAsync()).GetProperty("last_reload_error").ValueKind == JsonValueKind.String);
        Assert.Equal("\"ip\";q=5;w=60", await LimitAsync(gate));
        SymbolicLinks.Swap(Path.Combine(_root, swapped), Path.Combine("releases", "v2"));
        await WaitUntilAsync(async () => await LimitAsync(gate) == "\"ip\";q=7;w=60");
        Assert.Equal(JsonValueKind.Null, (await gate.ReadinessAsync()).GetProperty("last_reload_error").ValueKind);
    }

    [Fact]
    public async Task A_key_file_reached_through_a_swapped_link_is_rotated()
    {
        // The policy is a plain file; the key file it names is in a release reached through current.
        var keys = Path.Combine(_root, "keys");
        Directory.CreateDirectory(Path.Combine(keys, "v1"));
        Directory.CreateDirectory(Path.Combine(keys, "v2"));
        SymbolicLinks.Swap(Path.Combine(keys, "current"), "v1");
        var keyFile = Path.Combine(keys, "current", "signing.pem");
        await using var gate = await TestGateway.StartAsync(Policy, watch: true);
        await File.WriteAllTextAsync(keyFile, gate.Identity.PublicKeyPem(TestIdentityProvider.RsaKeyId));
        await gate.WriteStaticKeyPolicyAsync(keyFile);
        await WaitUntilAsync(async () => (await gate.GetAsync("/a")).StatusCode == HttpStatusCode.Unauthorized);
        var version = gate.Host.Policy.Version;
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/a", gate.Identity.CreateToken(TestIdentityProvider.RsaKeyId, now: gate.Time.GetUtcNow()))).StatusCode);

        // The next key is released beside the first, and current swapped to it: neither the policy nor a file under the
        // name the watch began on changes.
        gate.Identity.AddRsaKey("rsa-next", publish: false);
        await File.WriteAllTextAsync(Path.Combine(keys, "v2", "signing.pem"), gate.Identity.PublicKeyPem("rsa-next"));
        SymbolicLinks.Swap(Path.Combine(keys, "current"), "v2");
        await WaitUntilAsync(() => Task.FromResult(gate.Host.Policy.Version != version));

        Assert.Equal(HttpStatusCode.Unauthorized, (await gate.GetAsync("/a", gate.Identity.CreateToken(TestIdentityProvider.RsaKeyId, subject: "bob", now: gate.Time.GetUtcNow()))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/a", gate.Identity.CreateToken("rsa-next", now: gate.Time.GetUtcNow()))).StatusCode);
    }

    private Task WriteReleaseAsync(TestGateway gate, string release, string sub, string policy) =>
        File.WriteAllTextAsync(Path.Combine(_root, "releases", release, sub, "policy.yaml"), TestGateway.Expand(policy, gate.Upstream, gate.Identity));

    private static async Task<string?> LimitAsync(TestGateway gate)
    {
        using var response = await gate.GetAsync("/a");
        return response.Header("RateLimit-Policy");
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition) =>
        Assert.True(await Eventually.HoldsAsync(condition, TimeSpan.FromSeconds(10)), "The condition did not hold within 10 seconds.");
}

/// <summary>Symbolic links swapped as deploy tools and the kubelet swap them.</summary>
internal static class SymbolicLinks
{
    /// <summary>
    /// Points the link <paramref name="link"/> at <paramref name="target"/> (relative to the link's directory, or
    /// absolute) atomically: a new link under a temporary name, renamed over the old one. rename(2) itself: File.Move
    /// follows the link, and refuses one to a directory.
    /// </summary>
    public static void Swap(string link, string target)
    {
        var staged = link + ".tmp-" + Guid.NewGuid().ToString("n");
        File.CreateSymbolicLink(staged, target);
        if (Rename(staged, link) != 0)
        {
            throw new IOException($"rename {staged} {link}: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Rename([MarshalAs(UnmanagedType.LPUTF8Str)] string oldPath, [MarshalAs(UnmanagedType.LPUTF8Str)] string newPath);
}

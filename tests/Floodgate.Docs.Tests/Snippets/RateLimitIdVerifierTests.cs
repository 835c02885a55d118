using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Floodgate.Docs.Tests.Snippets;

/// <summary>
/// The JavaScript verifier of docs/edge.md, run by a real Node.js against the page's own test vectors: a Worker that
/// copies it verifies what the gateway issues, and refuses what it would refuse.
/// </summary>
public sealed partial class RateLimitIdVerifierTests
{
    [Fact]
    public async Task The_documented_javascript_verifier_accepts_the_vectors_and_refuses_altered_ids()
    {
        var page = await File.ReadAllTextAsync(Path.Combine(MarkdownSnippets.Root, "docs", "edge.md"));
        var verifier = JsBlock().Match(page);
        Assert.True(verifier.Success, "docs/edge.md has no ```js block.");
        var vectors = VectorRow().Matches(page).Select(m => (Id: m.Groups["id"].Value, Orders: m.Groups["orders"].Value)).ToList();
        Assert.Equal(4, vectors.Count);

        var checks = string.Join("\n", vectors.Select(v => $$"""
            {
              const uid = await verifyRateLimitId("{{v.Id}}", secrets);
              if (!uid) throw new Error("refused {{v.Id}}");
              const orders = await endpointId(uid, "orders");
              if (orders !== "{{v.Orders}}") throw new Error("endpoint of {{v.Id}} is " + orders);
              const tampered = "{{v.Id}}".slice(0, -1) + ("{{v.Id}}".endsWith("A") ? "B" : "A");
              if (await verifyRateLimitId(tampered, secrets)) throw new Error("accepted " + tampered);
              if (await verifyRateLimitId("k9" + "{{v.Id}}".slice(2), secrets)) throw new Error("accepted an unknown key id");
            }
            """));
        var script = verifier.Groups["code"].Value + $$"""

            const secrets = { k1: "floodgate-test-vector-secret-0123456789abcdef", k2: "floodgate-test-vector-secret-0123456789abcdef" };
            (async () => {
            {{checks}}
              if (await verifyRateLimitId("not an id", secrets) !== null) throw new Error("accepted garbage");
              console.log("verified");
            })().catch(e => { console.error(e.message); process.exit(1); });
            """;
        var path = Path.Combine(Path.GetTempPath(), $"floodgate-rlid-{Guid.NewGuid():N}.js");
        await File.WriteAllTextAsync(path, script);
        try
        {
            using var node = Process.Start(new ProcessStartInfo("node", [path]) { RedirectStandardOutput = true, RedirectStandardError = true })
                ?? throw new InvalidOperationException("node did not start");
            var output = node.StandardOutput.ReadToEndAsync();
            var error = node.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await node.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                node.Kill(entireProcessTree: true);
                throw;
            }

            Assert.True(node.ExitCode == 0, $"node failed: {await error}");
            Assert.Equal("verified", (await output).Trim());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [GeneratedRegex("```js\\n(?<code>.*?)```", RegexOptions.Singleline)]
    private static partial Regex JsBlock();

    [GeneratedRegex(@"^\| `k\d` \| `[^`]+` \| [^|]+ \| `(?<id>[^`]+)` \| `(?<orders>[^`]+)` \|$", RegexOptions.Multiline)]
    private static partial Regex VectorRow();
}

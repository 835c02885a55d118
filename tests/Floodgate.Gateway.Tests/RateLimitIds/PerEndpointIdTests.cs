using System.Text;
using Floodgate.AspNetCore.RateLimitIds;

namespace Floodgate.Gateway.Tests.RateLimitIds;

/// <summary>
/// Per-endpoint counting on the verified id, end to end on a real gateway: one id a client holds, counted apart per
/// endpoint class by an edge rule before any token is checked; a forged id never reaches those counts.
/// </summary>
public sealed class PerEndpointIdTests : IDisposable
{
    private const string Header = "x-ratelimit-user-id";
    private static readonly string Secret = "k1-" + new string('e', 40);
    private readonly string _directory = Directory.CreateTempSubdirectory("floodgate-rlid-endpoint-").FullName;

    public PerEndpointIdTests() => File.WriteAllText(Path.Combine(_directory, "k1"), Secret + "\n");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Policy(string key) => $$"""
        upstream: {upstream}
        {identity}
        ratelimit_id:
          keys:
            - { id: k1, file: {{Path.Combine(_directory, "k1")}} }
          endpoints: [orders, search]
          on_invalid: ignore
        edge:
          - name: per-id-per-endpoint
            match: { ratelimit_id: verified }
            key: {{key}}
            limit: 2/min
          - name: no-id
            match: { ratelimit_id: absent }
            key: [client_ip]
            limit: 100/min
        """;

    [Theory]
    [InlineData("[header:x-ratelimit-user-id, route]")]
    [InlineData("[header:x-ratelimit-user-id, path]")]
    public async Task One_verified_id_is_counted_apart_per_endpoint_before_any_token_is_checked(string key)
    {
        await using var gate = await TestGateway.StartAsync(Policy(key));
        var alice = RateLimitId.Create(Encoding.UTF8.GetBytes(Secret), "k1", "alice");
        var token = gate.Identity.CreateToken(subject: "alice");
        var unsigned = gate.Identity.CreateUnsignedToken("alice");

        // Each endpoint has its own budget of 2 for the one id; a third request to it is shed at the edge, whether its
        // token would have passed or not (the 429 comes before the signature check: the unsigned token is never refused 401).
        Statuses.Expect([200, 200, 429], await StatusesAsync(gate, "/orders", alice, token, 3));
        Statuses.Expect([429], await StatusesAsync(gate, "/orders", alice, unsigned, 1));
        Statuses.Expect([200, 200, 429], await StatusesAsync(gate, "/search", alice, token, 3));

        // Another user's id has budgets of its own.
        var bob = RateLimitId.Create(Encoding.UTF8.GetBytes(Secret), "k1", "bob");
        Statuses.Expect([200], await StatusesAsync(gate, "/orders", bob, gate.Identity.CreateToken(subject: "bob"), 1));

        // A forged id (another secret) is not verified: dropped and counted as no id, never against alice's budgets nor a fresh one.
        var forged = RateLimitId.Create(Encoding.UTF8.GetBytes("k1-" + new string('f', 40)), "k1", "alice");
        Statuses.Expect([200, 200, 200], await StatusesAsync(gate, "/orders", forged, token, 3));
    }

    private static async Task<int[]> StatusesAsync(TestGateway gate, string path, string id, string token, int count)
    {
        var statuses = new int[count];
        for (var i = 0; i < count; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.TryAddWithoutValidation(Header, id);
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            using var response = await gate.Client.SendAsync(request);
            statuses[i] = (int)response.StatusCode;
        }

        return statuses;
    }
}

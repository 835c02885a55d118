using System.Net;
using System.Text.Json;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// The admin API's OpenAPI document: served by a running gateway's admin port behind the admin tokens, describing every
/// admin route, and equal to the copy checked in as docs/admin-openapi.json.
/// </summary>
public sealed class AdminOpenApiTests
{
    /// <summary>The command that rewrites docs/admin-openapi.json from a running gateway (also in docs/admin.md).</summary>
    public const string RegenerateCommand =
        "cd tests/Floodgate.Gateway.Tests && FLOODGATE_WRITE_OPENAPI=1 dotnet test -c Release --filter 'FullyQualifiedName~AdminOpenApiTests'";

    private static string CheckedIn => Path.Combine(PolicyTests.RepositoryRoot(), "docs", "admin-openapi.json");

    [Fact]
    public async Task The_checked_in_document_is_the_one_the_admin_port_serves()
    {
        var served = await FetchAsync();
        if (Environment.GetEnvironmentVariable("FLOODGATE_WRITE_OPENAPI") == "1")
        {
            await File.WriteAllTextAsync(CheckedIn, served);
        }

        var checkedIn = File.Exists(CheckedIn) ? (await File.ReadAllTextAsync(CheckedIn)).ReplaceLineEndings("\n") : "(missing)";
        Assert.True(
            checkedIn == served,
            $"docs/admin-openapi.json is not the document the admin port serves ({served.Length} characters served, {checkedIn.Length} checked in). Regenerate it: {RegenerateCommand}");
    }

    [Fact]
    public async Task The_document_names_and_summarizes_every_admin_route_with_its_problem_answers()
    {
        using var document = JsonDocument.Parse(await FetchAsync());
        var root = document.RootElement;
        Assert.StartsWith("3.", root.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        Assert.Equal("Floodgate admin API", root.GetProperty("info").GetProperty("title").GetString());
        Assert.Equal("bearer", root.GetProperty("components").GetProperty("securitySchemes").GetProperty("AdminToken").GetProperty("scheme").GetString());

        var operations = root.GetProperty("paths").EnumerateObject()
            .SelectMany(path => path.Value.EnumerateObject().Select(op => (Path: path.Name, Method: op.Name, Operation: op.Value)))
            .ToList();

        // Every route under /admin/v1 and nothing else: not /metrics, /healthz, /readyz or the dashboard's page.
        Assert.All(operations, o => Assert.StartsWith("/admin/v1/", o.Path, StringComparison.Ordinal));
        var ids = operations.Select(o => o.Operation.GetProperty("operationId").GetString()).ToHashSet(StringComparer.Ordinal);
        foreach (var expected in new[]
        {
            "GetStatus", "ListOverrides", "GetOverride", "SetOverride", "DeleteOverride", "ChangePlan", "GetUsage", "CreateApiKey",
            "ListApiKeys", "GetApiKey", "RotateApiKey", "RevokeApiKey", "ListBans", "AddBan", "RemoveBan", "GetKeyState",
            "ResetKeyState", "ListThresholdEvents", "GetDashboard", "GetAccountOverride", "SetAccountOverride", "DeleteAccountOverride",
            "ChangeAccountPlan",
        })
        {
            Assert.Contains(expected, ids);
        }

        Assert.Equal(operations.Count, ids.Count);
        foreach (var (path, method, operation) in operations)
        {
            Assert.False(string.IsNullOrWhiteSpace(operation.GetProperty("summary").GetString()), $"{method} {path} has no summary");
            var responses = operation.GetProperty("responses");
            Assert.True(responses.TryGetProperty("401", out var unauthorized), $"{method} {path} declares no 401");
            Assert.True(unauthorized.GetProperty("content").TryGetProperty("application/problem+json", out _), $"{method} {path}: 401 is not problem+json");
        }

        // A route that validates its input declares a 400 problem with the fields at fault; a body has its schema.
        var setOverride = operations.Single(o => o.Operation.GetProperty("operationId").GetString() == "SetOverride").Operation;
        var badRequest = setOverride.GetProperty("responses").GetProperty("400").GetProperty("content").GetProperty("application/problem+json").GetProperty("schema");
        Assert.Equal("#/components/schemas/HttpValidationProblemDetails", badRequest.GetProperty("$ref").GetString());
        var body = setOverride.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("schema");
        Assert.Equal("#/components/schemas/OverrideRequest", body.GetProperty("$ref").GetString());
        var request = root.GetProperty("components").GetProperty("schemas").GetProperty("OverrideRequest").GetProperty("properties");
        Assert.True(request.TryGetProperty("plan", out _));
        Assert.True(request.TryGetProperty("rates", out _));
        Assert.True(request.TryGetProperty("ttl", out _));
    }

    [Fact]
    public async Task The_document_needs_an_admin_token_like_every_admin_route()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync($"upstream: {{upstream}}\n{token.Section}");

        using var response = await gateway.Admin.GetAsync("/admin/v1/openapi.json");

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    private static async Task<string> FetchAsync()
    {
        using var token = new AdminTokens();
        using var logs = new FakeLoggerProvider();
        await using var gateway = await TestGateway.StartAsync($"upstream: {{upstream}}\n{token.Section}", logs: logs);
        using var admin = token.Client(gateway.Host.AdminAddress!);
        using var response = await admin.GetAsync("/admin/v1/openapi.json");
        Assert.True(
            response.StatusCode == HttpStatusCode.OK,
            $"{(int)response.StatusCode}: {string.Join("\n", logs.Collector.GetSnapshot().Select(l => $"{l.Message} {l.Exception}"))}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var text = (await response.Content.ReadAsStringAsync()).ReplaceLineEndings("\n");
        return text.EndsWith('\n') ? text : text + "\n";
    }
}

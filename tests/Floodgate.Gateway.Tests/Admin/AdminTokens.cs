using System.Net.Http.Headers;

namespace Floodgate.Gateway.Tests;

/// <summary>An admin token written to a file of its own, and the policy lines that name it.</summary>
internal sealed class AdminTokens : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("floodgate-admin-token-").FullName;

    public AdminTokens(string name = "ops")
    {
        Name = name;
        Secret = "fg-admin-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));
        File = Path.Combine(_directory, "admin-token");
        System.IO.File.WriteAllText(File, Secret + "\n");
    }

    public string Name { get; }

    public string Secret { get; }

    public string File { get; }

    /// <summary>The policy's <c>admin</c> section naming this token's file.</summary>
    public string Section => $$"""
        admin:
          tokens:
            - { name: {{Name}}, file: {{File}} }
        """;

    /// <summary>A client of <paramref name="address"/> that sends this token.</summary>
    public HttpClient Client(Uri address)
    {
        var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Secret);
        return client;
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}

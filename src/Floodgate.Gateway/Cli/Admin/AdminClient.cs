using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Floodgate.Gateway.Cli.Admin;

/// <summary>A call to the admin API, answered as JSON or as the problem that refused it.</summary>
internal sealed class AdminClient(Uri address, string token) : IDisposable
{
    private readonly HttpClient _http = new() { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };

    public async Task<AdminReply> SendAsync(HttpMethod method, string path, object? body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, "/admin/v1" + path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body, body.GetType());
        }

        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        JsonElement? json = null;
        if (text.Length > 0)
        {
            try
            {
                json = JsonDocument.Parse(text).RootElement.Clone();
            }
            catch (JsonException)
            {
                // Not JSON: reported as text below.
            }
        }

        return new AdminReply((int)response.StatusCode, response.IsSuccessStatusCode, json, text);
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>An admin API answer: its status, its JSON body (if any) and its text.</summary>
internal sealed record AdminReply(int Status, bool IsSuccess, JsonElement? Json, string Text)
{
    /// <summary>Why the call failed, for a person: the problem's detail, or the status.</summary>
    public string Problem()
    {
        if (Status == 401)
        {
            return "refused (401): the admin token is missing or wrong; pass --token, --token-file or set FLOODGATE_ADMIN_TOKEN.";
        }

        if (Json is { ValueKind: JsonValueKind.Object } body && body.TryGetProperty("detail", out var detail) && detail.GetString() is { } text)
        {
            return $"{Status}: {text}";
        }

        return $"{Status}: {Text}";
    }
}

using System.Net;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// Text a client controls (the path, the token's subject) reaches the gateway's log lines escaped and cut to 256
/// characters, as the console shows them: one line, no character a terminal or a log collector acts on, and the
/// structured value itself escaped while the template stays a template.
/// </summary>
public sealed class LogInjectionTests
{
    private const string EngineCategory = "Floodgate.Engine.RateLimitEngine";
    private const string ProxyCategory = "Floodgate.Gateway.Proxy";

    private const string UserPolicy = """
        upstream: {upstream}
        {identity}
        user:
          - name: per-user
            key: [subject]
            limit: 1/min
        """;

    [Fact]
    public async Task A_rejected_path_is_logged_escaped_on_one_line()
    {
        using var logs = new ConsoleLines(LogLevel.Information);
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            edge:
              - name: ip-flood
                limit: 1/min
            """, logs: logs, logLevel: LogLevel.Information);

        // The report's path: a carriage return and an erase-line sequence, then a forged line. Decoded into the path, it
        // holds control characters, which the gateway refuses with 400 before the limiter: it is never logged.
        Statuses.Expect([400, 400], await gate.StatusesAsync(2, "/a%0D%1B%5B2K12:00:00%20info:%20all%20good"));

        // What does reach the limiter: a line separator and a right-to-left override decoded into the path.
        Statuses.Expect([200, 429], await gate.StatusesAsync(2, "/a%E2%80%A8%E2%80%AE12:00:00%20info:%20all%20good"));

        var line = Assert.Single(logs.Of(EngineCategory));
        Assert.False(line.HasControl(), line.Shown);
        Assert.Contains(@": GET /a\u2028\u202E12:00:00 info: all good, retry after ", line.Text, StringComparison.Ordinal);
        Assert.Equal(@"/a\u2028\u202E12:00:00 info: all good", line.Value("Path"));
        Assert.Equal("GET", line.Value("Method"));
        Assert.Contains("{Method} {Path}", line.Value("{OriginalFormat}"), StringComparison.Ordinal);
        Assert.All(logs.Lines, l => Assert.False(l.HasControl(), l.Shown));
    }

    [Fact]
    public async Task A_subject_with_a_carriage_return_and_an_escape_sequence_is_logged_escaped()
    {
        using var logs = new ConsoleLines(LogLevel.Information);
        await using var gate = await TestGateway.StartAsync(UserPolicy, logs: logs, logLevel: LogLevel.Information);
        var token = gate.Identity.CreateToken(subject: "alice\r\u001B[2Kforged", now: gate.Time.GetUtcNow());

        Statuses.Expect([200, 429], await gate.StatusesAsync(2, "/orders/1", token));

        var line = Assert.Single(logs.Of(EngineCategory));
        Assert.False(line.HasControl(), line.Shown);
        Assert.Contains(@"Rejected by user rule per-user for alice\r\x1B[2Kforged: GET /orders/1, retry after ", line.Text, StringComparison.Ordinal);
        Assert.Equal(@"alice\r\x1B[2Kforged", line.Value("Identity"));
        Assert.Contains("{Identity}", line.Value("{OriginalFormat}"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_10_KB_subject_is_logged_cut_to_256_characters()
    {
        using var logs = new ConsoleLines(LogLevel.Information);
        await using var gate = await TestGateway.StartAsync(UserPolicy, logs: logs, logLevel: LogLevel.Information);
        var token = gate.Identity.CreateToken(subject: new string('s', 10_000), now: gate.Time.GetUtcNow());

        Statuses.Expect([200, 429], await gate.StatusesAsync(2, "/orders/1", token));

        var line = Assert.Single(logs.Of(EngineCategory));
        Assert.Equal(new string('s', 256) + "…(+9744 chars)", line.Value("Identity"));
        Assert.Contains(new string('s', 256) + "…(+9744 chars): GET /orders/1", line.Text, StringComparison.Ordinal);
        Assert.True(line.Text.Length < 500, $"{line.Text.Length} characters");
    }

    [Fact]
    public async Task A_forwarding_failure_logs_the_path_escaped_and_cut()
    {
        // A port nothing listens on: taken, then released.
        using var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        using var logs = new ConsoleLines(LogLevel.Warning);
        await using var gate = await TestGateway.StartAsync($"upstream: http://127.0.0.1:{port}\n", logs: logs);

        Statuses.Expect([502], await gate.StatusesAsync(1, "/b%E2%80%A8%E2%80%AE12:00:00%20info:%20all%20good"));
        Statuses.Expect([502], await gate.StatusesAsync(1, "/" + new string('p', 1000)));

        var lines = logs.Of(ProxyCategory);
        Assert.Equal(2, lines.Count);
        Assert.All(lines, l => Assert.False(l.HasControl(), l.Shown));
        Assert.Contains(@"Forwarding GET /b\u2028\u202E12:00:00 info: all good (route upstream) failed: ", lines[0].Text, StringComparison.Ordinal);
        Assert.Equal(@"/b\u2028\u202E12:00:00 info: all good", lines[0].Value("Path"));
        Assert.Equal("/" + new string('p', 255) + "…(+745 chars)", lines[1].Value("Path"));
    }
}

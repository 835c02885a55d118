using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace Floodgate.Gateway.Cli.Admin;

/// <summary>
/// <c>floodgate admin</c>: calls a running gateway's admin API. The address and token come from options or the
/// environment (<c>FLOODGATE_ADMIN_URL</c>, <c>FLOODGATE_ADMIN_TOKEN</c>); answers are printed for a person, or as the
/// API's JSON with <c>--json</c>.
/// </summary>
internal static partial class AdminCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private static readonly Option<Uri> Address = new("--address")
    {
        Description = "The gateway's admin address; default $FLOODGATE_ADMIN_URL or http://127.0.0.1:9090.",
        Recursive = true,
        CustomParser = Addresses.Parse,
        DefaultValueFactory = _ => new Uri(Environment.GetEnvironmentVariable("FLOODGATE_ADMIN_URL") is { Length: > 0 } url ? url : "http://127.0.0.1:9090"),
    };

    private static readonly Option<string?> Token = new("--token") { Description = "The admin token; default $FLOODGATE_ADMIN_TOKEN.", Recursive = true };

    private static readonly Option<FileInfo?> TokenFile = new("--token-file") { Description = "A file holding the admin token.", Recursive = true };

    private static readonly Option<bool> Json = new("--json") { Description = "Print the API's JSON answer.", Recursive = true };

    // An account's override applies to every subject whose credentials name that account and who has none of its own.
    private static readonly Option<bool> Account = new("--account") { Description = "The name is an account (the account claim of its tokens or API keys), not a subject.", Recursive = true };

    public static Command Create(TextWriter output, TextWriter error)
    {
        var admin = new Command("admin", "Call a running gateway's admin API: overrides, plans, usage, bans, key state.") { Address, Token, TokenFile, Json };
        admin.Add(Status(output, error));
        admin.Add(Plan(output, error));
        admin.Add(Usage(output, error));
        admin.Add(Override(output, error));
        admin.Add(KeyCommand.Create(output, error));
        admin.Add(Bans(output, error));
        admin.Add(KeyState(output, error));
        return admin;
    }

    private static Command Status(TextWriter output, TextWriter error)
    {
        var command = new Command("status", "The gateway's policy and store, and the token's name.");
        command.SetAction((result, cancel) => CallAsync(result, output, error, HttpMethod.Get, "/status", null, cancel, json =>
            $"token {Text(json, "token")}: policy {Text(json, "policy")} (version {Text(json, "version")}), store {Text(json, "store")}, {json.GetProperty("rules").GetInt32()} rules"));
        return command;
    }

    private static Command Plan(TextWriter output, TextWriter error)
    {
        var subject = new Argument<string>("subject") { Description = "The subject (or, with --account, the account) to move." };
        var plan = new Argument<string>("plan") { Description = "The plan to move it to." };
        var ttl = new Option<string?>("--ttl") { Description = "How long the move lasts, such as 7d; for ever by default." };
        var command = new Command("plan", "Move a subject or an account to a plan in one write, keeping its counters.") { subject, plan, ttl, Account };
        command.SetAction((result, cancel) =>
        {
            var name = Escape(result.GetRequiredValue(subject));
            var path = result.GetValue(Account) ? $"/accounts/{name}/plan" : $"/subjects/{name}/plan";
            return CallAsync(result, output, error, HttpMethod.Put, path, new { plan = result.GetRequiredValue(plan), ttl = result.GetValue(ttl) }, cancel, Describe);
        });
        return command;
    }

    private static Command Usage(TextWriter output, TextWriter error)
    {
        var subject = new Argument<string>("subject") { Description = "The subject." };
        var plan = new Option<string?>("--plan") { Description = "The plan its credentials name (its override's comes first)." };
        var command = new Command("usage", "A subject's usage of each rule keyed by subject; consumes nothing.") { subject, plan };
        command.SetAction((result, cancel) =>
        {
            var path = $"/subjects/{Escape(result.GetRequiredValue(subject))}/usage" + (result.GetValue(plan) is { } p ? "?plan=" + Uri.EscapeDataString(p) : string.Empty);
            return CallAsync(result, output, error, HttpMethod.Get, path, null, cancel, json =>
            {
                var lines = new List<string> { $"{Text(json, "subject")}: plan {Text(json, "plan") ?? "(default)"}{(json.GetProperty("overridden").GetBoolean() ? " (override)" : string.Empty)}" };
                foreach (var rule in json.GetProperty("rules").EnumerateArray())
                {
                    var period = rule.GetProperty("periodEnd").ValueKind == JsonValueKind.Null ? string.Empty
                        : $", period {rule.GetProperty("periodStart").GetDateTimeOffset():u} to {rule.GetProperty("periodEnd").GetDateTimeOffset():u}";
                    lines.Add(string.Create(CultureInfo.InvariantCulture, $"  {Text(rule, "rule")} ({Text(rule, "algorithm")} {Text(rule, "rate")}): used {rule.GetProperty("used").GetInt64()} of {rule.GetProperty("limit").GetInt64()}, {rule.GetProperty("remaining").GetInt64()} remaining, whole again in {rule.GetProperty("resetSeconds").GetDouble()}s{period}"));
                }

                return string.Join(Environment.NewLine, lines);
            });
        });
        return command;
    }

    private static Command Override(TextWriter output, TextWriter error)
    {
        var command = new Command("override", "Read, set, list and delete the overrides of subjects and (with --account) accounts.") { Account };

        var getSubject = new Argument<string>("subject");
        var get = new Command("get", "A subject's override.") { getSubject };
        get.SetAction((result, cancel) => CallAsync(result, output, error, HttpMethod.Get, OverridePath(result, getSubject), null, cancel, Describe));

        var setSubject = new Argument<string>("subject");
        var plan = new Option<string?>("--plan") { Description = "The plan to put the subject on." };
        var rates = new Option<string[]>("--rate") { Description = "A rule's rate for the subject, as rule=rate (such as per-user=1000/min); repeatable.", AllowMultipleArgumentsPerToken = false };
        var ttl = new Option<string?>("--ttl") { Description = "How long the override lasts, such as 7d; for ever by default." };
        var set = new Command("set", "Set a subject's override, replacing any, in one write.") { setSubject, plan, rates, ttl };
        set.SetAction((result, cancel) =>
        {
            var given = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var pair in result.GetValue(rates) ?? [])
            {
                var equals = pair.IndexOf('=', StringComparison.Ordinal);
                if (equals <= 0)
                {
                    error.WriteLine($"--rate '{pair}' must be rule=rate, such as per-user=1000/min.");
                    return Task.FromResult(1);
                }

                given[pair[..equals]] = pair[(equals + 1)..];
            }

            return CallAsync(result, output, error, HttpMethod.Put, OverridePath(result, setSubject), new { plan = result.GetValue(plan), rates = given.Count > 0 ? given : null, ttl = result.GetValue(ttl) }, cancel, Describe);
        });

        var deleteSubject = new Argument<string>("subject");
        var delete = new Command("delete", "Remove a subject's override.") { deleteSubject };
        delete.SetAction((result, cancel) => CallAsync(result, output, error, HttpMethod.Delete, OverridePath(result, deleteSubject), null, cancel, _ => $"removed the override of {(result.GetValue(Account) ? "account " : string.Empty)}{result.GetRequiredValue(deleteSubject)}"));

        var after = new Option<string?>("--after") { Description = "List the subjects after this one (the previous page's next)." };
        var limit = new Option<int>("--limit") { Description = "How many to list, up to 1000.", DefaultValueFactory = _ => 100 };
        var list = new Command("list", "The overrides in force, by subject.") { after, limit };
        list.SetAction((result, cancel) =>
        {
            var query = $"?limit={result.GetValue(limit).ToString(CultureInfo.InvariantCulture)}" + (result.GetValue(after) is { } a ? "&after=" + Uri.EscapeDataString(a) : string.Empty);
            return CallAsync(result, output, error, HttpMethod.Get, "/overrides" + query, null, cancel, json =>
            {
                var lines = json.GetProperty("overrides").EnumerateArray().Select(Describe).ToList();
                if (Text(json, "next") is { } next)
                {
                    lines.Add($"(more: --after {next})");
                }

                return lines.Count == 0 ? "no overrides" : string.Join(Environment.NewLine, lines);
            });
        });

        command.Add(get);
        command.Add(set);
        command.Add(delete);
        command.Add(list);
        return command;
    }

    internal static async Task<int> CallAsync(ParseResult result, TextWriter output, TextWriter error, HttpMethod method, string path, object? body, CancellationToken cancel, Func<JsonElement, string> human)
    {
        var token = result.GetValue(Token) ?? Environment.GetEnvironmentVariable("FLOODGATE_ADMIN_TOKEN");
        if (result.GetValue(TokenFile) is { } file)
        {
            try
            {
                token = (await File.ReadAllTextAsync(file.FullName, cancel).ConfigureAwait(false)).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await error.WriteLineAsync($"--token-file cannot be read: {e.Message}").ConfigureAwait(false);
                return 1;
            }
        }

        if (string.IsNullOrEmpty(token))
        {
            await error.WriteLineAsync("No admin token: pass --token, --token-file or set FLOODGATE_ADMIN_TOKEN.").ConfigureAwait(false);
            return 1;
        }

        using var client = new AdminClient(result.GetRequiredValue(Address), token);
        AdminReply reply;
        try
        {
            reply = await client.SendAsync(method, path, body, cancel).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            await error.WriteLineAsync($"The admin API at {result.GetRequiredValue(Address)} cannot be reached: {e.Message}").ConfigureAwait(false);
            return 1;
        }

        if (!reply.IsSuccess)
        {
            await error.WriteLineAsync(result.GetValue(Json) && reply.Json is { } problem ? JsonSerializer.Serialize(problem, Indented) : reply.Problem()).ConfigureAwait(false);
            return 1;
        }

        if (result.GetValue(Json))
        {
            await output.WriteLineAsync(reply.Json is { } json ? JsonSerializer.Serialize(json, Indented) : "{}").ConfigureAwait(false);
        }
        else
        {
            await output.WriteLineAsync(human(reply.Json ?? default)).ConfigureAwait(false);
        }

        return 0;
    }

    private static string Describe(JsonElement value)
    {
        var rates = value.TryGetProperty("rates", out var r) && r.ValueKind == JsonValueKind.Object
            ? string.Concat(r.EnumerateObject().Select(p => $", {p.Name} {p.Value.GetString()}"))
            : string.Empty;
        var until = value.TryGetProperty("expiresAt", out var e) && e.ValueKind != JsonValueKind.Null ? $", until {e.GetDateTimeOffset():u}" : string.Empty;
        var account = value.TryGetProperty("account", out var k) && k.ValueKind == JsonValueKind.True ? "account " : string.Empty;
        return $"{account}{Text(value, "subject")}: plan {Text(value, "plan") ?? "(its claim or the default)"}{rates}{until}";
    }

    /// <summary>The override's route: a subject's, or with <c>--account</c> an account's.</summary>
    private static string OverridePath(ParseResult result, Argument<string> name)
    {
        var escaped = Escape(result.GetRequiredValue(name));
        return result.GetValue(Account) ? $"/accounts/{escaped}/override" : $"/overrides/{escaped}";
    }

    internal static string? Text(JsonElement json, string name) =>
        json.ValueKind == JsonValueKind.Object && json.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    internal static string Escape(string subject) => Uri.EscapeDataString(subject);
}

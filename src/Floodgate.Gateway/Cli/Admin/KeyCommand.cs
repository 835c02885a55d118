using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace Floodgate.Gateway.Cli.Admin;

/// <summary><c>floodgate admin key …</c>: create, list, read, rotate and revoke API keys through the admin API.</summary>
internal static class KeyCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var command = new Command("key", "Create, list, read, rotate and revoke API keys.");

        var subject = new Argument<string>("subject") { Description = "The subject the key is, as a token's subject." };
        var account = new Option<string?>("--account") { Description = "The account the subject belongs to (the key's account claim)." };
        var plan = new Option<string?>("--plan") { Description = "The key's plan; the default plan otherwise." };
        var ttl = new Option<string?>("--ttl") { Description = "How long the key is valid, such as 90d; for ever by default." };
        var create = new Command("create", "Create a key; it is printed this once and cannot be read again.") { subject, account, plan, ttl };
        create.SetAction((result, cancel) => AdminCommand.CallAsync(result, output, error, HttpMethod.Post, "/keys", new { subject = result.GetRequiredValue(subject), account = result.GetValue(account), plan = result.GetValue(plan), ttl = result.GetValue(ttl) }, cancel, Issued));

        var listSubject = new Option<string?>("--subject") { Description = "Only this subject's keys." };
        var after = new Option<string?>("--after") { Description = "List the keys after this id (the previous page's next)." };
        var limit = new Option<int>("--limit") { Description = "How many to list, up to 1000.", DefaultValueFactory = _ => 100 };
        var list = new Command("list", "The keys, by id; never their secrets.") { listSubject, after, limit };
        list.SetAction((result, cancel) =>
        {
            var query = $"?limit={result.GetValue(limit).ToString(CultureInfo.InvariantCulture)}"
                + (result.GetValue(listSubject) is { } s ? "&subject=" + Uri.EscapeDataString(s) : string.Empty)
                + (result.GetValue(after) is { } a ? "&after=" + Uri.EscapeDataString(a) : string.Empty);
            return AdminCommand.CallAsync(result, output, error, HttpMethod.Get, "/keys" + query, null, cancel, json =>
            {
                var lines = json.GetProperty("keys").EnumerateArray().Select(Describe).ToList();
                if (AdminCommand.Text(json, "next") is { } next)
                {
                    lines.Add($"(more: --after {next})");
                }

                return lines.Count == 0 ? "no keys" : string.Join(Environment.NewLine, lines);
            });
        });

        var getId = new Argument<string>("id") { Description = "The key's id (the part after the prefix)." };
        var get = new Command("get", "A key's subject, account, plan and times.") { getId };
        get.SetAction((result, cancel) => AdminCommand.CallAsync(result, output, error, HttpMethod.Get, $"/keys/{AdminCommand.Escape(result.GetRequiredValue(getId))}", null, cancel, Describe));

        var rotateId = new Argument<string>("id") { Description = "The key's id." };
        var grace = new Option<string?>("--grace") { Description = "How long the old key stays valid, such as 1h; 0s stops it at once; 24h by default." };
        var rotate = new Command("rotate", "Give a key a new secret, printed this once; the old one stays valid for the grace period.") { rotateId, grace };
        rotate.SetAction((result, cancel) => AdminCommand.CallAsync(result, output, error, HttpMethod.Post, $"/keys/{AdminCommand.Escape(result.GetRequiredValue(rotateId))}/rotate", new { grace = result.GetValue(grace) }, cancel, Issued));

        var revokeId = new Argument<string>("id") { Description = "The key's id." };
        var revoke = new Command("revoke", "Revoke a key: every replica refuses it within a second.") { revokeId };
        revoke.SetAction((result, cancel) => AdminCommand.CallAsync(result, output, error, HttpMethod.Delete, $"/keys/{AdminCommand.Escape(result.GetRequiredValue(revokeId))}", null, cancel, _ => $"revoked {result.GetRequiredValue(revokeId)}"));

        command.Add(create);
        command.Add(list);
        command.Add(get);
        command.Add(rotate);
        command.Add(revoke);
        return command;
    }

    /// <summary>A key just issued: the key itself on its own line, then what is stored of it.</summary>
    private static string Issued(JsonElement json) =>
        $"{AdminCommand.Text(json, "key")}{Environment.NewLine}{Describe(json.GetProperty("apiKey"))}{Environment.NewLine}(shown this once: store it now)";

    private static string Describe(JsonElement key)
    {
        var parts = new List<string> { $"{AdminCommand.Text(key, "id")}: subject {AdminCommand.Text(key, "subject")}" };
        if (AdminCommand.Text(key, "account") is { } account)
        {
            parts.Add($"account {account}");
        }

        parts.Add($"plan {AdminCommand.Text(key, "plan") ?? "(default)"}");
        parts.Add($"created {Time(key, "createdAt")}");
        AddTime(parts, key, "expiresAt", "expires");
        AddTime(parts, key, "lastUsedAt", "last used");
        AddTime(parts, key, "previousValidUntil", "old key valid until");
        return string.Join(", ", parts);

        static void AddTime(List<string> parts, JsonElement key, string name, string label)
        {
            if (key.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String)
            {
                parts.Add($"{label} {Time(key, name)}");
            }
        }

        static string Time(JsonElement key, string name) => key.GetProperty(name).GetDateTimeOffset().ToString("u", CultureInfo.InvariantCulture);
    }
}

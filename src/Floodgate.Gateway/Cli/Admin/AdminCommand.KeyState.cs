using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace Floodgate.Gateway.Cli.Admin;

// floodgate admin state get|reset <rule> --subject … --ip … --header NAME=VALUE …
internal static partial class AdminCommand
{
    private static Command KeyState(TextWriter output, TextWriter error)
    {
        var command = new Command("state", "Read or reset one key's state: a rule, and the parts its key reads.");
        command.Add(KeyAction("get", "One key's state; consumes nothing.", HttpMethod.Get, output, error));
        command.Add(KeyAction("reset", "Reset one key's state: its next request starts as a new key's.", HttpMethod.Delete, output, error));
        return command;
    }

    private static Command KeyAction(string name, string description, HttpMethod method, TextWriter output, TextWriter error)
    {
        var rule = new Argument<string>("rule") { Description = "The rule's name." };
        var parts = new[] { "subject", "ip", "plan", "method", "path", "host", "route" }
            .Select(part => new Option<string?>("--" + part) { Description = $"The {part} the key reads." }).ToArray();
        var headers = new Option<string[]>("--header") { Description = "A header the key reads, as NAME=VALUE; repeatable." };
        var claims = new Option<string[]>("--claim") { Description = "A claim the key reads, as NAME=VALUE; repeatable." };
        var command = new Command(name, description) { rule, headers, claims };
        foreach (var part in parts)
        {
            command.Add(part);
        }

        command.SetAction((result, cancel) =>
        {
            var query = new List<string>();
            foreach (var part in parts)
            {
                if (result.GetValue(part) is { } value)
                {
                    query.Add($"{part.Name.TrimStart('-')}={Uri.EscapeDataString(value)}");
                }
            }

            foreach (var (prefix, option) in new[] { ("header.", headers), ("claim.", claims) })
            {
                foreach (var pair in result.GetValue(option) ?? [])
                {
                    var equals = pair.IndexOf('=', StringComparison.Ordinal);
                    if (equals <= 0)
                    {
                        error.WriteLine($"{option.Name} '{pair}' must be NAME=VALUE.");
                        return Task.FromResult(1);
                    }

                    query.Add($"{prefix}{Uri.EscapeDataString(pair[..equals])}={Uri.EscapeDataString(pair[(equals + 1)..])}");
                }
            }

            var ruleName = result.GetRequiredValue(rule);
            var path = $"/rules/{Uri.EscapeDataString(ruleName)}/state" + (query.Count > 0 ? "?" + string.Join('&', query) : string.Empty);
            return CallAsync(result, output, error, method, path, null, cancel, json => method == HttpMethod.Delete
                ? $"reset the key of {ruleName}"
                : string.Create(CultureInfo.InvariantCulture, $"{Text(json, "rule")} ({Text(json, "algorithm")} {Text(json, "rate")}): used {json.GetProperty("used").GetInt64()} of {json.GetProperty("limit").GetInt64()}, {json.GetProperty("remaining").GetInt64()} remaining, whole again in {json.GetProperty("resetSeconds").GetDouble()}s{(json.GetProperty("storeFailure").GetBoolean() ? " (store unreachable)" : string.Empty)}"));
        });
        return command;
    }
}

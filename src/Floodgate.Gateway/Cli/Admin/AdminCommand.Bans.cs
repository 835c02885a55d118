using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace Floodgate.Gateway.Cli.Admin;

// floodgate admin ban list|add|remove
internal static partial class AdminCommand
{
    private static Command Bans(TextWriter output, TextWriter error)
    {
        var command = new Command("ban", "List, add and lift bans of IP addresses, networks and subjects.");

        var limit = new Option<int>("--limit") { Description = "How many to list, up to 1000.", DefaultValueFactory = _ => 100 };
        var list = new Command("list", "The bans in force, the latest first.") { limit };
        list.SetAction((result, cancel) => CallAsync(result, output, error, HttpMethod.Get, "/bans?limit=" + result.GetValue(limit).ToString(CultureInfo.InvariantCulture), null, cancel, json =>
        {
            var lines = json.GetProperty("bans").EnumerateArray().Select(DescribeBan).ToList();
            return lines.Count == 0 ? "no bans" : string.Join(Environment.NewLine, lines);
        }));

        var addKind = new Argument<string>("kind") { Description = "ip, cidr or subject." };
        var addTarget = new Argument<string>("target") { Description = "The IP address, the network (203.0.113.0/24) or the subject." };
        var ttl = new Option<string>("--ttl") { Description = "How long the ban lasts, such as 15m, 12h or 7d.", Required = true };
        var add = new Command("add", "Ban an IP address, a network or a subject for a time.") { addKind, addTarget, ttl };
        add.SetAction((result, cancel) => CallAsync(result, output, error, HttpMethod.Post, "/bans", new { kind = result.GetRequiredValue(addKind), target = result.GetRequiredValue(addTarget), ttl = result.GetValue(ttl) }, cancel, DescribeBan));

        var removeKind = new Argument<string>("kind") { Description = "ip, cidr or subject." };
        var removeTarget = new Argument<string>("target") { Description = "The IP address, network or subject." };
        var remove = new Command("remove", "Lift a ban (an edge rule's too).") { removeKind, removeTarget };
        remove.SetAction((result, cancel) =>
        {
            var kind = result.GetRequiredValue(removeKind);
            var target = result.GetRequiredValue(removeTarget);

            // A network keeps its '/' as a path separator (the route takes the rest of the path); anything else is escaped.
            var path = kind == "cidr" ? string.Join('/', target.Split('/').Select(Uri.EscapeDataString)) : Uri.EscapeDataString(target);
            return CallAsync(result, output, error, HttpMethod.Delete, $"/bans/{Uri.EscapeDataString(kind)}/{path}", null, cancel, _ => $"lifted the ban on {kind} {target}");
        });

        command.Add(list);
        command.Add(add);
        command.Add(remove);
        return command;
    }

    private static string DescribeBan(JsonElement ban) =>
        $"{Text(ban, "kind")} {Text(ban, "target")}: set by {Text(ban, "source")}, until {ban.GetProperty("expiresAt").GetDateTimeOffset():u}";
}

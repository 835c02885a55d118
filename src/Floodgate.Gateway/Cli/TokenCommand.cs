using System.CommandLine;
using Floodgate.Gateway.Demo;

namespace Floodgate.Gateway.Cli;

/// <summary><c>floodgate token</c>: mints a token signed with the demo key.</summary>
internal static class TokenCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var subject = new Option<string>("--sub") { Description = "The subject (sub claim).", Required = true };
        var plan = new Option<string?>("--plan") { Description = "The plan claim, such as free or pro." };
        var ttl = new Option<TimeSpan>("--ttl") { Description = "How long the token is valid (hh:mm:ss).", DefaultValueFactory = _ => TimeSpan.FromHours(1) };
        var key = new Option<FileInfo?>("--key") { Description = "The demo signing key; default $FLOODGATE_DEMO_KEY or ~/.floodgate/demo-signing-key.pem." };
        var command = new Command("token", "Mint a token signed with the demo key, for trying the gateway started with --demo.") { subject, plan, ttl, key };
        command.SetAction(result =>
        {
            var lifetime = result.GetValue(ttl);
            if (lifetime <= TimeSpan.Zero || lifetime > TimeSpan.FromDays(30))
            {
                error.WriteLine("--ttl must be between 1 second and 30 days.");
                return 1;
            }

            try
            {
                using var demoKey = DemoKey.LoadOrCreate(result.GetValue(key)?.FullName);
                output.WriteLine(demoKey.Issue(result.GetRequiredValue(subject), result.GetValue(plan), lifetime));
                return 0;
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                error.WriteLine(e.Message);
                return 1;
            }
        });
        return command;
    }
}

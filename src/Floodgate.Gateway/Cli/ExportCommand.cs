using System.CommandLine;
using Floodgate.Gateway.Export;
using Floodgate.Gateway.Policy;

namespace Floodgate.Gateway.Cli;

/// <summary>
/// <c>floodgate export --target cloudflare|aws-waf POLICY</c>: writes the edge tier's rules for another enforcer, warns
/// of every approximation by rule and target, and refuses by name a rule that cannot be exported (docs/edge.md).
/// </summary>
internal static class ExportCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var file = new Argument<FileInfo>("policy") { Description = "The policy file whose edge rules to export." };
        var target = new Option<string>("--target") { Description = "cloudflare (Terraform JSON: a cloudflare_ruleset in phase http_ratelimit) or aws-waf (a WebACL as JSON).", Required = true };
        target.AcceptOnlyFromAmong("cloudflare", "aws-waf");
        var format = new Option<string>("--format") { Description = "For aws-waf: json (the WebACL, for aws wafv2 create-web-acl --cli-input-json; the default) or cloudformation.", DefaultValueFactory = _ => "json" };
        format.AcceptOnlyFromAmong("json", "cloudformation");
        var looser = new Option<bool>("--allow-looser") { Description = "Export a rule the target can only make looser (a limit below its minimum) at the minimum, with a warning, rather than refuse it." };
        var into = new Option<FileInfo?>("--output", "-o") { Description = "Write the document here rather than to standard output." };
        var command = new Command("export", "Write the edge tier's rules for Cloudflare or AWS WAF; every approximation is warned of by rule, and a rule that cannot be exported is an error naming it.")
        {
            file, target, format, looser, into,
        };
        command.SetAction(result =>
        {
            var path = result.GetRequiredValue(file).FullName;
            var to = result.GetRequiredValue(target) == "cloudflare" ? ExportTarget.Cloudflare : ExportTarget.AwsWaf;
            if (to == ExportTarget.Cloudflare && result.GetValue(format) == "cloudformation")
            {
                error.WriteLine("error: --format cloudformation is for --target aws-waf; Cloudflare's export is Terraform JSON.");
                return 2;
            }

            GatewayPolicy policy;
            try
            {
                policy = PolicyLoader.Load(path);
            }
            catch (PolicyException e)
            {
                foreach (var problem in e.Errors)
                {
                    error.WriteLine(problem.ToString());
                }

                return 1;
            }

            var exported = EdgeExport.Export(policy, to, result.GetValue(format) == "cloudformation", result.GetValue(looser));
            foreach (var warning in exported.Warnings)
            {
                error.WriteLine("warning: " + warning);
            }

            foreach (var problem in exported.Errors)
            {
                error.WriteLine("error: " + problem);
            }

            if (exported.Errors.Count > 0)
            {
                return 1;
            }

            if (result.GetValue(into) is { } outputFile)
            {
                File.WriteAllText(outputFile.FullName, exported.Document);
            }
            else
            {
                output.Write(exported.Document);
            }

            return 0;
        });
        return command;
    }
}

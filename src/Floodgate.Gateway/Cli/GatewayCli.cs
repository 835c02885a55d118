using System.CommandLine;

namespace Floodgate.Gateway.Cli;

/// <summary>The <c>floodgate</c> command line: <c>run</c>, <c>check</c>, <c>token</c>, <c>envoy</c>, <c>admin</c>, <c>probe</c> and <c>export</c>.</summary>
public static class GatewayCli
{
    /// <summary>Builds the command tree.</summary>
    public static RootCommand Build(TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var root = new RootCommand("Floodgate: a multi-tier HTTP rate limiter in front of your API.");
        root.Add(RunCommand.Create(output, error));
        root.Add(CheckCommand.Create(output, error));
        root.Add(TokenCommand.Create(output, error));
        root.Add(EnvoyCommand.Create(error));
        root.Add(Admin.AdminCommand.Create(output, error));
        root.Add(ProbeCommand.Create(output, error));
        root.Add(ExportCommand.Create(output, error));
        return root;
    }
}

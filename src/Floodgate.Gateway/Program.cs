using System.CommandLine;
using Floodgate.Gateway.Cli;

// SIGTERM and Ctrl+C are the run command's own (a graceful shutdown that may take longer than System.CommandLine's two
// seconds, after which it would exit 143 with requests still in flight); the other commands end at once on them.
return await GatewayCli.Build(Console.Out, Console.Error).Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);

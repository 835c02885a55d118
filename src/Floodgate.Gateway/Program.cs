using Floodgate.Gateway.Cli;

return await GatewayCli.Build(Console.Out, Console.Error).Parse(args).InvokeAsync().ConfigureAwait(false);

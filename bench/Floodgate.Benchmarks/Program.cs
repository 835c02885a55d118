using System.Globalization;
using BenchmarkDotNet.Running;
using Floodgate.Benchmarks;

// Run all: dotnet run -c Release --project bench/Floodgate.Benchmarks -- --filter '*'
// What RenewLeases adds, in alternating rounds: dotnet run -c Release --project bench/Floodgate.Benchmarks -- renewal-pairs [rounds] [requests] [held]
if (args is ["renewal-pairs", ..])
{
    int Arg(int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
    RenewalPairs.Run(Arg(1, 41), Arg(2, 100_000), Arg(3, 1_000));
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

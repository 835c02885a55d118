using BenchmarkDotNet.Running;

// Run: dotnet run -c Release --project bench/Floodgate.Edge.Benchmarks -- --filter '*' --job short
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

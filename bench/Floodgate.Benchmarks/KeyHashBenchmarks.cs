using BenchmarkDotNet.Attributes;
using Floodgate.Keys;

namespace Floodgate.Benchmarks;

/// <summary>What hashing a key costs, apart from deciding it.</summary>
[MemoryDiagnoser]
public class KeyHashBenchmarks
{
    private readonly string _key = "user-12345";

    [Benchmark]
    public StoreKey Create() => StoreKey.Create("bench", _key);
}

using BenchmarkDotNet.Attributes;
using Floodgate.Logging;

namespace Floodgate.Benchmarks;

/// <summary>
/// What escaping a logged request value costs: a clean path or subject (the common case, returned as is), one with a
/// control character, and a 10 KB subject cut to the length.
/// </summary>
[MemoryDiagnoser]
public class LogValuesBenchmarks
{
    private readonly string _cleanPath = "/api/v1/orders/12345/items";
    private readonly string _cleanSubject = "auth0|5f7c8ec7c33c6c004bbafe82";
    private readonly string _forged = "/a\r\u001B[2K12:00:00 info: all good";
    private readonly string _long = new('a', 10_000);

    [Benchmark(Baseline = true)]
    public string CleanPath() => LogValues.Escape(_cleanPath);

    [Benchmark]
    public string CleanSubject() => LogValues.Escape(_cleanSubject);

    [Benchmark]
    public string Forged() => LogValues.Escape(_forged);

    [Benchmark]
    public string Long() => LogValues.Escape(_long);
}

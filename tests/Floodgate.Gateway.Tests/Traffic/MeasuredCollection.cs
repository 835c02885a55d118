namespace Floodgate.Gateway.Tests.Traffic;

/// <summary>Tests that measure the process's memory run alone, so that no other test's allocations land in their numbers.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MeasuredCollection
{
    public const string Name = "Measured traffic";
}

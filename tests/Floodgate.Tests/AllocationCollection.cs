namespace Floodgate.Tests;

/// <summary>
/// Test classes that assert a decision allocates nothing, by the bytes allocated on the test's thread. They run after
/// the parallel ones and alone: in a full parallel run both <see cref="Engine.EngineTests"/> and <see cref="Overrides.OverrideTests"/>
/// sometimes counted 248 bytes (or a multiple) in every round, never when run alone or with parallelization off.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Allocation";
}

namespace Floodgate.Stores;

/// <summary>Options of the <see cref="MemoryStore"/>.</summary>
public sealed class MemoryStoreOptions
{
    /// <summary>
    /// The most keys the store keeps; beyond it, expired then idle keys are evicted. Default: 1,000,000. Each key takes
    /// a 64-byte slot in a table kept at most three quarters full and sized in powers of two, so 64 to 128 bytes a key:
    /// at most 128 MiB at the default cap.
    /// </summary>
    public int MaxEntries { get; set; } = 1_000_000;

    /// <summary>
    /// How many independently locked shards the store has; rounded up to a power of two. Default: 0, which picks
    /// 16 per processor.
    /// </summary>
    public int Shards { get; set; }

    /// <summary>
    /// Whether to read the system clock precisely on every decision. Default <see langword="false"/>: the store reads it
    /// once per operating system tick (1 to 4 ms) and shares the value, because a precise read costs as much as the rest
    /// of a decision on virtual machines; decisions and retry times are then exact to that tick, well within HTTP's
    /// whole-second <c>Retry-After</c>. A <see cref="TimeProvider"/> other than the system's is always read on every decision.
    /// </summary>
    public bool PreciseClock { get; set; }

    /// <summary>Throws when an option is out of range, with a message naming it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public void Validate()
    {
        if (MaxEntries < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxEntries), MaxEntries, "The memory store must be able to keep at least one key.");
        }

        if (Shards < 0 || Shards > 1 << 16)
        {
            throw new ArgumentOutOfRangeException(nameof(Shards), Shards, "Shards must be between 0 (automatic) and 65536.");
        }
    }
}

namespace Floodgate.Stores.Memory;

/// <summary>
/// The logs of a shard's sliding-log keys, named by index so an <see cref="Entry"/> stays a plain struct (0 is no log).
/// A log given back is cleared and lent to the next sliding-log key, keeping its array. Not thread-safe: the shard's
/// lock guards it.
/// </summary>
internal sealed class SlidingLogPool
{
    private readonly List<SlidingLogRing?> _logs = [null];
    private readonly Stack<int> _free = new();

    /// <summary>The log at <paramref name="index"/>, which is not 0.</summary>
    public SlidingLogRing this[int index] => _logs[index]!;

    /// <summary>Lends a log, empty; returns its index.</summary>
    public int Rent()
    {
        if (_free.TryPop(out var index))
        {
            return index;
        }

        _logs.Add(new SlidingLogRing());
        return _logs.Count - 1;
    }

    /// <summary>Takes back the log at <paramref name="index"/>, forgetting its entries.</summary>
    public void Return(int index)
    {
        _free.Push(index);
        _logs[index]!.Clear();
    }
}

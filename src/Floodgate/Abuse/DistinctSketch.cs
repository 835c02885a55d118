using System.Numerics;

namespace Floodgate.Abuse;

/// <summary>
/// Counts distinct values, given as 64-bit hashes: exactly up to <see cref="ExactCapacity"/> values, then by a
/// HyperLogLog of <see cref="Registers"/> registers (standard error 1.04/√m, 1.625 %).
/// </summary>
/// <remarks>
/// <para>
/// The exact set and the registers are allocated once, when the sketch is made and when it first passes the exact
/// capacity; adding a value never allocates. <see cref="Reset"/> empties it for the next window and keeps its arrays.
/// </para>
/// <para>
/// The registers are Redis's layout with 12 index bits instead of 14 (a value's low 12 bits pick the register; the
/// register keeps the longest run of zeros, plus one, of the other 52 bits), and the estimate is Ertl's (2017), which
/// Redis uses too: unbiased from a few values to billions without empirical corrections. 4 KiB a sketch keeps a
/// replica's memory bounded when many keys pass the exact capacity; Redis's own sketches (16,384 registers, 0.81 %)
/// are what the Redis store counts with.
/// </para>
/// <para>Not thread-safe: the memory store locks each sketch.</para>
/// </remarks>
public sealed class DistinctSketch
{
    /// <summary>How many distinct values are counted exactly, before the sketch turns to HyperLogLog.</summary>
    public const int ExactCapacity = 64;

    /// <summary>The index bits: <see cref="Registers"/> is 2 to this power.</summary>
    public const int IndexBits = 12;

    /// <summary>The registers of the HyperLogLog, m.</summary>
    public const int Registers = 1 << IndexBits;

    /// <summary>The standard error of an estimate above <see cref="ExactCapacity"/>: 1.04/√m.</summary>
    public static readonly double StandardError = 1.04 / Math.Sqrt(Registers);

    // Q: the bits left after the index; a register holds 1 to Q + 1.
    private const int Q = 64 - IndexBits;
    private const double AlphaInfinity = 0.721347520444481703680;

    private readonly ulong[] _exact = new ulong[ExactCapacity];
    private int _exactCount;
    private bool _hasZero;
    private byte[]? _registers;
    private int[]? _histogram;
    private long _estimate = -1;
    private bool _sparse = true;

    /// <summary>Whether the sketch still counts exactly.</summary>
    public bool IsExact => _sparse;

    /// <summary>Adds a value's hash; <see langword="true"/> when the count may have changed.</summary>
    public bool Add(ulong hash)
    {
        if (_sparse)
        {
            if (ContainsExact(hash))
            {
                return false;
            }

            if (_exactCount < ExactCapacity)
            {
                AddExact(hash);
                return true;
            }

            ToDense();
        }

        if (!Set(_registers!, _histogram!, hash))
        {
            return false;
        }

        _estimate = -1;
        return true;
    }

    // Zero marks an empty slot, so a zero hash is remembered apart. The table is never fuller than its slots, so a
    // probe always ends at the value or at an empty slot.
    private bool ContainsExact(ulong hash)
    {
        if (hash == 0)
        {
            return _hasZero;
        }

        for (int probe = 0, at = (int)(hash % ExactCapacity); probe < ExactCapacity; probe++, at = (at + 1) % ExactCapacity)
        {
            if (_exact[at] == hash)
            {
                return true;
            }

            if (_exact[at] == 0)
            {
                return false;
            }
        }

        return false;
    }

    private void AddExact(ulong hash)
    {
        _exactCount++;
        if (hash == 0)
        {
            _hasZero = true;
            return;
        }

        var at = (int)(hash % ExactCapacity);
        while (_exact[at] != 0)
        {
            at = (at + 1) % ExactCapacity;
        }

        _exact[at] = hash;
    }

    /// <summary>The count: exact while <see cref="IsExact"/>, else the HyperLogLog's estimate.</summary>
    /// <remarks>
    /// The estimate is kept until a register changes, and made from a histogram of the registers kept as they change: a
    /// count costs a pass over 54 buckets, not over the 4,096 registers, and nothing while the set does not grow.
    /// </remarks>
    public long Count => _sparse ? _exactCount : _estimate >= 0 ? _estimate : _estimate = Estimate(_histogram!, Registers);

    /// <summary>Empties the sketch for a new window, keeping what it allocated.</summary>
    public void Reset()
    {
        Array.Clear(_exact);
        _exactCount = 0;
        _hasZero = false;
        if (_registers is not null)
        {
            Array.Clear(_registers);
            Array.Clear(_histogram!);
        }

        _estimate = -1;

        _sparse = true;
    }

    private void ToDense()
    {
        _registers ??= new byte[Registers];
        _histogram ??= new int[Q + 2];
        _histogram[0] = Registers;
        foreach (var held in _exact)
        {
            if (held != 0)
            {
                Set(_registers, _histogram, held);
            }
        }

        if (_hasZero)
        {
            Set(_registers, _histogram, 0);
        }

        _estimate = -1;

        _sparse = false;
    }

    private static bool Set(byte[] registers, int[] histogram, ulong hash)
    {
        var index = (int)(hash & (Registers - 1));
        // The run of zeros of the other bits, plus one; a sentinel bit at Q caps it at Q + 1.
        var rank = (byte)(BitOperations.TrailingZeroCount((hash >> IndexBits) | (1UL << Q)) + 1);
        if (registers[index] >= rank)
        {
            return false;
        }

        histogram[registers[index]]--;
        histogram[rank]++;
        registers[index] = rank;
        return true;
    }

    /// <summary>Ertl's improved estimator ("New cardinality estimation algorithms for HyperLogLog sketches", 2017).</summary>
    /// <param name="histogram">How many registers hold each value, 0 to Q + 1.</param>
    /// <param name="registers">How many registers there are, m.</param>
    internal static long Estimate(ReadOnlySpan<int> histogram, int registers)
    {
        double m = registers;
        var z = m * Tau((m - histogram[Q + 1]) / m);
        for (var k = Q; k >= 1; k--)
        {
            z += histogram[k];
            z *= 0.5;
        }

        z += m * Sigma(histogram[0] / m);
        return (long)Math.Round(AlphaInfinity * m * m / z);
    }

    private static double Sigma(double x)
    {
        if (x == 1.0)
        {
            return double.PositiveInfinity;
        }

        double previous;
        var y = 1.0;
        var z = x;
        do
        {
            x *= x;
            previous = z;
            z += x * y;
            y += y;
        }
        while (previous != z);
        return z;
    }

    private static double Tau(double x)
    {
        if (x == 0.0 || x == 1.0)
        {
            return 0.0;
        }

        double previous;
        var y = 1.0;
        var z = 1 - x;
        do
        {
            x = Math.Sqrt(x);
            previous = z;
            y *= 0.5;
            z -= (1 - x) * (1 - x) * y;
        }
        while (previous != z);
        return z / 3;
    }
}

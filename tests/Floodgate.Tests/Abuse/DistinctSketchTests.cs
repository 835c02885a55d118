using System.IO.Hashing;
using Floodgate.Abuse;

namespace Floodgate.Tests.Abuse;

public sealed class DistinctSketchTests
{
    private static ulong Hash(string text) => XxHash64.HashToUInt64(System.Text.Encoding.UTF8.GetBytes(text));

    [Fact]
    public void Counts_exactly_up_to_the_exact_capacity_whatever_the_repeats()
    {
        var sketch = new DistinctSketch();
        for (var n = 1; n <= DistinctSketch.ExactCapacity; n++)
        {
            Assert.True(sketch.Add(Hash($"v{n}")));
            Assert.False(sketch.Add(Hash($"v{n}")));
            Assert.False(sketch.Add(Hash("v1")));
            Assert.Equal(n, sketch.Count);
            Assert.True(sketch.IsExact);
        }

        sketch.Add(Hash("one more"));
        Assert.False(sketch.IsExact);
    }

    [Fact]
    public void A_zero_hash_is_a_value_like_any_other()
    {
        var sketch = new DistinctSketch();
        Assert.True(sketch.Add(0));
        Assert.False(sketch.Add(0));
        Assert.True(sketch.Add(1));
        Assert.Equal(2, sketch.Count);
    }

    // The property: for any set of distinct values above the exact capacity, the estimate is within 3 standard errors
    // (1.04/sqrt(m) each: 4.9 % for m = 4096), which a HyperLogLog meets with probability 0.997 per trial; every seed here
    // is fixed, so the test is deterministic, and 40 independent sets check the bound rather than one lucky draw.
    [Theory]
    [InlineData(100)]
    [InlineData(1_000)]
    [InlineData(10_000)]
    [InlineData(100_000)]
    public void Estimates_are_within_the_documented_error(int distinct)
    {
        var bound = 3 * DistinctSketch.StandardError;
        var errors = new List<double>();
        for (var trial = 0; trial < 40; trial++)
        {
            var sketch = new DistinctSketch();
            var random = new Random(trial * 7919 + distinct);
            for (var i = 0; i < distinct; i++)
            {
                var value = (ulong)random.NextInt64() ^ ((ulong)random.Next() << 63);
                sketch.Add(XxHash64.HashToUInt64(BitConverter.GetBytes(value)));

                // Repeats never count.
                if (i % 10 == 0)
                {
                    sketch.Add(XxHash64.HashToUInt64(BitConverter.GetBytes(value)));
                }
            }

            var error = (sketch.Count - distinct) / (double)distinct;
            Assert.True(Math.Abs(error) <= bound, $"trial {trial}: {sketch.Count} for {distinct} distinct values, error {error:P2} > {bound:P2}");
            errors.Add(error);
        }

        // And the errors spread as the standard error says (their RMS within a factor of 1.5 of it), with no bias to speak of.
        var rms = Math.Sqrt(errors.Average(e => e * e));
        Assert.InRange(rms, 0, 1.5 * DistinctSketch.StandardError);
        Assert.InRange(Math.Abs(errors.Average()), 0, DistinctSketch.StandardError);
    }

    [Fact]
    public void Ten_thousand_client_addresses_are_counted_within_the_error()
    {
        var sketch = new DistinctSketch();
        Span<byte> bytes = stackalloc byte[16];
        for (var i = 0; i < 10_000; i++)
        {
            var ip = new System.Net.IPAddress([10, (byte)(i >> 16), (byte)(i >> 8), (byte)i]);
            sketch.Add(XxHash64.HashToUInt64(bytes[..DistinctValues.Network(ip, 32, 128, bytes)]));
        }

        Assert.InRange(sketch.Count, 10_000 * (1 - (3 * DistinctSketch.StandardError)), 10_000 * (1 + (3 * DistinctSketch.StandardError)));
    }

    [Fact]
    public void Adding_allocates_nothing_once_dense()
    {
        var sketch = new DistinctSketch();
        for (ulong i = 1; i <= 1000; i++)
        {
            sketch.Add(i * 0x9E3779B97F4A7C15);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (ulong i = 1; i <= 10_000; i++)
        {
            sketch.Add(i * 0xC2B2AE3D27D4EB4F);
        }

        _ = sketch.Count;
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Reset_starts_over_exactly()
    {
        var sketch = new DistinctSketch();
        for (ulong i = 1; i <= 500; i++)
        {
            sketch.Add(i * 0x9E3779B97F4A7C15);
        }

        sketch.Reset();
        Assert.Equal(0, sketch.Count);
        Assert.True(sketch.IsExact);
        sketch.Add(42);
        Assert.Equal(1, sketch.Count);
    }

    [Theory]
    [InlineData("203.0.113.7", 24, 128, "203.0.113.0")]
    [InlineData("::ffff:203.0.113.7", 24, 64, "203.0.113.0")]
    [InlineData("2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::")]
    [InlineData("2001:db8:1:2:3:4:5:6", 32, 128, "2001:db8:1:2:3:4:5:6")]
    public void Networks_group_addresses_by_family(string address, int v4, int v6, string network)
    {
        Span<byte> bytes = stackalloc byte[16];
        var written = DistinctValues.Network(System.Net.IPAddress.Parse(address), v4, v6, bytes);
        Assert.Equal(System.Net.IPAddress.Parse(network), new System.Net.IPAddress(bytes[..written]));
    }
}

namespace Floodgate.Stores.Memory;

/// <summary>
/// A keyed mix of a 128-bit key hash: the 128-bit product of its halves, each XORed with a secret seed, folded to 64 bits
/// (the multiply of wyhash and rapidhash), then spread by Fibonacci hashing so every bit of the fold reaches the bits
/// returned.
/// </summary>
/// <remarks>
/// Key hashes are public functions of what a client sends. Mixed with seeds drawn at random when the store is created,
/// which keys share a shard or a home slot cannot be predicted, so a client cannot compute keys that crowd one shard or
/// one probe run.
/// </remarks>
internal static class KeyedMix
{
    public static int Of(UInt128 key, ulong seed0, ulong seed1)
    {
        var high = Math.BigMul((ulong)key ^ seed0, (ulong)(key >> 64) ^ seed1, out var low);
        return (int)(((high ^ low) * 0x9E3779B97F4A7C15UL) >> 32);
    }
}

namespace Floodgate.Algorithms;

/// <summary>
/// The state one key keeps: three 64-bit slots whose meaning depends on the algorithm. A zeroed state is a key that
/// has never been seen.
/// </summary>
/// <remarks>
/// <list type="table">
/// <item><term>gcra</term><description>A: theoretical arrival time.</description></item>
/// <item><term>fixed_window</term><description>A: window start, B: count.</description></item>
/// <item><term>sliding_window</term><description>A: current window start, B: previous window's count, C: current window's count.</description></item>
/// <item><term>quota</term><description>A: period start, B: count, C: period end.</description></item>
/// </list>
/// Every time is in microseconds since the Unix epoch. Stores keep these three numbers and nothing else, which is
/// what lets the Redis scripts mirror the in-memory store exactly. Part of the store-author API: a store keeps a key's
/// state as it likes and hands it to <see cref="LimitMath"/>, which never changes it but returns the next one.
/// </remarks>
/// <param name="A">The first slot.</param>
/// <param name="B">The second slot.</param>
/// <param name="C">The third slot.</param>
public readonly record struct LimitState(long A, long B, long C);

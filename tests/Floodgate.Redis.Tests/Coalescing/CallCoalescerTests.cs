using System.Collections.Concurrent;
using System.Diagnostics;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

/// <summary>
/// The coalescer's queue on its own, with a send that fails before any server is reached, as a send does when a
/// Sentinel store has no master to send to: what is tested is how the queue moves on, not what Redis answers.
/// </summary>
public sealed class CallCoalescerTests
{
    [Fact]
    public async Task Runs_whose_send_fails_at_once_follow_one_another_without_nesting()
    {
        // Each send fails at once and, while it runs, sees the next call arrive (a flood of requests during a failover).
        // Handed over inline, every run would be sent from inside the last one's send, one level deeper each time.
        const int Arrivals = 200;
        var depths = new ConcurrentBag<int>();
        var calls = new ConcurrentQueue<Task<RedisResult>>();
        var sends = 0;
        var lastSend = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        CallCoalescer? coalescer = null;
        coalescer = new CallCoalescer(
            (keys, values) =>
            {
                var send = Interlocked.Increment(ref sends);
                if (send > 1)
                {
                    depths.Add(new StackTrace().FrameCount);
                }

                if (send <= Arrivals)
                {
                    calls.Enqueue(coalescer!.Evaluate(keys, values, long.MaxValue, CancellationToken.None));
                }
                else
                {
                    lastSend.TrySetResult();
                }

                return Task.FromException<RedisResult>(new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, "No master."));
            },
            TimeSpan.FromSeconds(30));

        var first = coalescer.Evaluate([new RedisKey("k")], [RedisValue.EmptyString, 1], long.MaxValue, CancellationToken.None);
        await Assert.ThrowsAsync<RedisConnectionException>(() => first);
        await lastSend.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(Arrivals + 1, Volatile.Read(ref sends));
        Assert.Equal(Arrivals, calls.Count);
        foreach (var call in calls)
        {
            await Assert.ThrowsAsync<RedisConnectionException>(() => call.WaitAsync(TimeSpan.FromSeconds(10)));
        }

        Assert.Equal(Arrivals, depths.Count);
        Assert.True(depths.Max() - depths.Min() < 50, $"the sends' stacks grew from {depths.Min()} to {depths.Max()} frames");
        Assert.Equal(Arrivals + 1, coalescer.Runs);
    }
}

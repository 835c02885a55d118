namespace Floodgate.Redis;

// Whether the store has its connection yet, for a host that must not take traffic before it does.
public sealed partial class RedisStore
{
    private static readonly TimeSpan ConnectedPollInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Whether the store is connected to Redis now: to the node, to a node of the cluster, or to the master the Sentinels
    /// name. Until it is, decisions are answered by the failure mode.
    /// </summary>
    public bool IsConnected => Current is { IsConnected: true };

    /// <summary>Completes once the store is connected to Redis (<see cref="IsConnected"/>); at once when it is.</summary>
    /// <remarks>
    /// Polls every 50 ms on the system clock, whatever clock the store's limits run on: it waits on the network, and the
    /// connection (made by the multiplexer, or by a Sentinel naming a master) raises no one event for all the topologies.
    /// </remarks>
    /// <param name="cancellationToken">Stops waiting, such as at a host's start-up deadline.</param>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <exception cref="ObjectDisposedException">The store was disposed first.</exception>
    public async Task WaitConnectedAsync(CancellationToken cancellationToken)
    {
        while (!IsConnected)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
            await Task.Delay(ConnectedPollInterval, TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
    }
}

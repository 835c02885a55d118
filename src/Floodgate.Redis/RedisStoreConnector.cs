using Floodgate.Stores;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Floodgate.Redis;

/// <summary>
/// Creates the <see cref="RedisStore"/> that <see cref="Microsoft.Extensions.DependencyInjection.RedisStoreServiceCollectionExtensions.AddFloodgateRedisStore"/>
/// registers when the host starts, before any hosted service (the web server included) starts, so that it connects
/// then, in the background, rather than inside the first request that asks for it.
/// </summary>
/// <remarks>
/// The start waits for the connection at most <see cref="RedisStoreOptions.Timeout"/>, what a decision would wait for
/// Redis: enough for a Redis that answers, and never a hang for one that does not, whose decisions then follow the
/// failure mode until the connection is made. The store is disposed with the host's services, after every hosted
/// service (the web server's requests included) has stopped. A store not connected by then is said loudly (a critical
/// log naming the failure mode and what it does meanwhile): under the default <c>open</c>, it limits nothing.
/// </remarks>
internal sealed partial class RedisStoreConnector(RedisStore store, ILogger<RedisStore>? logger = null) : IHostedLifecycleService
{
    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        try
        {
            await store.Connecting.WaitAsync(store.Options.Timeout, TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Still connecting: the host starts, and decisions follow the failure mode until the connection is made.
        }

        // Still connecting, or the first attempt already failed (a refused connection): said once, loudly.
        if (!store.IsConnected)
        {
            var mode = store.Options.FailureMode;
            NotConnected(logger ?? NullLogger<RedisStore>.Instance, store.Options.Timeout.TotalMilliseconds, mode.ToString().ToLowerInvariant(), mode switch
            {
                StoreFailureMode.Closed => "every limited request is refused with 503",
                StoreFailureMode.Local => "each replica enforces its share of every limit in memory",
                _ => "every request is let through unlimited",
            });
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(40, LogLevel.Critical, "The Redis store is not connected at start (waited up to {Milliseconds} ms): until it connects, decisions follow the failure mode {Mode}: {Consequence}. Check RedisStoreOptions.Configuration, or set FailureMode")]
    private static partial void NotConnected(ILogger logger, double milliseconds, string mode, string consequence);
}

using Microsoft.Extensions.Hosting;

namespace Floodgate.Redis;

/// <summary>
/// Creates the <see cref="RedisStore"/> that <see cref="RedisStoreServiceCollectionExtensions.AddFloodgateRedisStore"/>
/// registers when the host starts, before any hosted service (the web server included) starts, so that it connects
/// then, in the background, rather than inside the first request that asks for it.
/// </summary>
/// <remarks>
/// The start waits for the connection at most <see cref="RedisStoreOptions.Timeout"/>, what a decision would wait for
/// Redis: enough for a Redis that answers, and never a hang for one that does not, whose decisions then follow the
/// failure mode until the connection is made. The store is disposed with the host's services, after every hosted
/// service (the web server's requests included) has stopped.
/// </remarks>
internal sealed class RedisStoreConnector(RedisStore store) : IHostedLifecycleService
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
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

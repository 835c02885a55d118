using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Tests.Adaptive;

/// <summary>
/// A server with a number of workers: each request holds one for <see cref="ServiceTime"/>, and waits in line for one
/// when all are busy, so its latency grows with the concurrency beyond the workers. Workers can be taken away and given
/// back while it runs (a database losing capacity).
/// </summary>
internal sealed class QueueingUpstream(int maxWorkers, int workers, TimeSpan serviceTime)
{
    private readonly SemaphoreSlim _workers = new(workers, maxWorkers);
    private int _workerCount = workers;

    /// <summary>How long each request holds a worker.</summary>
    public TimeSpan ServiceTime { get; set; } = serviceTime;

    /// <summary>How many workers serve now.</summary>
    public int Workers => Volatile.Read(ref _workerCount);

    /// <summary>Serves one request: waits for a worker, holds it for the service time.</summary>
    public async Task ServeAsync(HttpContext context)
    {
        await _workers.WaitAsync(context.RequestAborted);
        try
        {
            await Task.Delay(ServiceTime, context.RequestAborted);
        }
        finally
        {
            _workers.Release();
        }

        await context.Response.WriteAsync("served", context.RequestAborted);
    }

    /// <summary>Sets the number of workers: takes some away (waiting until they are free) or gives some back.</summary>
    public async Task SetWorkersAsync(int workers)
    {
        for (; _workerCount > workers; _workerCount--)
        {
            await _workers.WaitAsync();
        }

        if (workers > _workerCount)
        {
            _workers.Release(workers - _workerCount);
            _workerCount = workers;
        }
    }
}

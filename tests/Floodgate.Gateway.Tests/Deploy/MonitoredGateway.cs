using System.Net;
using Floodgate.Gateway.Demo;

namespace Floodgate.Gateway.Tests.Deploy;

/// <summary>
/// A gateway process as the monitoring tests see it: on a real redis-server, trusting a real identity provider (so the
/// identity series exist), in front of an echo upstream, with an edge rule named <c>alerted</c> (5/min) that the
/// bounded load goes over, a rule in shadow mode, a concurrency rule, and the policy file watched. The store fails
/// open (the default) after 200 ms.
/// </summary>
internal sealed class MonitoredGateway : IAsyncDisposable
{
    private readonly EchoUpstream _upstream;
    private readonly TestIdentityProvider _identity;

    private MonitoredGateway(RedisServer redis, EchoUpstream upstream, TestIdentityProvider identity, GatewayProcess process)
    {
        Redis = redis;
        _upstream = upstream;
        _identity = identity;
        Process = process;
    }

    public GatewayProcess Process { get; }

    public RedisServer Redis { get; }

    public static async Task<MonitoredGateway> StartAsync()
    {
        var redis = RedisServer.Start();
        var upstream = await EchoUpstream.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var identity = await TestIdentityProvider.StartAsync();
        var process = GatewayProcess.Start($$"""
            upstream: {{upstream.Address.ToString().TrimEnd('/')}}
            store: { kind: redis, configuration: "{{redis.Configuration}}", timeout: 200ms }
            identity:
              jwt:
                authority: {{identity.Authority}}
                require_https: false
                audiences: [{{TestIdentityProvider.DefaultAudience}}]
            edge:
              - name: alerted
                limit: 5/min
            user:
              - name: per-user
                limit: 100/s
              - name: shadowed
                limit: 1/min
                mode: shadow
            service:
              - name: in-flight
                concurrency: 100
            """);
        var gateway = new MonitoredGateway(redis, upstream, identity, process);
        try
        {
            await process.WaitReadyAsync();
            return gateway;
        }
        catch
        {
            await gateway.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Two clients sending anonymous requests (one in 25 with a token that is not one, refused 401), 20 ms apart each,
    /// until <paramref name="cancellationToken"/> or 5,000 requests: the admitted and the rejected counts.
    /// </summary>
    public async Task<(int Ok, int Limited)> LoadAsync(CancellationToken cancellationToken)
    {
        var ok = 0;
        var limited = 0;
        using var client = new HttpClient { BaseAddress = Process.Proxy, Timeout = TimeSpan.FromSeconds(10) };
        await Task.WhenAll(Enumerable.Range(0, 2).Select(async worker =>
        {
            for (var i = 0; i < 2_500 && !cancellationToken.IsCancellationRequested; i++)
            {
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"/load/{worker}/{i}", UriKind.Relative));
                    if (i % 25 == 0)
                    {
                        request.Headers.Authorization = new("Bearer", "not.a.token");
                    }

                    using var response = await client.SendAsync(request, cancellationToken);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref ok);
                    }
                    else if (response.StatusCode == HttpStatusCode.TooManyRequests)
                    {
                        Interlocked.Increment(ref limited);
                    }

                    await Task.Delay(20, cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
            }
        }));
        return (ok, limited);
    }

    public async ValueTask DisposeAsync()
    {
        Process.Dispose();
        await _identity.DisposeAsync();
        await _upstream.DisposeAsync();
        Redis.Dispose();
    }
}

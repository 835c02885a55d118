using System.Net;
using Floodgate.AspNetCore.Identity;
using Yarp.ReverseProxy.Configuration;

// The parts of bench/gateway/run.sh that are not the gateway itself:
//   upstream <port>              a small Kestrel app answering every request with a short body
//   bare <port> <upstream-url>   YARP with no limiting, the baseline (a)
//   bare-redis <port> <upstream-url> <redis>
//                                YARP that makes one trivial Redis script call per request and ignores its answer: the
//                                floor of any limiter that keeps its state in Redis strictly, one round trip a request (e)
//   bare-decide <port> <upstream-url> <redis> <script>
//                                YARP that makes the gateway's own decision script call per request (case (c)'s keys
//                                and arguments) and ignores its answer: (c) without Floodgate around the call (g)
//   sse-upstream <port>          a Kestrel app answering every request with a 1 KB text/event-stream like an LLM API's:
//                                ten chunks flushed one by one, then a usage event and [DONE] (bench/gateway/cost.sh)
//   token <directory>            a new ES256 key: writes jwks.json there and prints a token for sub "bench"
//   adaptive <seconds> <clients> <workers> <service-ms> <rounds>
//                                the middleware before a queueing upstream, without and with an enforced adaptive
//                                concurrency limit, in alternating bounded rounds (AdaptiveBench; docs/benchmarks.md)
switch (args)
{
    case ["adaptive", var seconds, var clients, var workers, var serviceMs, var rounds]:
    {
        static int N(string text) => int.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
        return await AdaptiveBench.RunAsync(Math.Min(N(seconds), 60), Math.Min(N(clients), 1000), N(workers), N(serviceMs), Math.Min(N(rounds), 10));
    }

    case ["upstream", var port]:
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, int.Parse(port, System.Globalization.CultureInfo.InvariantCulture)));
        var app = builder.Build();
        app.Run(context => context.Response.WriteAsync("{\"upstream\":\"bench\"}"));
        await app.RunAsync();
        return 0;
    }

    case ["sse-upstream", var port]:
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, int.Parse(port, System.Globalization.CultureInfo.InvariantCulture)));
        var app = builder.Build();
        var chunk = System.Text.Encoding.UTF8.GetBytes("data: {\"id\":\"c1\",\"model\":\"small\",\"choices\":[{\"delta\":{\"content\":\"token\"}}],\"usage\":null}\n\n");
        var last = System.Text.Encoding.UTF8.GetBytes("data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":8,\"total_tokens\":20}}\n\ndata: [DONE]\n\n");
        app.Run(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            for (var i = 0; i < 10; i++)
            {
                await context.Response.Body.WriteAsync(chunk);
                await context.Response.Body.FlushAsync();
            }

            await context.Response.Body.WriteAsync(last);
        });
        await app.RunAsync();
        return 0;
    }

    case ["bare", var port, var upstream]:
    {
        var app = BareProxy(port, upstream);
        app.MapReverseProxy();
        await app.RunAsync();
        return 0;
    }

    case ["bare-redis", var port, var upstream, var redis]:
    {
        await using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(redis);
        const string Script = "return redis.call('TIME')[1]";
        var hash = System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(Script));
        await connection.GetDatabase().ScriptEvaluateAsync(Script);
        StackExchange.Redis.RedisKey[] keys = ["bench"];
        await RunWithCallAsync(port, upstream, () => connection.GetDatabase().ScriptEvaluateAsync(hash, keys));
        return 0;
    }

    case ["bare-decide", var port, var upstream, var redis, var scriptFile]:
    {
        await using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(redis);
        var script = await File.ReadAllTextAsync(scriptFile);
        var hash = System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(script));

        // What the gateway sends for case (c) (see decide.lua's header): server time, two groups (the edge's client IP in
        // stage 0, the user's subject in stage 1), each one enforced gcra check of 10M/min: algorithm 0, cost 1, mode 0,
        // interval, tolerance, burst, p4..p7 unused.
        var limit = Floodgate.Limits.Limit.Gcra(new Floodgate.Limits.Rate(10_000_000, 1, Floodgate.Limits.RateUnit.Minute));
        StackExchange.Redis.RedisValue[] check = [0, 1, 0, limit.IntervalMicroseconds, limit.ToleranceMicroseconds, limit.Burst, 0, 0, 0, 0];
        StackExchange.Redis.RedisValue[] arguments = ["", 2, 0, 1, .. check, 1, 1, .. check];
        StackExchange.Redis.RedisKey[] keys = ["bench-decide:{127.0.0.1}:gcra", "bench-decide:{bench}:gcra"];
        var first = await connection.GetDatabase().ScriptEvaluateAsync(script, keys, arguments);
        if (first.Length != 13 || (long)first[2] != 2 || (long)first[3] != 1 || (long)first[8] != 1)
        {
            await Console.Error.WriteLineAsync($"bare-decide: the script did not admit both checks: {first}");
            return 1;
        }

        await RunWithCallAsync(port, upstream, () => connection.GetDatabase().ScriptEvaluateAsync(hash, keys, arguments));
        return 0;
    }

    case ["token", var directory]:
    {
        using var issuer = DemoTokenIssuer.CreateEcdsa("floodgate-bench", "floodgate-bench");
        Directory.CreateDirectory(directory);
        await File.WriteAllTextAsync(Path.Combine(directory, "jwks.json"), issuer.PublicJsonWebKeySet);
        Console.WriteLine(issuer.Issue("bench", "pro", TimeSpan.FromHours(2)));
        return 0;
    }

    default:
        await Console.Error.WriteLineAsync("usage: upstream <port> | bare <port> <upstream-url> | bare-redis <port> <upstream-url> <redis> | bare-decide <port> <upstream-url> <redis> <script> | token <directory>");
        return 2;
}

// A YARP proxy on 127.0.0.1:port forwarding everything to upstream, with no limiting.
static WebApplication BareProxy(string port, string upstream)
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.Logging.ClearProviders();
    builder.WebHost.ConfigureKestrel(k =>
    {
        k.AddServerHeader = false;
        k.Listen(IPAddress.Loopback, int.Parse(port, System.Globalization.CultureInfo.InvariantCulture));
    });
    builder.Services.AddReverseProxy().LoadFromMemory(
        [new RouteConfig { RouteId = "all", ClusterId = "upstream", Match = new RouteMatch { Path = "/{**catch-all}" } }],
        [new ClusterConfig { ClusterId = "upstream", Destinations = new Dictionary<string, DestinationConfig> { ["a"] = new() { Address = upstream } } }]);
    return builder.Build();
}

// A bare proxy that awaits one Redis call per request, ignoring its answer, before forwarding; runs until stopped.
static async Task RunWithCallAsync(string port, string upstream, Func<Task> call)
{
    var app = BareProxy(port, upstream);
    app.Use(async (context, next) =>
    {
        await call().WaitAsync(TimeSpan.FromSeconds(1));
        await next(context);
    });
    app.MapReverseProxy();
    await app.RunAsync();
}

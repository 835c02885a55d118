using System.Net;
using Floodgate.AspNetCore.Identity;
using Yarp.ReverseProxy.Configuration;

// The parts of bench/gateway/run.sh that are not the gateway itself:
//   upstream <port>              a small Kestrel app answering every request with a short body
//   bare <port> <upstream-url>   YARP with no limiting, the baseline (a)
//   bare-redis <port> <upstream-url> <redis>
//                                YARP that makes one trivial Redis script call per request and ignores its answer: the
//                                floor of any limiter that keeps its state in Redis strictly, one round trip a request (e)
//   token <directory>            a new ES256 key: writes jwks.json there and prints a token for sub "bench"
switch (args)
{
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
        var app = BareProxy(port, upstream);
        StackExchange.Redis.RedisKey[] keys = ["bench"];
        app.Use(async (context, next) =>
        {
            await connection.GetDatabase().ScriptEvaluateAsync(hash, keys).WaitAsync(TimeSpan.FromSeconds(1));
            await next(context);
        });
        app.MapReverseProxy();
        await app.RunAsync();
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
        await Console.Error.WriteLineAsync("usage: upstream <port> | bare <port> <upstream-url> | bare-redis <port> <upstream-url> <redis> | token <directory>");
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

// A tour of the engine as a library: three tiers on the embedded store, and a few requests that show each at work.
// Run: dotnet run --project samples/Floodgate.Sample
using System.Globalization;
using System.Net;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;

var plans = new Dictionary<string, Limit>
{
    ["free"] = Limit.Gcra(Rate.Parse("5/min"), burst: 3),
    ["pro"] = Limit.Gcra(Rate.Parse("60/min")),
};
var policy = new RateLimitPolicy(
[
    new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.FixedWindow(Rate.Parse("100/min"))) { Match = new RuleMatch { Paths = [new PathGlob("/api/**")] } },
    new RateLimitRule("per-user", RateLimitTier.User, plans, defaultPlan: "free"),
    new RateLimitRule("create-order", RateLimitTier.User, Limit.Gcra(Rate.Parse("1/min")))
    {
        Match = new RuleMatch { Methods = ["POST"], Route = new RouteTemplate("/api/orders") },
        Key = [KeyPart.Subject, KeyPart.Route],
    },
    new RateLimitRule("search", RateLimitTier.Service, Limit.Concurrency(2)) { Match = new RuleMatch { Route = new RouteTemplate("/api/search/{query}") } },
]);
var engine = new RateLimitEngine(policy, new MemoryStore());

async Task<RateLimitResult> Send(string subject, string method, string path, string? plan = null)
{
    var request = new RequestContext { Subject = subject, Plan = plan, Method = method, Path = path, ClientIp = IPAddress.Parse("203.0.113.7") };
    var result = await engine.EvaluateAsync(request);
    var d = result.Decision;
    var verdict = result.IsAllowed ? "200" : result.IsCapacityRejection ? "503" : "429";
    var detail = d.Rule is null
        ? "no rule applied"
        : string.Create(CultureInfo.InvariantCulture, $"{d.Rule} remaining {d.Remaining}/{d.Quota}{(result.IsAllowed ? string.Empty : $", retry after {Math.Ceiling(d.RetryAfter.TotalSeconds)} s")}");
    Console.WriteLine($"{verdict}  {subject,-6} {method,-4} {path,-22} {detail}");
    return result;
}

Console.WriteLine("alice (free plan: 5/min, burst 3) calls five times:");
for (var i = 0; i < 5; i++)
{
    await Send("alice", "GET", "/api/orders");
}

Console.WriteLine("\nbob has his own budget, and a pro plan:");
await Send("bob", "GET", "/api/orders", "pro");

Console.WriteLine("\nbob may create one order a minute; the rejected second one costs nothing from his per-user 60/min:");
await Send("bob", "POST", "/api/orders", "pro");
await Send("bob", "POST", "/api/orders", "pro");
await Send("bob", "GET", "/api/orders", "pro");

Console.WriteLine("\nsearch admits two at a time; the third waits for a lease to be released:");
var first = await Send("carol", "GET", "/api/search/cats", "pro");
var second = await Send("dave", "GET", "/api/search/dogs", "pro");
await Send("erin", "GET", "/api/search/owls", "pro");
await engine.ReleaseAsync(first);
await engine.ReleaseAsync(second);
await Send("erin", "GET", "/api/search/owls", "pro");

using Floodgate.AspNetCore.Authentication;
using Floodgate.AspNetCore.Features;
using Microsoft.AspNetCore.Http.Features;

var builder = WebApplication.CreateBuilder(args);

// Bearer JWTs validated by Floodgate set HttpContext.User: the app and Floodgate see one principal, validated once.
builder.Services.AddAuthentication(FloodgateJwtDefaults.AuthenticationScheme)
    .AddFloodgateJwt(jwt => builder.Configuration.GetSection("Jwt").Bind(jwt));
builder.Services.AddAuthorization();

// Named policies from appsettings.json ("Floodgate": { "Policies": ... }), checked at start, reloaded on change.
builder.Services.AddFloodgate(builder.Configuration.GetSection("Floodgate"), options =>
    options.OnRejected = async (rejected, cancellationToken) =>
    {
        rejected.HttpContext.Response.ContentType = "text/plain";
        await rejected.HttpContext.Response.WriteAsync(
            $"Slow down: '{rejected.Rule}' admits you again in {rejected.RetryAfter?.TotalSeconds} s.", cancellationToken);
    });

// Optional: one budget shared by every instance of the app, through Redis ("Redis": "host:6379").
if (builder.Configuration["Redis"] is { Length: > 0 } redis)
{
    builder.Services.AddFloodgateRedisStore(o => o.Configuration = redis);
}

var app = builder.Build();
app.UseAuthentication();
app.UseAuthorization();
app.UseFloodgate();

app.MapGet("/healthz", () => "ok").DisableFloodgate();
app.MapGet("/catalog", () => new[] { "tea", "coffee" }).RequireFloodgate("browse");
var orders = app.MapGroup("/orders").RequireAuthorization().RequireFloodgate("orders");
orders.MapGet("/{id:int}", (int id, HttpContext context) =>
{
    var decision = context.Features.GetRequiredFeature<IFloodgateFeature>().Decision;
    return new { id, user = context.User.FindFirst("sub")?.Value, remaining = decision.Remaining };
});
orders.MapPost("/", (HttpContext context) => Results.Created("/orders/1", new { user = context.User.FindFirst("sub")?.Value }));

app.Run();

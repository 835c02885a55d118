using Floodgate.AspNetCore.Middleware;

// The conventional namespace of pipeline methods, so that they are found without a using of ours.
namespace Microsoft.AspNetCore.Builder;

/// <summary>Adds the Floodgate middleware to an application's pipeline.</summary>
public static class FloodgateApplicationBuilderExtensions
{
    /// <summary>
    /// Adds the Floodgate middleware. Call it after <c>UseRouting</c> (so rules see route templates, endpoint rules and
    /// named policies) and after <c>UseAuthentication</c> when the app authenticates requests itself, so that Floodgate
    /// keys on the user authentication established.
    /// </summary>
    /// <param name="app">The application.</param>
    /// <returns><paramref name="app"/>.</returns>
    public static IApplicationBuilder UseFloodgate(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.UseMiddleware<FloodgateMiddleware>();
    }
}

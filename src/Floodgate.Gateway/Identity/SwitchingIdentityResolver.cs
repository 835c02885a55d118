using Floodgate.AspNetCore.Identity;
using Microsoft.AspNetCore.Http;

namespace Floodgate.Gateway.Identity;

/// <summary>The identity resolver in force, swapped on reload; without one, every request is anonymous.</summary>
internal sealed class SwitchingIdentityResolver : IIdentityResolver
{
    private IIdentityResolver? _current;

    public IIdentityResolver? Current
    {
        get => Volatile.Read(ref _current);
        set => Volatile.Write(ref _current, value);
    }

    public ValueTask<IdentityResult> ResolveAsync(HttpContext context, CancellationToken cancellationToken) =>
        Current is { } resolver ? resolver.ResolveAsync(context, cancellationToken) : new ValueTask<IdentityResult>(IdentityResult.Anonymous);

    public bool TryResolveCached(HttpContext context, out IdentityResult identity)
    {
        if (Current is { } resolver)
        {
            return resolver.TryResolveCached(context, out identity);
        }

        identity = IdentityResult.Anonymous;
        return true;
    }
}

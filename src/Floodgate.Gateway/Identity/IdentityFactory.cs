using Floodgate.AspNetCore.Identity;
using Floodgate.Gateway.Policy;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.Gateway.Identity;

/// <summary>Builds the <see cref="JwtIdentityResolver"/> of a policy's <c>identity.jwt</c> section.</summary>
internal static class IdentityFactory
{
    /// <summary>
    /// How long a start or a reload waits for the first fetch of a new remote key source's keys: long enough for a
    /// provider that answers, short enough that a dead one does not hold a reload (which blocks the next one) for the
    /// metadata client's 10 s timeout.
    /// </summary>
    public static readonly TimeSpan KeyFetchWait = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Builds the resolver of <paramref name="options"/>; it takes over <paramref name="previous"/>'s remote key source,
    /// its keys and refresh schedule, when the options name the same one.
    /// </summary>
    /// <exception cref="PolicyException">The resolver refuses the options.</exception>
    public static JwtIdentityResolver Create(JwtIdentityOptions options, TimeProvider time, ILoggerFactory loggerFactory, JwtIdentityResolver? previous = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        try
        {
            return JwtIdentityResolver.Create(options, previous, time, loggerFactory.CreateLogger<JwtIdentityResolver>());
        }
        catch (OptionsValidationException e)
        {
            throw new PolicyException([.. e.Failures.Select(f => new PolicyError("policy", 0, 0, "identity.jwt", f))]);
        }
    }

    /// <summary>
    /// Waits up to <see cref="KeyFetchWait"/> for the first fetch of <paramref name="resolver"/>'s remote keys; none when
    /// it has no remote source, or shares <paramref name="previous"/>'s.
    /// </summary>
    /// <returns>Why the keys cannot be had, naming the URL; <see langword="null"/> when they are in hand (or not needed).</returns>
    public static async Task<string?> FetchKeysAsync(JwtIdentityResolver resolver, JwtIdentityResolver? previous, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(resolver);
        if (resolver.SharesKeySourceWith(previous))
        {
            return null;
        }

        // On the system clock, whatever clock the limits run on: this bounds a wait on the network.
        using var wait = new CancellationTokenSource(KeyFetchWait, TimeProvider.System);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(wait.Token, cancellationToken);
        try
        {
            var status = await resolver.FetchKeysAsync(linked.Token).ConfigureAwait(false);
            return status is null || status.HasKeys
                ? null
                : $"the signing keys could not be fetched from {status.Address}: {status.Error ?? "no answer."}";
        }
        catch (OperationCanceledException) when (wait.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return $"the signing keys could not be fetched from {resolver.KeyStatus?.Address} within {KeyFetchWait.TotalSeconds:0} s.";
        }
    }
}

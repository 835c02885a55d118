using System.Buffers;
using Floodgate.Adaptive;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Adaptive;

/// <summary>
/// A request's places under the adaptive concurrency limits of the rules that match it (docs/adaptive-concurrency.md):
/// taken just before the rest of the pipeline runs, and given back when it ends with the request's latency as a sample.
/// The usual single match is held inline; more are held in a pooled array, so admission allocates nothing.
/// </summary>
internal struct AdaptiveAdmission
{
    private AdaptiveConcurrencyLimiter? _first;
    private AdaptiveTicket _firstTicket;
    private (AdaptiveConcurrencyLimiter Limiter, AdaptiveTicket Ticket)[]? _more;
    private int _moreCount;

    /// <summary>
    /// Enters every limit whose rule matches <paramref name="request"/>; when one refuses, leaves the others and names it.
    /// </summary>
    /// <returns>The limit that refused the request; <see langword="null"/> when every one admitted it.</returns>
    public AdaptiveConcurrencyLimiter? Enter(ReadOnlySpan<AdaptiveEntry> entries, IRequestContext request)
    {
        foreach (var entry in entries)
        {
            if (!entry.Rule.Match.IsMatch(request))
            {
                continue;
            }

            var limiter = entry.Limiter;
            if (!limiter.TryAcquire(out var ticket))
            {
                Exit(AdaptiveOutcome.Ignored);
                return limiter;
            }

            if (_first is null)
            {
                (_first, _firstTicket) = (limiter, ticket);
                continue;
            }

            _more ??= ArrayPool<(AdaptiveConcurrencyLimiter, AdaptiveTicket)>.Shared.Rent(entries.Length);
            _more[_moreCount++] = (limiter, ticket);
        }

        return null;
    }

    /// <summary>Leaves every limit entered, each taking the request's latency as a sample unless it is ignored.</summary>
    public void Exit(AdaptiveOutcome outcome)
    {
        _first?.Complete(_firstTicket, outcome);
        _first = null;
        if (_more is { } more)
        {
            for (var i = 0; i < _moreCount; i++)
            {
                more[i].Limiter.Complete(more[i].Ticket, outcome);
            }

            ArrayPool<(AdaptiveConcurrencyLimiter, AdaptiveTicket)>.Shared.Return(more, clearArray: true);
            _more = null;
            _moreCount = 0;
        }
    }

    /// <summary>
    /// How a request ended, as the upstream's health goes: a client gone away tells nothing; an exception or a 5xx
    /// (a proxy's 502 and 504 included) is an error.
    /// </summary>
    public static AdaptiveOutcome OutcomeOf(HttpContext context, bool served) =>
        context.RequestAborted.IsCancellationRequested ? AdaptiveOutcome.Ignored
        : !served || context.Response.StatusCode >= StatusCodes.Status500InternalServerError ? AdaptiveOutcome.Error
        : AdaptiveOutcome.Success;
}

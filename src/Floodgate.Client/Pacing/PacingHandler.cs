using System.Net;
using Floodgate.Client.Fields;

namespace Floodgate.Client.Pacing;

/// <summary>
/// The pacing handler: every request waits for its turn with the pacer of its route, its answer's limit fields update
/// that pacer, and a 429 or 503 stops the route's other requests until Retry-After and is retried (idempotent requests
/// only, unless told), with full jitter, within the deadline.
/// </summary>
/// <remarks>
/// A request that needs no wait, to a handler below that answers synchronously, costs one lock and one parse of the
/// fields, and allocates nothing; an asynchronous answer costs the state machine of one await.
/// </remarks>
internal sealed class PacingHandler : DelegatingHandler
{
    private readonly PacedClient _client;
    private readonly FloodgatePacingOptions _options;
    private readonly PacingMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly Func<double> _uniform;

    public PacingHandler(PacedClient client, FloodgatePacingOptions options, PacingMetrics metrics, Func<double>? uniform = null)
    {
        _client = client;
        _options = options;
        _metrics = metrics;
        _time = client.Time;
        _uniform = uniform ?? Random.Shared.NextDouble;
    }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var started = _time.GetTimestamp();
        var route = _client.RouteFor(request.RequestUri, AuthorizationOf(request));
        var pacer = route.Current;
        var admission = pacer.Enter();
        if (!admission.IsNow || admission.Ticket.Hold == PacerHold.Moved)
        {
            return SendPacedAsync(request, route, pacer, admission, null, started, cancellationToken);
        }

        Task<HttpResponseMessage> sent;
        try
        {
            sent = base.SendAsync(request, cancellationToken);
        }
        catch
        {
            pacer.Abandon(admission.Ticket);
            throw;
        }

        if (sent.IsCompletedSuccessfully && !IsRejection(sent.Result))
        {
            Settle(route, pacer, admission.Ticket, sent.Result, rejected: false);
            return sent;
        }

        return SendPacedAsync(request, route, pacer, admission, sent, started, cancellationToken);
    }

    private static bool IsRejection(HttpResponseMessage response) =>
        response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable;

    private static string? AuthorizationOf(HttpRequestMessage request) =>
        request.Headers.NonValidated.TryGetValues("Authorization", out var values) ? values.ToString() : null;

    /// <summary>The slow path: waits for a turn, sends, and retries rejections.</summary>
    private async Task<HttpResponseMessage> SendPacedAsync(HttpRequestMessage request, Route route, Pacer pacer, Admission admission, Task<HttpResponseMessage>? sent, long started, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var ticket = admission.Ticket;
            if (sent is null)
            {
                (pacer, ticket) = await WaitForTurnAsync(route, pacer, admission, started, cancellationToken).ConfigureAwait(false);
                try
                {
                    sent = base.SendAsync(request, cancellationToken);
                }
                catch
                {
                    pacer.Abandon(ticket);
                    throw;
                }
            }

            HttpResponseMessage response;
            try
            {
                response = await sent.ConfigureAwait(false);
            }
            catch
            {
                pacer.Abandon(ticket);
                throw;
            }

            sent = null;
            if (!IsRejection(response))
            {
                Settle(route, pacer, ticket, response, rejected: false);
                return response;
            }

            var serverDelay = Settle(route, pacer, ticket, response, rejected: true);
            var delay = RetryPolicy.Delay(serverDelay, attempt, _options, _uniform());

            // Everyone on the route stops until the server's time (or this backoff): no stampede of the others.
            route.Current.Block(serverDelay ?? delay ?? _options.MaxRetryDelay);
            var retry = delay is { } wait && attempt < _options.MaxRetries && RetryPolicy.MayRetry(request, _options) && Fits(started, wait);
            _metrics.Rejected(_client.Name, (int)response.StatusCode, retry);
            if (!retry)
            {
                return response;
            }

            response.Dispose();
            var before = _time.GetTimestamp();
            await Task.Delay(delay!.Value, _time, cancellationToken).ConfigureAwait(false);
            _metrics.Waited(_client.Name, "retry", _time.GetElapsedTime(before));
            pacer = route.Current;
            admission = pacer.Enter();
        }
    }

    /// <summary>Waits until the route's pacer lets the request go; returns the pacer and the ticket it went with.</summary>
    private async Task<(Pacer Pacer, Ticket Ticket)> WaitForTurnAsync(Route route, Pacer pacer, Admission admission, long started, CancellationToken cancellationToken)
    {
        while (true)
        {
            var (ticket, moved) = await WaitInQueueAsync(route, pacer, admission, started, cancellationToken).ConfigureAwait(false);
            if (!moved)
            {
                return (pacer, ticket);
            }

            pacer = route.Current;
            admission = pacer.Enter();
        }
    }

    private async Task<(Ticket Ticket, bool Moved)> WaitInQueueAsync(Route route, Pacer pacer, Admission admission, long started, CancellationToken cancellationToken)
    {
        if (admission.Waiter is not { } waiter)
        {
            return (admission.Ticket, admission.Ticket.Hold == PacerHold.Moved);
        }

        var before = _time.GetTimestamp();
        var expected = _time.GetElapsedTime(before, admission.Estimate);
        if (!Fits(started, expected))
        {
            // Not worth queueing: the turn would come after the deadline.
            if (!waiter.TrySetCanceled(CancellationToken.None) && waiter.Task.IsCompletedSuccessfully)
            {
                pacer.Abandon(waiter.Task.Result);
            }

            throw PastDeadline(route, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"its turn, in about {expected.TotalSeconds:0.###} s,"));
        }

        Ticket ticket;
        try
        {
            ticket = await waiter.Task.WaitAsync(Left(started), _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            // A turn given just as the wait ended is the caller's to give back.
            if (!waiter.TrySetCanceled(CancellationToken.None) && waiter.Task.IsCompletedSuccessfully)
            {
                pacer.Abandon(waiter.Task.Result);
            }

            if (e is TimeoutException)
            {
                throw PastDeadline(route, "its turn");
            }

            throw;
        }

        if (ticket.Hold == PacerHold.Moved)
        {
            return (ticket, true);
        }

        _metrics.Waited(_client.Name, ticket.Hold switch { PacerHold.Probe => "probe", PacerHold.Permit => "permit", _ => "pace" }, _time.GetElapsedTime(before));
        return (ticket, false);
    }

    /// <summary>Reads the answer's fields into the pacer it names; for a rejection, when the server says to retry.</summary>
    private TimeSpan? Settle(Route route, Pacer pacer, in Ticket ticket, HttpResponseMessage response, bool rejected)
    {
        var now = _time.GetUtcNow();
        var signal = LimitSignal.Read(response.Headers, now);
        var target = route.Follow(signal.Partition);
        if (ReferenceEquals(target, pacer))
        {
            pacer.Observe(ticket, signal);
        }
        else
        {
            pacer.Abandon(ticket);
            target.Learn(signal);
        }

        return rejected ? RetryPolicy.ServerDelay(response, signal, now) : null;
    }

    private bool Fits(long started, TimeSpan wait) =>
        _options.Deadline == Timeout.InfiniteTimeSpan || _time.GetElapsedTime(started) + wait <= _options.Deadline;

    private TimeSpan Left(long started)
    {
        if (_options.Deadline == Timeout.InfiniteTimeSpan)
        {
            return Timeout.InfiniteTimeSpan;
        }

        var left = _options.Deadline - _time.GetElapsedTime(started);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    private HttpRequestException PastDeadline(Route route, string what) =>
        new(HttpRequestError.Unknown, $"Floodgate pacing: {what} would come after the deadline of {_options.Deadline.TotalSeconds:0.###} s for {route.Scheme}://{route.Host}:{route.Port}; the request was not sent.", null, HttpStatusCode.TooManyRequests);
}

using Floodgate.Costs;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Engine;

// Reservations settled once a request's real cost is known.
public sealed partial class RateLimitEngine
{
    /// <summary>
    /// Settles the cost reservations <paramref name="result"/> holds (rules with <see cref="RateLimitRule.Costs"/>) once
    /// its request has ended: each rule charges its measure of <paramref name="report"/>, and its key is corrected by the
    /// difference from what it reserved (<see cref="IRateLimitStore.SettleAsync"/>): a refund when the request cost less,
    /// an extra charge when it cost more, which may overdraw the key.
    /// </summary>
    /// <remarks>
    /// <para>
    /// What a rule charges: the usage reported, whatever the completion (a stream cut after its usage was sent still
    /// reports it); otherwise, for a <see cref="RequestCompletion.Completed"/> request, its
    /// <see cref="RuleCost.Fallback"/> (the reservation when it has none); for a <see cref="RequestCompletion.Failed"/>
    /// one, nothing or the fallback as its <see cref="RuleCost.OnFailure"/> says; for one
    /// <see cref="RequestCompletion.NotServed"/>, nothing.
    /// </para>
    /// <para>
    /// A result is settled once: a second call does nothing. Its settlements go to the store together (one round trip
    /// each on a remote store, pipelined), never throw for an outage (a failed settlement leaves the reservation as the
    /// cost, and is counted on <c>floodgate.cost.settle_failures</c>), and are counted on <c>floodgate.cost.charged</c>,
    /// <c>.refunded</c> and <c>.overrun</c>, by rule and unit. A result without reservations costs nothing.
    /// </para>
    /// </remarks>
    /// <param name="result">The request's result (after <see cref="RateLimitResult.Combine"/>).</param>
    /// <param name="report">What the request used, if anything was reported.</param>
    /// <param name="completion">How the request ended.</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store; usually none, as the request has ended.</param>
    public ValueTask SettleAsync(RateLimitResult result, CostReport? report, RequestCompletion completion, CancellationToken cancellationToken = default)
    {
        if (result.Costs is not { } costs || !costs.TrySettle())
        {
            return default;
        }

        return SettleAllAsync(costs, report, completion, cancellationToken);
    }

    private async ValueTask SettleAllAsync(CostBag costs, CostReport? report, RequestCompletion completion, CancellationToken cancellationToken)
    {
        if (costs.Count == 1)
        {
            await SettleOneAsync(costs[0].Check, costs[0].Rule, report, completion, cancellationToken).ConfigureAwait(false);
            return;
        }

        var pending = new Task[costs.Count];
        for (var i = 0; i < costs.Count; i++)
        {
            pending[i] = SettleOneAsync(costs[i].Check, costs[i].Rule, report, completion, cancellationToken).AsTask();
        }

        await Task.WhenAll(pending).ConfigureAwait(false);
    }

    private async ValueTask SettleOneAsync(RateLimitCheck check, RateLimitRule rule, CostReport? report, RequestCompletion completion, CancellationToken cancellationToken)
    {
        var cost = rule.Costs!;
        var reserved = check.Cost;
        var unknownModel = false;
        var charged = completion == RequestCompletion.NotServed ? 0
            : report is not null && cost.Charge(report, out unknownModel) is { } reported ? reported
            : completion == RequestCompletion.Completed || cost.OnFailure == CostOnFailure.Charge ? cost.Fallback ?? reserved
            : 0;
        if (unknownModel)
        {
            _costMetrics.UnknownModel(rule.Name);
        }

        var delta = charged - reserved;
        var settled = delta == 0 ? CostSettlement.Settled : await SettleQuietlyAsync(check, delta, cancellationToken).ConfigureAwait(false);
        if (settled == CostSettlement.Settled)
        {
            _costMetrics.Settled(rule.Name, cost.Unit, reserved, charged);
        }
        else
        {
            // The reservation stands as the cost.
            _costMetrics.Failed(rule.Name);
            _costMetrics.Settled(rule.Name, cost.Unit, reserved, reserved);
        }
    }

    private async ValueTask<CostSettlement> SettleQuietlyAsync(RateLimitCheck check, long delta, CancellationToken cancellationToken)
    {
        try
        {
            return await _store.SettleAsync(check, delta, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogSettleFailed(_logger, e);
            return CostSettlement.Failed;
        }
    }

    /// <summary>Refunds the reservations of a rejected request: it was never served.</summary>
    private ValueTask Refund(CostBag? costs) =>
        costs is null || !costs.TrySettle() ? default : SettleAllAsync(costs, null, RequestCompletion.NotServed, CancellationToken.None);

    private void CountReserved(RateLimitRule rule, long units) => _costMetrics.Reserved(rule.Name, rule.Costs!.Unit, units);

    [Microsoft.Extensions.Logging.LoggerMessage(20, Microsoft.Extensions.Logging.LogLevel.Warning, "A cost settlement failed; the reservation stands as the cost")]
    private static partial void LogSettleFailed(Microsoft.Extensions.Logging.ILogger logger, Exception exception);
}

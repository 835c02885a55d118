using System.Net;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>
/// A concurrency rule in the middleware: an admitted request holds its permit while the app serves it and gives it back
/// when it ends, however it ends (answered, aborted by the client, or failed in the app). The store's clock never moves,
/// so a lease never times out here: only its release frees the permit. The rule is global, one budget for every route.
/// </summary>
public sealed class ConcurrencyLeaseTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_finished_an_aborted_and_a_failed_request_each_give_their_permit_back()
    {
        var store = new ReleaseCountingStore(new MemoryStore(null, new FakeTimeProvider(DateTimeOffset.UtcNow)));
        var slow = new SlowEndpoint();
        await using var app = await TestApp.StartAsync(
            o => o.Policy = new RateLimitPolicy([new RateLimitRule("in-flight", RateLimitTier.Global, Limit.Concurrency(1, TimeSpan.FromMinutes(10)))]),
            a =>
            {
                a.MapGet("/slow", (Delegate)slow.HandleAsync);
                a.MapGet("/fast", () => "fast");
                a.MapGet("/fail", string () => throw new InvalidOperationException("the app failed"));
            },
            store: store);

        // A request the app is still serving holds the only permit.
        var first = app.Client.GetAsync(new Uri("/slow", UriKind.Relative));
        await slow.Entered.WaitAsync(Wait);
        using (var refused = await app.Client.GetAsync(new Uri("/fast", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Contains("'in-flight' is over its limit", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Answered: the permit comes back once the response is done.
        slow.Finish();
        using (var answered = await first.WaitAsync(Wait))
        {
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        }

        await store.WaitForReleasesAsync(1, Wait);
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(app, "/fast"));
        await store.WaitForReleasesAsync(2, Wait);

        // Aborted by the client while the app serves it: the permit comes back too.
        slow.Arm();
        using (var abort = new CancellationTokenSource())
        {
            var second = app.Client.GetAsync(new Uri("/slow", UriKind.Relative), abort.Token);
            await slow.Entered.WaitAsync(Wait);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, await StatusAsync(app, "/fast"));
            await abort.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => second);
        }

        await store.WaitForReleasesAsync(3, Wait);
        Assert.True(slow.SawAbort, "the app's request was not aborted");
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(app, "/fast"));
        await store.WaitForReleasesAsync(4, Wait);

        // Failed in the app: a 500, and the permit back.
        Assert.Equal(HttpStatusCode.InternalServerError, await StatusAsync(app, "/fail"));
        await store.WaitForReleasesAsync(5, Wait);
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(app, "/fast"));
        await store.WaitForReleasesAsync(6, Wait);

        // Each admitted request released its one lease once; the refused ones held none.
        Assert.Equal(6, store.Releases);
        Assert.Equal(6, store.Granted);
    }

    private static async Task<HttpStatusCode> StatusAsync(TestApp app, string path)
    {
        using var response = await app.Client.GetAsync(new Uri(path, UriKind.Relative));
        return response.StatusCode;
    }

    /// <summary>
    /// An endpoint that signals when a request reaches it and answers when told, or fails when the request is aborted;
    /// one request at a time, armed anew by <see cref="Arm"/>.
    /// </summary>
    private sealed class SlowEndpoint
    {
        private TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TaskCompletionSource _finish = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Entered => _entered.Task;

        public bool SawAbort { get; private set; }

        public void Arm()
        {
            _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
            _finish = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        public void Finish() => _finish.TrySetResult();

        public async Task<string> HandleAsync(HttpContext context)
        {
            var finish = _finish.Task;
            _entered.TrySetResult();
            try
            {
                await finish.WaitAsync(context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                SawAbort = true;
                throw;
            }

            return "slow";
        }
    }

    /// <summary>The in-memory store, counting the leases it grants and the releases it is sent.</summary>
    private sealed class ReleaseCountingStore(MemoryStore inner) : IRateLimitStore
    {
        private readonly SemaphoreSlim _released = new(0);
        private int _releases;
        private int _granted;
        private int _awaited;

        public int Releases => Volatile.Read(ref _releases);

        public int Granted => Volatile.Read(ref _granted);

        public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
        {
            TryDecide(checks.Span, outcomes.Span);
            return default;
        }

        public bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes)
        {
            inner.Decide(checks, outcomes);
            for (var i = 0; i < checks.Length; i++)
            {
                if (outcomes[i].LeaseId != 0)
                {
                    Interlocked.Increment(ref _granted);
                }
            }

            return true;
        }

        public async ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default)
        {
            await inner.ReleaseAsync(check, leaseId, cancellationToken);
            Interlocked.Increment(ref _releases);
            _released.Release();
        }

        public ValueTask<LeaseRenewal> RenewAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
            inner.RenewAsync(check, leaseId, cancellationToken);

        /// <summary>Waits until <paramref name="total"/> releases have been sent in all.</summary>
        public async Task WaitForReleasesAsync(int total, TimeSpan timeout)
        {
            while (_awaited < total)
            {
                Assert.True(await _released.WaitAsync(timeout), $"release {_awaited + 1} never came ({Releases} of {Granted} leases released)");
                _awaited++;
            }
        }
    }
}

using System.Globalization;

namespace Floodgate.Limits;

/// <summary>
/// One limit: a rate, an algorithm and the parameters that algorithm needs, precomputed once so a decision only
/// adds and compares.
/// </summary>
/// <remarks>
/// All time values are microseconds since the Unix epoch, the unit every store counts in. Instances are
/// immutable and shared by every decision that uses them. The microsecond members (<see cref="PeriodMicroseconds"/>,
/// <see cref="IntervalMicroseconds"/>, <see cref="ToleranceMicroseconds"/>, <see cref="LeaseTimeoutMicroseconds"/>,
/// <see cref="CalendarPeriod"/>) are for store authors, who encode a limit with them (see
/// <see cref="Algorithms.LimitMath"/>); an application describes a limit with its <see cref="Rate"/> and algorithm.
/// </remarks>
public sealed class Limit
{
    /// <summary>The longest lease a concurrency limit may hold before it is reclaimed, by default.</summary>
    public static readonly TimeSpan DefaultLeaseTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The largest amount, burst or number of permits: 2^53 − 1, the largest integer the Redis script's Lua doubles hold
    /// exactly.
    /// </summary>
    public const long MaxAmount = (1L << 53) - 1;

    /// <summary>
    /// The longest span a limit adds to now, in microseconds: a period, twice a sliding window's period, a gcra burst
    /// tolerance or a lease timeout. 2^52 µs, about 142 years, so now plus any of them stays below 2^53 until 2112.
    /// </summary>
    public const long MaxSpanMicroseconds = 1L << 52;

    /// <summary>
    /// The largest amount of a <see cref="LimitAlgorithm.SlidingLog"/> limit: 1,000. The log keeps one timestamp per unit
    /// admitted within the period, 8 bytes each in memory (8 KB a key at most) and about 20 in Redis, and the
    /// decision reads it in O(log n); a larger amount is counted well by <see cref="LimitAlgorithm.SlidingWindow"/> in
    /// three numbers.
    /// </summary>
    public const long MaxSlidingLogAmount = 1_000;

    private readonly QuotaCalendar? _calendar;

    private Limit(LimitAlgorithm algorithm, Rate rate, long burst, TimeSpan leaseTimeout, QuotaCalendar? calendar, TimeSpan maxDelay = default)
    {
        MaxDelay = maxDelay;
        Algorithm = algorithm;
        Rate = rate;
        Burst = burst;
        LeaseTimeout = leaseTimeout;
        _calendar = calendar;
        PeriodMicroseconds = rate.PeriodMicroseconds;
        if (algorithm is LimitAlgorithm.Gcra or LimitAlgorithm.LeakyBucket)
        {
            // The interval is rounded up to a whole microsecond, so a limit never over-admits; the rounding costs up to
            // a microsecond per request, a share of the rate that grows as the interval shrinks, so Gcra refuses rates
            // for which it exceeds 1%.
            IntervalMicroseconds = GcraInterval(rate);
            ToleranceMicroseconds = checked(IntervalMicroseconds * burst);
        }
    }

    /// <summary>The algorithm.</summary>
    public LimitAlgorithm Algorithm { get; }

    /// <summary>The rate: amount per period. For <see cref="LimitAlgorithm.Concurrency"/>, the amount is the number of permits.</summary>
    public Rate Rate { get; }

    /// <summary>The amount per period, or the concurrency permits.</summary>
    public long Amount => Rate.Amount;

    /// <summary>For <see cref="LimitAlgorithm.Gcra"/> and <see cref="LimitAlgorithm.LeakyBucket"/>, how much may be spent at once; otherwise equal to the amount.</summary>
    public long Burst { get; }

    /// <summary>
    /// For a <see cref="LimitAlgorithm.LeakyBucket"/> used as a queue (<see cref="LeakyBucketQueue"/>), the longest a
    /// request waits for its slot; <see cref="TimeSpan.Zero"/> for a meter and every other algorithm.
    /// </summary>
    public TimeSpan MaxDelay { get; }

    /// <summary>For <see cref="LimitAlgorithm.Concurrency"/>, how long a lease lives unless released first.</summary>
    public TimeSpan LeaseTimeout { get; }

    /// <summary>
    /// For a <see cref="LimitAlgorithm.Concurrency"/> limit that queues (<see cref="WithQueue"/>), how many requests may
    /// wait for a permit per key; 0, the default, rejects at once.
    /// </summary>
    public int QueueSize { get; private init; }

    /// <summary>For a concurrency limit that queues, the longest a request waits for a permit; zero otherwise.</summary>
    public TimeSpan QueueTimeout { get; private init; }

    /// <summary>For a concurrency limit that queues, which waiter gets the next permit.</summary>
    public QueueOrder QueueOrder { get; private init; }

    /// <summary>The longest queue a concurrency limit may have, per key: 100,000.</summary>
    public const int MaxQueueSize = 100_000;

    /// <summary>The longest a request may wait in a concurrency queue: 10 minutes.</summary>
    public static readonly TimeSpan MaxQueueTimeout = TimeSpan.FromMinutes(10);

    /// <summary>For <see cref="LimitAlgorithm.Quota"/>, the calendar, or <see langword="null"/> when the quota is rolling.</summary>
    public QuotaCalendar? Calendar => _calendar;

    /// <summary>The fixed length of one period in microseconds.</summary>
    public long PeriodMicroseconds { get; }

    /// <summary>
    /// For <see cref="LimitAlgorithm.Gcra"/>, the emission interval: the period divided by the amount, rounded up to a whole
    /// microsecond, which <see cref="Gcra"/> ensures costs at most 1% of the rate.
    /// </summary>
    public long IntervalMicroseconds { get; }

    /// <summary>For <see cref="LimitAlgorithm.Gcra"/>, the burst tolerance: the interval times the burst.</summary>
    public long ToleranceMicroseconds { get; }

    /// <summary>The lease timeout in microseconds.</summary>
    public long LeaseTimeoutMicroseconds => LeaseTimeout.Ticks / TimeSpan.TicksPerMicrosecond;

    /// <summary>
    /// For a shared (remote) store, how much of the budget each replica may take at once and then spend locally
    /// (leased mode); 0, the default, decides every request in the store (strict mode). The in-memory store ignores it.
    /// </summary>
    /// <remarks>
    /// Leased mode trades a bounded overshoot, at most the number of replicas times the slice, for far fewer round
    /// trips on hot keys such as a global limit.
    /// </remarks>
    public long LeasedSlice { get; private init; }

    /// <summary>A token bucket: <paramref name="rate"/> refills, <paramref name="burst"/> (default: the amount) may be spent at once.</summary>
    /// <remarks>
    /// Gcra counts time in whole microseconds: the emission interval, the period divided by the amount, is rounded up. A
    /// rate whose rounding would cost more than 1% of it is refused (600k/s would become 500k/s); fixed_window and
    /// sliding_window count such rates exactly.
    /// </remarks>
    /// <exception cref="ArgumentException">
    /// The rate is uninitialized, finer than one request per microsecond, or loses more than 1% to the rounding of its
    /// interval; or the burst is not positive.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException">
    /// A value is beyond <see cref="MaxAmount"/>, or the burst tolerance (interval × burst) beyond <see cref="MaxSpanMicroseconds"/>.
    /// </exception>
    public static Limit Gcra(Rate rate, long? burst = null) => Bucket(LimitAlgorithm.Gcra, "gcra", rate, burst);

    /// <summary>
    /// A leaky bucket as a meter: a bucket of <paramref name="burst"/> units (default: the amount) that leaks at
    /// <paramref name="rate"/>; a cost that does not fit is rejected. It admits exactly what <see cref="Gcra"/> admits
    /// for the same rate and burst, under keys of its own; its checks and refusals are gcra's.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="Gcra"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">As <see cref="Gcra"/>.</exception>
    public static Limit LeakyBucket(Rate rate, long? burst = null) => Bucket(LimitAlgorithm.LeakyBucket, "leaky_bucket", rate, burst);

    /// <summary>
    /// A leaky bucket as a queue, nginx's <c>limit_req</c> without <c>nodelay</c>: requests leave at the rate, one emission
    /// interval apart; one that does not fit now is given the next free slot and waits for it, as long as its slot ends
    /// within <paramref name="maxDelay"/> of now (so at most <c>maxDelay × rate</c> units wait); beyond, it is rejected
    /// with the retry-after at which it would fit. The slot is decided in the store, so replicas sharing a store never
    /// hand out the same one.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="Gcra"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="maxDelay"/> holds no slot (it is shorter than one emission interval) or is beyond
    /// <see cref="MaxSpanMicroseconds"/>.
    /// </exception>
    public static Limit LeakyBucketQueue(Rate rate, TimeSpan maxDelay)
    {
        var meter = Bucket(LimitAlgorithm.LeakyBucket, "leaky_bucket", rate, 1);
        var delay = maxDelay.Ticks / TimeSpan.TicksPerMicrosecond;
        if (delay < meter.IntervalMicroseconds || delay > MaxSpanMicroseconds)
        {
            throw new ArgumentOutOfRangeException(
                nameof(maxDelay),
                maxDelay,
                string.Create(CultureInfo.InvariantCulture, $"The max_delay of a leaky_bucket queue at {rate} must hold at least one request, {TimeSpan.FromMicroseconds(meter.IntervalMicroseconds).TotalMilliseconds:0.###} ms, and at most 2^52 µs."));
        }

        return new Limit(LimitAlgorithm.LeakyBucket, rate, delay / meter.IntervalMicroseconds, TimeSpan.Zero, null, maxDelay);
    }

    private static Limit Bucket(LimitAlgorithm algorithm, string name, Rate rate, long? burst)
    {
        ValidateRate(rate, 1);
        var b = burst ?? rate.Amount;
        if (b <= 0)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"The burst of {rate} must be at least 1, not {b}."), nameof(burst));
        }

        if (rate.Amount > rate.PeriodMicroseconds)
        {
            throw new ArgumentException($"The rate {rate} is above one per microsecond, the finest {name} counts; use fixed_window or sliding_window.", nameof(rate));
        }

        var interval = GcraInterval(rate);
        var rounded = interval * rate.Amount;
        if (100 * (rounded - rate.PeriodMicroseconds) > rounded)
        {
            var effective = (double)rate.PeriodMicroseconds / interval;
            throw new ArgumentException(
                string.Create(CultureInfo.InvariantCulture, $"The rate {rate} is too fine for {name}, which counts whole microseconds: its interval of {(double)rate.PeriodMicroseconds / rate.Amount:0.###} µs rounds up to {interval} µs, admitting only {new Rate(Math.Max(1, (long)effective), rate.UnitCount, rate.Unit)} ({(1 - (effective / rate.Amount)) * 100:0.0}% less); use fixed_window or sliding_window, which count it exactly."),
                nameof(rate));
        }

        if (b > MaxAmount || b > MaxSpanMicroseconds / interval)
        {
            throw new ArgumentOutOfRangeException(
                nameof(burst),
                b,
                string.Create(CultureInfo.InvariantCulture, $"The burst of {rate} is too large: the burst tolerance, {interval} µs a request times the burst, must stay within 2^52 µs (about 142 years), so at most {Math.Min(MaxAmount, MaxSpanMicroseconds / interval)}."));
        }

        return new Limit(algorithm, rate, b, TimeSpan.Zero, null);
    }

    /// <summary>
    /// A gcra limit built without <see cref="Gcra"/>'s checks, for a store's in-process share of a limit already accepted
    /// (decided in C#, never in Lua's doubles), which must never fail a decision during an outage.
    /// </summary>
    internal static Limit UncheckedGcra(Rate rate, long burst, LimitAlgorithm algorithm = LimitAlgorithm.Gcra) => new(algorithm, rate, Math.Max(1, burst), TimeSpan.Zero, null);

    /// <summary>A counter per window of the rate's period, aligned to the Unix epoch.</summary>
    /// <exception cref="ArgumentException">The rate is uninitialized.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The amount is beyond <see cref="MaxAmount"/> or the period beyond <see cref="MaxSpanMicroseconds"/>.</exception>
    public static Limit FixedWindow(Rate rate)
    {
        ValidateRate(rate, 1);
        return new(LimitAlgorithm.FixedWindow, rate, rate.Amount, TimeSpan.Zero, null);
    }

    /// <summary>The weighted two-window counter over the rate's period.</summary>
    /// <exception cref="ArgumentException">The rate is uninitialized.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The amount is beyond <see cref="MaxAmount"/> or twice the period beyond <see cref="MaxSpanMicroseconds"/>.</exception>
    public static Limit SlidingWindow(Rate rate)
    {
        ValidateRate(rate, 2);
        return new(LimitAlgorithm.SlidingWindow, rate, rate.Amount, TimeSpan.Zero, null);
    }

    /// <summary>
    /// The sliding log: at most the amount in any window of the rate's period, exactly, keeping one timestamp per unit
    /// admitted. The amount is at most <see cref="MaxSlidingLogAmount"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The rate is uninitialized.</exception>
    /// <exception cref="ArgumentOutOfRangeException">
    /// The amount is beyond <see cref="MaxSlidingLogAmount"/>, or the period beyond <see cref="MaxSpanMicroseconds"/>.
    /// </exception>
    public static Limit SlidingLog(Rate rate)
    {
        ValidateRate(rate, 1);
        if (rate.Amount > MaxSlidingLogAmount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(rate),
                rate,
                string.Create(CultureInfo.InvariantCulture, $"The amount of {rate} is beyond {MaxSlidingLogAmount}, the most a sliding_log keeps: it holds one timestamp per request admitted in the period. Use sliding_window, which counts any amount in three numbers."));
        }

        return new(LimitAlgorithm.SlidingLog, rate, rate.Amount, TimeSpan.Zero, null);
    }

    /// <summary>
    /// A quota. With a <paramref name="calendar"/>, periods follow its calendar; without, a period starts at the first
    /// request and lasts the rate's period (rolling).
    /// </summary>
    /// <exception cref="ArgumentException">The rate is uninitialized, or a calendar quota's period is not one day, week, month or year.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The amount is beyond <see cref="MaxAmount"/> or the period beyond <see cref="MaxSpanMicroseconds"/>.</exception>
    public static Limit Quota(Rate rate, QuotaCalendar? calendar)
    {
        ValidateRate(rate, 1);
        if (calendar is not null && (rate.UnitCount != 1 || rate.Unit is RateUnit.Second or RateUnit.Minute or RateUnit.Hour))
        {
            throw new ArgumentException($"The calendar quota {rate} must count per one day, week, month or year; use a rolling quota for other periods.", nameof(rate));
        }

        return new Limit(LimitAlgorithm.Quota, rate, rate.Amount, TimeSpan.Zero, calendar);
    }

    /// <summary>At most <paramref name="permits"/> requests in flight; a lease not released within <paramref name="leaseTimeout"/> is reclaimed.</summary>
    /// <exception cref="ArgumentOutOfRangeException">
    /// The permits are not positive or beyond <see cref="MaxAmount"/>, or the lease timeout is under a millisecond or
    /// beyond <see cref="MaxSpanMicroseconds"/>.
    /// </exception>
    public static Limit Concurrency(long permits, TimeSpan? leaseTimeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(permits);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(permits, MaxAmount);
        var timeout = leaseTimeout ?? DefaultLeaseTimeout;
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.FromMilliseconds(1), nameof(leaseTimeout));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(timeout, TimeSpan.FromMicroseconds(MaxSpanMicroseconds), nameof(leaseTimeout));
        return new Limit(LimitAlgorithm.Concurrency, new Rate(permits, 1, RateUnit.Second), permits, timeout, null);
    }

    /// <summary>
    /// This concurrency limit with a queue: a request that finds no permit waits for one, up to <paramref name="size"/>
    /// requests per key, each at most <paramref name="timeout"/>, woken in <paramref name="order"/> when a lease of the key
    /// is released. Beyond the queue or the timeout it is rejected as it would have been without one. A size of 0 removes
    /// the queue.
    /// </summary>
    /// <exception cref="InvalidOperationException">The limit is not a concurrency limit.</exception>
    /// <exception cref="ArgumentOutOfRangeException">
    /// The size is negative or beyond <see cref="MaxQueueSize"/>, the timeout under a millisecond or beyond
    /// <see cref="MaxQueueTimeout"/>, or the order not one of <see cref="Limits.QueueOrder"/>'s values.
    /// </exception>
    public Limit WithQueue(int size, TimeSpan timeout, QueueOrder order = QueueOrder.Fifo)
    {
        if (Algorithm != LimitAlgorithm.Concurrency)
        {
            throw new InvalidOperationException($"Only a concurrency limit queues; {this} rejects or delays by its own algorithm.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(size);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, MaxQueueSize);
        if (size == 0)
        {
            return new Limit(Algorithm, Rate, Burst, LeaseTimeout, _calendar);
        }

        if (timeout < TimeSpan.FromMilliseconds(1) || timeout > MaxQueueTimeout)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The queue timeout of a concurrency limit must be between 1 ms and 10 minutes.");
        }

        if (!Enum.IsDefined(order))
        {
            throw new ArgumentOutOfRangeException(nameof(order), order, "The queue order is fifo or lifo.");
        }

        return new Limit(Algorithm, Rate, Burst, LeaseTimeout, _calendar) { QueueSize = size, QueueTimeout = timeout, QueueOrder = order };
    }

    /// <summary>
    /// This limit with another rate: the same algorithm, calendar, lease timeout and leased slice; a gcra burst that was
    /// the amount follows the new amount, an explicit one stays. For an override of one subject's limit.
    /// </summary>
    /// <exception cref="ArgumentException">The rate does not fit the algorithm (see its factory).</exception>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range (see its factory).</exception>
    public Limit WithRate(Rate rate)
    {
        if (rate == Rate)
        {
            return this;
        }

        var limit = Algorithm switch
        {
            LimitAlgorithm.Gcra => Gcra(rate, Burst == Amount ? null : Burst),
            LimitAlgorithm.LeakyBucket when MaxDelay > TimeSpan.Zero => LeakyBucketQueue(rate, MaxDelay),
            LimitAlgorithm.LeakyBucket => LeakyBucket(rate, Burst == Amount ? null : Burst),
            LimitAlgorithm.SlidingLog => SlidingLog(rate),
            LimitAlgorithm.SlidingWindow => SlidingWindow(rate),
            LimitAlgorithm.FixedWindow => FixedWindow(rate),
            LimitAlgorithm.Quota => Quota(rate, _calendar),
            _ => QueueSize > 0 ? Concurrency(rate.Amount, LeaseTimeout).WithQueue(QueueSize, QueueTimeout, QueueOrder) : Concurrency(rate.Amount, LeaseTimeout),
        };
        return LeasedSlice > 0 && Algorithm != LimitAlgorithm.Concurrency ? limit.WithLeasedSlice(Math.Min(LeasedSlice, limit.Burst)) : limit;
    }

    /// <summary>
    /// A copy of this limit in leased mode: a shared store lets each replica take <paramref name="slice"/> of the budget
    /// at once and spend it locally. A slice of 0 returns the limit to strict mode.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The slice is negative or larger than the burst.</exception>
    /// <exception cref="InvalidOperationException">The limit is a concurrency limit, whose leases cannot be sliced.</exception>
    public Limit WithLeasedSlice(long slice)
    {
        if (Algorithm == LimitAlgorithm.Concurrency)
        {
            throw new InvalidOperationException("A concurrency limit cannot be leased: its permits are held, not spent.");
        }

        if (Algorithm == LimitAlgorithm.SlidingLog && slice > 0)
        {
            throw new InvalidOperationException("A sliding_log limit cannot be leased: its log of timestamps lives in the store alone.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(slice);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(slice, Burst);
        if (MaxDelay > TimeSpan.Zero && slice > 0)
        {
            throw new InvalidOperationException("A leaky_bucket queue cannot be leased: its slots are handed out one by one in the store.");
        }

        return slice == LeasedSlice ? this : new Limit(Algorithm, Rate, Burst, LeaseTimeout, _calendar, MaxDelay) { LeasedSlice = slice };
    }

    /// <summary>
    /// The quota period that contains <paramref name="nowMicroseconds"/>: its start and end in microseconds since the
    /// Unix epoch. Only for calendar quotas.
    /// </summary>
    /// <exception cref="InvalidOperationException">The limit is not a calendar quota.</exception>
    public (long Start, long End) CalendarPeriod(long nowMicroseconds) =>
        _calendar is null
            ? throw new InvalidOperationException("Only calendar quotas have calendar periods.")
            : _calendar.PeriodContaining(nowMicroseconds, Rate.Unit);

    private static long GcraInterval(Rate rate) => (rate.PeriodMicroseconds + rate.Amount - 1) / rate.Amount;

    /// <summary>
    /// Checks what every algorithm needs of a rate, at construction rather than at the first decision: an initialized
    /// rate (<c>default(Rate)</c> has no period, which no window can divide by), an amount that Lua doubles hold
    /// exactly, and a period that, <paramref name="periods"/> times over, stays within <see cref="MaxSpanMicroseconds"/>.
    /// </summary>
    private static void ValidateRate(Rate rate, int periods)
    {
        const string paramName = nameof(rate);
        if (rate.Amount <= 0 || rate.UnitCount <= 0)
        {
            throw new ArgumentException("The rate is uninitialized (default(Rate)); create it with new Rate(amount, count, unit) or Rate.Parse.", paramName);
        }

        if (rate.Amount > MaxAmount)
        {
            throw new ArgumentOutOfRangeException(paramName, rate.Amount, $"The amount of {rate} is beyond 2^53 - 1, the largest count a limit keeps exactly.");
        }

        long period;
        try
        {
            period = rate.PeriodMicroseconds;
        }
        catch (OverflowException)
        {
            period = long.MaxValue;
        }

        if (period > MaxSpanMicroseconds / periods)
        {
            throw new ArgumentOutOfRangeException(paramName, rate, $"The period of {rate} is too long: a limit counts spans of at most 2^52 µs (about 142 years){(periods > 1 ? ", and a sliding window keeps two periods" : string.Empty)}.");
        }
    }

    /// <summary>Describes the limit, such as <c>gcra 300/min burst 50</c>.</summary>
    public override string ToString() => Algorithm switch
    {
        LimitAlgorithm.Gcra => Burst == Amount ? $"gcra {Rate}" : string.Create(CultureInfo.InvariantCulture, $"gcra {Rate} burst {Burst}"),
        LimitAlgorithm.LeakyBucket when MaxDelay > TimeSpan.Zero => string.Create(CultureInfo.InvariantCulture, $"leaky_bucket {Rate} max_delay {MaxDelay.TotalSeconds}s"),
        LimitAlgorithm.LeakyBucket => Burst == Amount ? $"leaky_bucket {Rate}" : string.Create(CultureInfo.InvariantCulture, $"leaky_bucket {Rate} burst {Burst}"),
        LimitAlgorithm.SlidingLog => $"sliding_log {Rate}",
        LimitAlgorithm.SlidingWindow => $"sliding_window {Rate}",
        LimitAlgorithm.FixedWindow => $"fixed_window {Rate}",
        LimitAlgorithm.Quota => _calendar is null ? $"quota {Rate} rolling" : $"quota {Rate} {_calendar}",
        _ => string.Create(CultureInfo.InvariantCulture, $"concurrency {Amount} lease {LeaseTimeout.TotalSeconds}s")
            + (QueueSize > 0 ? string.Create(CultureInfo.InvariantCulture, $" queue {QueueSize} {QueueTimeout.TotalSeconds}s {(QueueOrder == QueueOrder.Lifo ? "lifo" : "fifo")}") : string.Empty),
    } + (LeasedSlice > 0 ? string.Create(CultureInfo.InvariantCulture, $" leased {LeasedSlice}") : string.Empty);
}

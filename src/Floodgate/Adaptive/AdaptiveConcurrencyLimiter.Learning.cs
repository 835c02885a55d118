using Microsoft.Extensions.Logging;

namespace Floodgate.Adaptive;

/// <summary>How the limit is learned: the minimum round-trip time, the windows of samples, the gradient and AIMD.</summary>
public sealed partial class AdaptiveConcurrencyLimiter
{
    private const double MinGradient = 0.5;
    private const double MaxGradient = 2.0;

    /// <summary>A sample while the minimum round-trip time is measured: only requests that ran at the pinned limit count.</summary>
    private Change SampleMinRtt(long now, long latency, int inFlight)
    {
        var from = LearnedLimit();
        _minRttFallback = Math.Min(_minRttFallback, latency);
        if (inFlight <= Options.MinLimit)
        {
            Add(latency);
        }

        // In shadow mode (or under a flood that never lets the in-flight count drop) requests at the pinned limit may not
        // come: after a while the lowest latency seen stands in for them, rather than measuring forever.
        var timedOut = now - _windowStart >= _minRttTimeoutTicks;
        if (_count < Options.MinRttSamples && !timedOut)
        {
            return new Change(from, from, _minRtt, _sampleRtt);
        }

        // Timed out, the lowest latency seen is the baseline: the few samples at the pinned limit may be a cold start's.
        _minRtt = timedOut ? _minRttFallback : Percentile(Options.SamplePercentile);
        _measuring = false;
        _minRttFallback = long.MaxValue;
        _nextMinRttAt = now + (long)(ToTicks(Options.MinRttInterval) * (1 + (Options.MinRttJitter * NextUnit())));
        StartWindow(now);
        Volatile.Write(ref _effectiveLimit, LearnedLimit());
        return new Change(from, from, _minRtt, _sampleRtt);
    }

    /// <summary>A sample between measurements; at the end of a window the limit moves.</summary>
    private Change Sample(long now, long latency, int inFlight, bool error)
    {
        Add(latency);
        _errors += error ? 1 : 0;
        _peakInFlight = Math.Max(_peakInFlight, inFlight);
        _inFlightSum += inFlight;
        var from = LearnedLimit();
        if (now - _windowStart < _windowTicks)
        {
            return new Change(from, from, _minRtt, _sampleRtt);
        }

        _sampleRtt = Percentile(Options.SamplePercentile);
        var used = _enforce ? _limit : (double)_inFlightSum / _count;
        var target = Options.Algorithm == AdaptiveAlgorithm.Gradient ? GradientTarget(used) : AimdTarget(used);
        var next = (_limit * (1 - Options.Smoothing)) + (target * Options.Smoothing);
        _limit = Math.Clamp(next, Options.MinLimit, Options.MaxLimit);
        var to = LearnedLimit();
        _changes += to != from ? 1 : 0;

        if (now >= _nextMinRttAt)
        {
            // Measure again: the limit is pinned low so that the samples show the upstream unloaded (Envoy's min RTT window).
            _measuring = true;
            Volatile.Write(ref _effectiveLimit, Options.MinLimit);
        }
        else
        {
            Volatile.Write(ref _effectiveLimit, to);
        }

        StartWindow(now);
        return new Change(from, to, _minRtt, _sampleRtt);
    }

    private double GradientTarget(double used)
    {
        // At least one tick each: a clock too coarse to tell them from zero reads as equal latencies, not as a collapse.
        var gradient = Math.Clamp(Math.Max(1, _minRtt) * (1 + Options.Buffer) / Math.Max(1, _sampleRtt), MinGradient, MaxGradient);

        // An enforced limit less than half used tells nothing of the capacity: it is not raised.
        if (gradient > 1 && _enforce && _peakInFlight < _limit / 2)
        {
            return _limit;
        }

        var scaled = gradient * used;
        return scaled + Math.Sqrt(scaled);
    }

    private double AimdTarget(double used)
    {
        if (_errors > 0)
        {
            return used * Options.BackoffRatio;
        }

        return _enforce && _peakInFlight < _limit / 2 ? _limit : used + 1;
    }

    private void StartWindow(long now)
    {
        _windowStart = now;
        _count = 0;
        _errors = 0;
        _peakInFlight = 0;
        _inFlightSum = 0;
    }

    private void Add(long latency)
    {
        // A full window keeps its latest samples: the ring overwrites the oldest.
        _samples[_count % SampleCapacity] = latency;
        _count++;
    }

    /// <summary>The <paramref name="percentile"/> of the window's samples (nearest rank), sorted in a buffer kept for it.</summary>
    private long Percentile(double percentile)
    {
        var n = Math.Min(_count, SampleCapacity);
        var sorted = _sorted.AsSpan(0, n);
        _samples.AsSpan(0, n).CopyTo(sorted);
        sorted.Sort();
        var rank = (int)Math.Ceiling(percentile * n) - 1;
        return sorted[Math.Clamp(rank, 0, n - 1)];
    }

    /// <summary>A uniform number in [0, 1) from a xorshift generator: the jitter, reproducible from the seed.</summary>
    private double NextUnit()
    {
        _random ^= _random << 13;
        _random ^= _random >> 7;
        _random ^= _random << 17;
        return (_random >> 11) * (1.0 / (1UL << 53));
    }

    private void LogChange(Change change)
    {
        if (!_logger.IsEnabled(LogLevel.Information) || !_logBudget.TryTake(out var suppressed))
        {
            return;
        }

        LimitChanged(_logger, Rule, change.From, change.To, ToTimeSpan(change.MinRtt).TotalMilliseconds, ToTimeSpan(change.SampleRtt).TotalMilliseconds, _enforce ? "enforce" : "shadow", suppressed);
    }

    [LoggerMessage(30, LogLevel.Information, "The adaptive concurrency limit of rule {Rule} moved from {From} to {To} (min RTT {MinRttMs} ms, sampled latency {SampleRttMs} ms, {Mode}; {Suppressed} earlier changes not logged)")]
    private static partial void LimitChanged(ILogger logger, string rule, int from, int to, double minRttMs, double sampleRttMs, string mode, long suppressed);
}

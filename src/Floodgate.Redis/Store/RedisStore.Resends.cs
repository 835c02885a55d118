using StackExchange.Redis;

namespace Floodgate.Redis;

// Calls answered without their script having run (NOSCRIPT, TRYAGAIN, a calendar skew), sent again.
public sealed partial class RedisStore
{
    /// <summary>The first pause before a call answered TRYAGAIN is sent again; each next one doubles, up to the longest.</summary>
    private static readonly TimeSpan TryAgainFirstPause = TimeSpan.FromMilliseconds(2);
    private static readonly TimeSpan TryAgainLongestPause = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Sends the calls answered without their script having run again, together, while time is left, until each is
    /// answered or late: <paramref name="again"/> are the first to send, found by <see cref="Unanswered"/> among
    /// <paramref name="calls"/>, with <paramref name="onlyTryAgain"/>.
    /// </summary>
    /// <remarks>
    /// - NOSCRIPT (the server lost its scripts: SCRIPT FLUSH, a restart, a failover, a new cluster owner): at once, with
    ///   the script's text (StackExchange.Redis sends EVAL and caches it); at most twice a call;
    /// - a calendar period that turned between this clock and the server's: at once, with the server's periods, once a
    ///   call;
    /// - TRYAGAIN (a slot caught half-migrated, some of an identity's keys moved and some not): after a short, growing
    ///   pause, as it was last sent. Moving a slot's keys takes milliseconds; a migration stuck longer than the timeout
    ///   leaves the call to the failure mode.
    /// One loop, so that a call resent for one reason and answered with another is still sent again. A call that finds
    /// no time left is not sent again (see <see cref="Call.Late"/>).
    /// </remarks>
    private async Task ResendAsync(List<Call> calls, List<Call> again, bool onlyTryAgain, Batch batch, CancellationToken cancellationToken)
    {
        var pause = TryAgainFirstPause;
        while (true)
        {
            var paused = false;
            if (onlyTryAgain && Remaining(batch.Deadline) > pause)
            {
                await Task.Delay(pause, TimeProvider.System, cancellationToken).ConfigureAwait(false);
                pause = pause * 2 < TryAgainLongestPause ? pause * 2 : TryAgainLongestPause;
                paused = true;
            }

            if ((onlyTryAgain && !paused) || Remaining(batch.Deadline) == TimeSpan.Zero)
            {
                // No time left to send them again (nor, for TRYAGAIN, to pause first): answered as timed out.
                foreach (var call in again)
                {
                    call.Late = true;
                }

                return;
            }

            foreach (var call in again)
            {
                SendAgain(call, batch);
            }

            await AwaitCalls(again, batch, cancellationToken).ConfigureAwait(false);
            if (Unanswered(calls, out onlyTryAgain) is not { } next)
            {
                return;
            }

            again = next;
        }
    }

    /// <summary>
    /// The calls to send again (see <see cref="ResendAsync"/>), each with <see cref="Call.Again"/> saying why, or
    /// <see langword="null"/>; <paramref name="onlyTryAgain"/> when every one of them was answered TRYAGAIN.
    /// </summary>
    private static List<Call>? Unanswered(List<Call> calls, out bool onlyTryAgain)
    {
        List<Call>? again = null;
        onlyTryAgain = true;
        foreach (var call in calls)
        {
            var task = call.Task!;
            if (call.Late)
            {
                continue;
            }

            if (task.IsFaulted && task.Exception?.InnerException is RedisServerException error)
            {
                if (error.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal))
                {
                    call.Again = Resend.TryAgain;
                }
                else if (error.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal) && call.ScriptResends < 2)
                {
                    call.Again = Resend.NoScript;
                    onlyTryAgain = false;
                }
                else
                {
                    continue;
                }
            }
            else if (task.IsCompletedSuccessfully && DecideProtocol.IsCalendarSkew(task.Result) && !call.Resent)
            {
                call.Again = Resend.Calendar;
                onlyTryAgain = false;
            }
            else
            {
                continue;
            }

            (again ??= []).Add(call);
        }

        return again;
    }

    /// <summary>Sends <paramref name="call"/> again, as <see cref="Call.Again"/> says.</summary>
    private void SendAgain(Call call, Batch batch)
    {
        switch (call.Again)
        {
            case Resend.NoScript:
                call.SendScript = true;
                call.ScriptResends++;
                _metrics.CountRoundTrip();
                call.SentAt = TimeProvider.System.GetTimestamp();
                call.Task = Evaluate(call.Keys!, call.Values!, sendScript: true);
                break;
            case Resend.Calendar:
                call.Resent = true;
                try
                {
                    Send(call, batch.Checks.Span, batch, DecideProtocol.ReadNow(call.Task!.Result));
                }
                catch (Exception ex)
                {
                    call.Task = Task.FromException<RedisResult>(ex);
                }

                break;
            default:
                _metrics.CountRoundTrip();
                call.SentAt = TimeProvider.System.GetTimestamp();
                call.Task = Evaluate(call.Keys!, call.Values!, call.SendScript);
                break;
        }
    }
}

using StackExchange.Redis;

namespace Floodgate.Redis;

// Calls answered without their script having run (NOSCRIPT, TRYAGAIN, a calendar skew), sent again.
public sealed partial class RedisStore
{
    /// <summary>
    /// The calls to send again (see <see cref="Complete"/>), each with <see cref="Call.Again"/> saying why, or
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
            else if (task.IsCompletedSuccessfully && IsCalendarSkew(task.Result) && !call.Resent)
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
                CountRoundTrip();
                call.Task = Evaluate(call.Keys!, call.Values!, sendScript: true);
                break;
            case Resend.Calendar:
                call.Resent = true;
                try
                {
                    Send(call, batch.Checks.Span, batch, (long)call.Task!.Result[1]);
                }
                catch (Exception ex)
                {
                    call.Task = Task.FromException<RedisResult>(ex);
                }

                break;
            default:
                CountRoundTrip();
                call.Task = Evaluate(call.Keys!, call.Values!, call.SendScript);
                break;
        }
    }

    private static bool IsCalendarSkew(RedisResult result) =>
        result.Resp2Type == ResultType.Array && result.Length == 2 && result[0].Resp2Type == ResultType.Integer
        && result[1].Resp2Type == ResultType.Integer && (long)result[0] == -1;
}

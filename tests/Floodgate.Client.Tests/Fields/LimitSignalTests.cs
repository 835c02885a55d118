using System.Net;
using Floodgate.Client.Fields;

namespace Floodgate.Client.Tests.Fields;

public sealed class LimitSignalTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 12, 0, 0, TimeSpan.Zero);

    private static (SignalKind Kind, long Quota, long Window, long Remaining, double Reset, string Partition) Read(params (string Name, string Value)[] fields)
    {
        using var response = new HttpResponseMessage(HttpStatusCode.OK);
        foreach (var (name, value) in fields)
        {
            response.Headers.TryAddWithoutValidation(name, value);
        }

        var signal = LimitSignal.Read(response.Headers, Now);
        return (signal.Kind, signal.Quota, signal.Window, signal.Remaining, signal.Reset, signal.Partition.ToString());
    }

    [Fact]
    public void The_draft_fields_as_the_gateway_writes_them_give_quota_window_remaining_reset_and_the_policy_name()
    {
        var signal = Read(("RateLimit-Policy", "\"per-user\";q=300;w=60"), ("RateLimit", "\"per-user\";r=287;t=3"));
        Assert.Equal((SignalKind.Rate, 300L, 60L, 287L, 3.0, "per-user"), signal);
    }

    [Fact]
    public void A_policy_without_a_window_is_a_concurrency_limit_as_the_gateway_writes_it_and_so_is_the_drafts_unit()
    {
        Assert.Equal(SignalKind.Concurrency, Read(("RateLimit-Policy", "\"search\";q=200"), ("RateLimit", "\"search\";r=199;t=30")).Kind);
        Assert.Equal(SignalKind.Concurrency, Read(("RateLimit-Policy", "\"search\";q=200;qu=\"concurrent-requests\""), ("RateLimit", "\"search\";r=3;t=0")).Kind);
        Assert.Equal(SignalKind.Rate, Read(("RateLimit-Policy", "\"p\";q=200;qu=\"requests\";w=1"), ("RateLimit", "\"p\";r=3;t=1")).Kind);
    }

    [Fact]
    public void A_quota_of_bytes_is_paced_from_what_remains_only()
    {
        var signal = Read(("RateLimit-Policy", "\"bytes\";q=65536;qu=\"content-bytes\";w=10"), ("RateLimit", "\"bytes\";r=100;t=4"));
        Assert.Equal((SignalKind.Rate, -1L, -1L, 100L, 4.0), (signal.Kind, signal.Quota, signal.Window, signal.Remaining, signal.Reset));
    }

    [Fact]
    public void The_partition_key_names_the_partition_and_matches_the_policy_of_the_same_key()
    {
        var signal = Read(
            ("RateLimit-Policy", "\"default\";q=10;w=1;pk=:b3RoZXI=:, \"default\";q=100;w=60;pk=:YWxpY2U=:"),
            ("RateLimit", "\"default\";r=50;t=30;pk=:YWxpY2U=:"));
        Assert.Equal((SignalKind.Rate, 100L, 60L, 50L, 30.0, "YWxpY2U="), signal);
    }

    [Fact]
    public void Of_several_policies_the_one_with_least_remaining_binds_then_the_longest_reset()
    {
        var signal = Read(
            ("RateLimit-Policy", "\"burst\";q=100;w=1, \"daily\";q=1000;w=86400"),
            ("RateLimit", "\"burst\";r=50;t=1, \"daily\";r=50;t=3600"));
        Assert.Equal((SignalKind.Rate, 1000L, 86400L, 50L, 3600.0, "daily"), signal);

        // The same members on separate field lines are one list.
        using var response = new HttpResponseMessage(HttpStatusCode.OK);
        response.Headers.TryAddWithoutValidation("RateLimit-Policy", ["\"burst\";q=100;w=1", "\"daily\";q=1000;w=86400"]);
        response.Headers.TryAddWithoutValidation("RateLimit", ["\"burst\";r=2;t=1", "\"daily\";r=50;t=3600"]);
        var split = LimitSignal.Read(response.Headers, Now);
        Assert.Equal(("burst", 100L, 2L), (split.Partition.ToString(), split.Quota, split.Remaining));
    }

    [Fact]
    public void Tokens_escapes_unknown_parameters_and_inner_lists_are_read_as_RFC_8941_says()
    {
        var signal = Read(("RateLimit-Policy", "(\"a\" \"b\");q=1, tok;x=?1;q=5;w=2;y=1.5"), ("RateLimit", "tok;r=4;t=1;z=\"s\\\"x\""));
        Assert.Equal((SignalKind.Rate, 5L, 2L, 4L, 1.0, "tok"), signal);
    }

    [Theory]
    [InlineData("\"p\";r=4;t=1,")]            // a trailing comma
    [InlineData("\"p\";r=4;t=1 \"q\";r=1;t=1")] // members without a comma
    [InlineData("\"p;r=4;t=1")]               // an unterminated string
    [InlineData("\"p\";R=4;t=1")]             // an upper-case key
    [InlineData("\"p\";r=1234567890123456")]  // an integer of 16 digits
    [InlineData("\"p\";r=4;t=1.")]             // a decimal without a fraction
    public void A_field_that_breaks_the_grammar_is_ignored_whole(string state)
    {
        Assert.Equal(SignalKind.None, Read(("RateLimit-Policy", "\"p\";q=5;w=1"), ("RateLimit", state)).Kind);
    }

    [Fact]
    public void A_negative_or_fractional_remaining_is_not_a_remaining()
    {
        Assert.Equal(SignalKind.None, Read(("RateLimit", "\"p\";r=-1;t=1")).Kind);
        Assert.Equal(SignalKind.None, Read(("RateLimit", "\"p\";r=1.5;t=1")).Kind);
    }

    [Fact]
    public void The_X_RateLimit_convention_reads_a_delta_reset()
    {
        var signal = Read(("X-RateLimit-Limit", "60"), ("X-RateLimit-Remaining", "7"), ("X-RateLimit-Reset", "12"));
        Assert.Equal((SignalKind.Rate, 60L, -1L, 7L, 12.0, string.Empty), signal);
    }

    [Fact]
    public void A_large_X_RateLimit_Reset_is_an_epoch_time_in_seconds()
    {
        var epoch = Now.ToUnixTimeSeconds() + 42;
        var signal = Read(("X-RateLimit-Limit", "5000"), ("X-RateLimit-Remaining", "4999"), ("X-RateLimit-Reset", epoch.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(42.0, signal.Reset, 3);

        var past = Read(("X-RateLimit-Remaining", "1"), ("X-RateLimit-Reset", (Now.ToUnixTimeSeconds() - 5).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(0.0, past.Reset);
    }

    [Fact]
    public void The_draft_fields_win_over_the_X_RateLimit_ones_and_no_fields_is_no_signal()
    {
        var signal = Read(("RateLimit-Policy", "\"p\";q=5;w=1"), ("RateLimit", "\"p\";r=4;t=1"), ("X-RateLimit-Remaining", "0"));
        Assert.Equal(4L, signal.Remaining);
        Assert.Equal(SignalKind.None, Read().Kind);
        Assert.Equal(SignalKind.None, Read(("X-RateLimit-Remaining", "many")).Kind);
    }

    [Fact]
    public void A_state_without_its_policy_still_paces_from_remaining_and_reset()
    {
        Assert.Equal((SignalKind.Rate, -1L, -1L, 3L, 9.0, "p"), Read(("RateLimit", "\"p\";r=3;t=9")));
    }
}

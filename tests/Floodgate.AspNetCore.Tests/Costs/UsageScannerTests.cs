using System.Text;
using Floodgate.AspNetCore.Costs;
using Floodgate.Costs;

namespace Floodgate.AspNetCore.Tests.Costs;

public sealed class UsageScannerTests
{
    private const string OpenAiStream =
        "data: {\"id\":\"1\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"say \\\"usage\\\": {\"}}],\"usage\":null}\n\n"
        + "data: {\"id\":\"1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n"
        + "data: [DONE]\n\n";

    [Fact]
    public void The_usage_of_the_last_event_is_read_wherever_the_reads_split_it()
    {
        var bytes = Encoding.UTF8.GetBytes(OpenAiStream);
        for (var split = 0; split <= bytes.Length; split++)
        {
            var report = Scan(bytes[..split], bytes[split..]);
            Assert.True((12L, 34L, 46L) == (report.InputTokens, report.OutputTokens, report.TotalTokens), $"split at {split}: {report.InputTokens}/{report.OutputTokens}/{report.TotalTokens}");
            Assert.Equal("gpt-4o-mini", report.Model);
        }

        // One byte at a time.
        var single = new CostReport();
        var scanner = new UsageScanner(single);
        foreach (var b in bytes)
        {
            scanner.Feed([b]);
        }

        Assert.Equal(46, single.AllTokens);
        Assert.Equal(1, scanner.Found);
    }

    [Fact]
    public void Input_and_output_reported_in_different_events_are_both_kept()
    {
        // Anthropic's stream: input tokens in message_start, output tokens (cumulative) in message_delta.
        var report = Scan(Encoding.UTF8.GetBytes(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
            + "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n"));
        Assert.Equal((25L, 15L, 40L), (report.InputTokens!.Value, report.OutputTokens!.Value, report.AllTokens!.Value));
        Assert.Equal("claude-x", report.Model);
    }

    [Theory]
    [InlineData("data: {\"usage\":null}\n\ndata: [DONE]\n\n")]
    [InlineData("data: {\"text\":\"\\\"usage\\\":{\\\"total_tokens\\\":5}\"}\n\n")] // inside a string
    [InlineData("data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":\n\ndata: [DONE]\n\n")] // cut off
    [InlineData("data: {\"usage\":{\"prompt_tokens\":\"12\"}}\n\n")] // not a number
    [InlineData("data: {\"usage\":{\"prompt_tokens\":-3}}\n\n")]
    [InlineData("data: {\"usage\":{\"prompt_tokens\":1,}}\n\n")] // not JSON
    [InlineData("{\"usage\":[1,2]}")]
    [InlineData("")]
    public void Absent_or_malformed_usage_reports_nothing(string body)
    {
        var report = Scan(Encoding.UTF8.GetBytes(body));
        Assert.False(report.HasUsage);
    }

    [Fact]
    public void A_usage_object_past_the_limit_is_dropped_and_the_scan_goes_on()
    {
        var huge = "data: {\"usage\":{\"prompt_tokens\":1,\"pad\":\"" + new string('x', UsageScanner.MaxUsageBytes) + "\"}}\n\n";
        var report = new CostReport();
        var scanner = new UsageScanner(report);
        scanner.Feed(Encoding.UTF8.GetBytes(huge));
        Assert.False(report.HasUsage);
        Assert.Equal(1, scanner.Malformed);

        // A later, well-formed usage is still read.
        scanner.Feed(Encoding.UTF8.GetBytes("data: {\"usage\":{\"total_tokens\":9}}\n\n"));
        Assert.Equal(9, report.AllTokens);
        scanner.Complete();
    }

    [Fact]
    public void A_json_body_with_usage_at_the_end_is_read()
    {
        var report = Scan(Encoding.UTF8.GetBytes("""
            {
              "id": "chatcmpl-1",
              "model": "small",
              "choices": [{"message": {"role": "assistant", "content": "model: \"big\""}}],
              "usage": {
                "prompt_tokens": 7,
                "completion_tokens": 3,
                "total_tokens": 10
              }
            }
            """));
        Assert.Equal((7L, 3L, 10L), (report.InputTokens!.Value, report.OutputTokens!.Value, report.TotalTokens!.Value));
        Assert.Equal("small", report.Model);
    }

    [Fact]
    public void A_pretty_printed_body_is_read_wherever_the_reads_split_it()
    {
        var bytes = Encoding.UTF8.GetBytes("{\n  \"model\": \"small\",\n  \"text\": \"a \\\"usage\\\": {\\\"total_tokens\\\": 1}\",\n  \"usage\" :\n  {\n    \"prompt_tokens\": 7,\n    \"total_tokens\": 10\n  }\n}\n");
        for (var first = 0; first <= bytes.Length; first++)
        {
            for (var second = first; second <= Math.Min(bytes.Length, first + 9); second++)
            {
                var report = Scan(bytes[..first], bytes[first..second], bytes[second..]);
                Assert.True((7L, 10L, "small") == (report.InputTokens, report.TotalTokens, report.Model), $"split at {first} and {second}: {report.InputTokens}/{report.TotalTokens}/{report.Model}");
            }
        }
    }

    [Theory]
    [InlineData("{\"text\":\"x\\\"usage\",\"usage\":{\"total_tokens\":3}}", 3)] // a string that ends in "usage, then the key
    [InlineData("{\"a\":\"x\\\"usage\":{\\\"total_tokens\\\":5}\"}", null)] // a string that holds "usage":{...}
    [InlineData("[\"usage\",{\"usage\" : {\"total_tokens\":4}}]", 4)] // a value, then a key with spaces
    [InlineData("data: \"usage\":{\"total_tokens\":6}\n\n", null)] // not in an object
    public void Only_a_key_of_an_object_is_a_usage(string body, int? total)
    {
        var report = Scan(Encoding.UTF8.GetBytes(body));
        Assert.Equal(total, (int?)report.AllTokens);
    }

    [Fact]
    public void The_model_is_not_looked_for_unless_a_rule_prices_by_it()
    {
        var report = new CostReport();
        var scanner = new UsageScanner(report, readsModel: false);
        scanner.Feed(Encoding.UTF8.GetBytes(OpenAiStream));
        scanner.Complete();
        Assert.Null(report.Model);
        Assert.Equal(46, report.AllTokens);
    }

    [Fact]
    public void Request_fields_are_read_at_the_top_level_only()
    {
        var fields = ResponseCosts.ReadFields(Encoding.UTF8.GetBytes("""{"messages":[{"max_tokens":1}],"max_tokens":512,"model":"small","stream":true}"""), ["max_tokens", "model"]);
        Assert.Equal("512", fields!["max_tokens"]);
        Assert.Equal("small", fields["model"]);
        Assert.Null(ResponseCosts.ReadFields(Encoding.UTF8.GetBytes("[1]"), ["max_tokens"]));
        Assert.Null(ResponseCosts.ReadFields(Encoding.UTF8.GetBytes("not json"), ["max_tokens"]));
    }

    private static CostReport Scan(params byte[][] chunks)
    {
        var report = new CostReport();
        var scanner = new UsageScanner(report);
        foreach (var chunk in chunks)
        {
            scanner.Feed(chunk);
        }

        scanner.Complete();
        return report;
    }
}


namespace Floodgate.Gateway.Tests.Deploy;

/// <summary>
/// The shipped alert rules (deploy/prometheus/floodgate-alerts.yaml): promtool's own checks and unit tests. They are run
/// end to end on a real Prometheus in <see cref="LiveMonitoringTests"/>.
/// </summary>
public sealed class AlertRulesTests
{
    [Fact]
    public void Promtool_checks_the_rules_and_passes_their_unit_tests()
    {
        var directory = Tools.Deploy("prometheus");
        var check = Tools.Run("promtool", directory, TimeSpan.FromSeconds(60), "check", "rules", "floodgate-alerts.yaml");
        Assert.True(check.Code == 0, check.Output + check.Errors);
        Assert.Contains("SUCCESS: 7 rules found", check.Output, StringComparison.Ordinal);

        var test = Tools.Run("promtool", directory, TimeSpan.FromSeconds(120), "test", "rules", "floodgate-alerts.test.yaml");
        Assert.True(test.Code == 0, test.Output + test.Errors);
        Assert.Contains("SUCCESS", test.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_alert_has_a_promtool_test_that_expects_it_to_fire()
    {
        var rules = File.ReadAllLines(Tools.Deploy("prometheus", "floodgate-alerts.yaml"))
            .Select(l => l.Trim()).Where(l => l.StartsWith("- alert: ", StringComparison.Ordinal)).Select(l => l["- alert: ".Length..]).ToList();
        var tests = File.ReadAllText(Tools.Deploy("prometheus", "floodgate-alerts.test.yaml"));
        Assert.Equal(7, rules.Count);
        foreach (var alert in rules)
        {
            // An alertname followed by a non-empty exp_alerts list.
            Assert.Matches($@"alertname: {alert}\s+exp_alerts:\s+- exp_labels", tests);
        }
    }
}

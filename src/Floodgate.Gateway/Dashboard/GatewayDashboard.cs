namespace Floodgate.Gateway.Dashboard;

/// <summary>What the dashboard follows while the gateway runs: decision rates and offenders.</summary>
internal sealed class GatewayDashboard(TimeProvider time) : IDisposable
{
    public TimeProvider Time { get; } = time;

    public DecisionRates Rates { get; } = new(time);

    public OffenderRecorder Offenders { get; } = new();

    public void Dispose() => Rates.Dispose();
}

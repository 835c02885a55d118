using Microsoft.Extensions.Hosting;

namespace Floodgate.Envoy;

/// <summary>Loads the configuration when the host starts (refusing to start on an invalid one) and stops watching at shutdown.</summary>
internal sealed class EnvoyConfigHostedService(EnvoyConfigProvider provider) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        provider.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        provider.Dispose();
        return Task.CompletedTask;
    }
}

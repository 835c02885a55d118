using Floodgate.AspNetCore.Middleware;
using Floodgate.AspNetCore.Policies;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.AspNetCore.Hosting;

/// <summary>
/// At start, refuses invalid options (a bad configuration value, with its path) and, once the app's pipeline and
/// endpoints are built, endpoints that require a policy nobody registered; then applies each change of the options (a configuration reload) to the requests that start
/// after it, refusing a bad one with an error log and keeping the settings in force.
/// </summary>
internal sealed partial class FloodgateStartup(IServiceProvider services, IOptions<FloodgateOptions> options, IOptionsMonitor<FloodgateOptions> monitor, ILogger<FloodgateStartup> logger)
    : IHostedLifecycleService, IDisposable
{
    private IDisposable? _changes;
    private string? _lastRefusal;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            options.Value.Validate();
        }
        catch (ArgumentException e)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(FloodgateOptions), [e.Message]);
        }

        var runtime = services.GetRequiredService<FloodgateRuntime>();
        _changes = monitor.OnChange(changed => Apply(runtime, changed));
        return Task.CompletedTask;
    }

    /// <summary>After the web server has started: only then are the app's endpoints in the endpoint data source.</summary>
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        CheckEndpoints(services.GetRequiredService<FloodgateRuntime>().Options);
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _changes?.Dispose();

    /// <summary>Endpoints that require a policy the options lack stop the start, rather than each request later.</summary>
    private void CheckEndpoints(FloodgateOptions current)
    {
        IReadOnlyList<Microsoft.AspNetCore.Http.Endpoint> endpoints;
        try
        {
            endpoints = NamedPolicies.Of(services.GetService<EndpointDataSource>());
        }
        catch (InvalidOperationException)
        {
            // A data source not ready before the server starts (an in-app proxy's): the first request checks its endpoints.
            return;
        }

        try
        {
            NamedPolicies.CheckRequired(endpoints, current);
        }
        catch (ArgumentException e)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(FloodgateOptions), [e.Message]);
        }
    }

    private void Apply(FloodgateRuntime runtime, FloodgateOptions changed)
    {
        try
        {
            runtime.Apply(changed);
            Volatile.Write(ref _lastRefusal, null);
            Log.Applied(logger, runtime.Policy.Rules.Count);
        }
        catch (ArgumentException e)
        {
            // A configuration change is often signalled twice (the file's provider, then the whole configuration):
            // the same refusal is said once.
            if (Interlocked.Exchange(ref _lastRefusal, e.Message) != e.Message)
            {
                Log.Refused(logger, e.Message);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4200, Level = LogLevel.Information, Message = "Floodgate applied the changed configuration: {Rules} rules in force.")]
        public static partial void Applied(ILogger logger, int rules);

        [LoggerMessage(EventId = 4201, Level = LogLevel.Error, Message = "Floodgate refused the changed configuration and keeps the settings in force: {Reason}")]
        public static partial void Refused(ILogger logger, string reason);
    }
}

using Microsoft.Extensions.Options;

namespace Floodgate.Client.Options;

/// <summary>Refuses pacing options that cannot work, naming the client and the option.</summary>
internal sealed class FloodgatePacingOptionsValidator : IValidateOptions<FloodgatePacingOptions>
{
    public ValidateOptionsResult Validate(string? name, FloodgatePacingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var client = string.IsNullOrEmpty(name) ? "the default client" : $"client '{name}'";
        List<string>? errors = null;
        void Fail(string message) => (errors ??= []).Add($"Floodgate pacing of {client}: {message}");

        if (options.Deadline <= TimeSpan.Zero && options.Deadline != Timeout.InfiniteTimeSpan)
        {
            Fail($"Deadline must be positive or Timeout.InfiniteTimeSpan, not {options.Deadline}.");
        }

        if (options.MaxRetryDelay <= TimeSpan.Zero || options.MaxRetryDelay > TimeSpan.FromDays(1))
        {
            Fail($"MaxRetryDelay must be positive and at most a day, not {options.MaxRetryDelay}.");
        }

        if (options.RetryBaseDelay <= TimeSpan.Zero || options.RetryBaseDelay > options.MaxRetryDelay)
        {
            Fail($"RetryBaseDelay must be positive and at most MaxRetryDelay ({options.MaxRetryDelay}), not {options.RetryBaseDelay}.");
        }

        if (options.MaxRetries is < 0 or > 20)
        {
            Fail($"MaxRetries must be between 0 and 20, not {options.MaxRetries}.");
        }

        return errors is null ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Floodgate.Envoy;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Policy;
using Microsoft.Extensions.Options;

namespace Floodgate.Gateway.Cli;

/// <summary>
/// <c>--envoy</c> and the Envoy service's thirteen other options, which <c>run</c> and <c>check</c> both take: each sets
/// one <see cref="EnvoyRateLimitOptions"/> property.
/// </summary>
internal static class EnvoyCliOptions
{
    internal const string Config = "--envoy-config";
    private const string NoWatch = "--envoy-no-watch";
    private const string ReloadDebounce = "--envoy-reload-debounce";
    private const string MergeDomains = "--envoy-merge-domains";
    private const string ShadowMode = "--envoy-shadow-mode";
    private const string QuotaMode = "--envoy-quota-mode";
    private const string ResponseHeaders = "--envoy-response-headers";
    private const string LimitHeader = "--envoy-limit-header";
    private const string RemainingHeader = "--envoy-remaining-header";
    private const string ResetHeader = "--envoy-reset-header";
    private const string NearLimitRatio = "--envoy-near-limit-ratio";
    private const string MaxDescriptors = "--envoy-max-descriptors";
    private const string HitCounting = "--envoy-hit-counting";

    /// <summary>
    /// Adds <c>--envoy</c> and the Envoy service's other options to <paramref name="command"/>, refused as <c>run</c>
    /// refuses them: <c>check</c> takes the same ones, so that a command line is validated before it is deployed.
    /// </summary>
    public static void Add(Command command, string envoyDescription)
    {
        var envoy = new Option<Uri?>("--envoy") { Description = envoyDescription, CustomParser = Addresses.Parse };
        var envoyOptions = All();
        command.Add(envoy);
        foreach (var option in envoyOptions)
        {
            command.Add(option);
        }

        command.Validators.Add(result => Validate(result, envoy, envoyOptions));
    }

    /// <summary>The Envoy service's options as a parsed <c>run</c> or <c>check</c> command line gives them; <see langword="null"/> without <c>--envoy</c>.</summary>
    public static EnvoyRateLimitOptions? ServiceOptions(ParseResult result, string policyPath) =>
        result.GetValue<Uri?>("--envoy") is { } envoy
            ? new GatewayHostOptions
            {
                PolicyPath = policyPath,
                Envoy = envoy,
                EnvoyConfigDirectory = result.GetValue<DirectoryInfo?>(Config)?.FullName,
                ConfigureEnvoy = Settings(result),
            }.EnvoyOptions()
            : null;

    /// <summary>The Envoy options given on the command line, as one setter; <see langword="null"/> when none is.</summary>
    public static Action<EnvoyRateLimitOptions>? Settings(ParseResult result)
    {
        var settings = new List<Action<EnvoyRateLimitOptions>>();
        if (result.GetValue<bool>(NoWatch))
        {
            settings.Add(o => o.WatchConfigDirectory = false);
        }

        if (result.GetValue<TimeSpan?>(ReloadDebounce) is { } debounce)
        {
            settings.Add(o => o.ReloadDebounce = debounce);
        }

        if (result.GetValue<bool>(MergeDomains))
        {
            settings.Add(o => o.MergeDomainConfigs = true);
        }

        if (result.GetValue<bool>(ShadowMode))
        {
            settings.Add(o => o.GlobalShadowMode = true);
        }

        if (result.GetValue<bool>(QuotaMode))
        {
            settings.Add(o => o.GlobalQuotaMode = true);
        }

        if (result.GetValue<bool>(ResponseHeaders))
        {
            settings.Add(o => o.ResponseHeadersEnabled = true);
        }

        if (result.GetValue<string?>(LimitHeader) is { } limit)
        {
            settings.Add(o => o.LimitHeader = limit);
        }

        if (result.GetValue<string?>(RemainingHeader) is { } remaining)
        {
            settings.Add(o => o.RemainingHeader = remaining);
        }

        if (result.GetValue<string?>(ResetHeader) is { } reset)
        {
            settings.Add(o => o.ResetHeader = reset);
        }

        if (result.GetValue<double?>(NearLimitRatio) is { } ratio)
        {
            settings.Add(o => o.NearLimitRatio = ratio);
        }

        if (result.GetValue<int?>(MaxDescriptors) is { } max)
        {
            settings.Add(o => o.MaxDescriptors = max);
        }

        if (result.GetValue<EnvoyHitCounting?>(HitCounting) is { } counting)
        {
            settings.Add(o => o.HitCounting = counting);
        }

        return settings.Count == 0 ? null : options => settings.ForEach(set => set(options));
    }

    /// <summary>
    /// The options of the Envoy service besides its address: each sets one <see cref="EnvoyRateLimitOptions"/> property
    /// (and names the reference's setting), and a value is checked by that class's own validation when it is parsed.
    /// </summary>
    private static Option[] All() =>
    [
        new Option<DirectoryInfo?>(Config) { Description = "The directory of envoyproxy/ratelimit YAML files the Envoy service reads; required with --envoy. A link to it (or to a parent) swapped for another is followed." },
        new Option<bool>(NoWatch) { Description = "Do not reload the Envoy configuration directory when it changes (RUNTIME_WATCH_ROOT=false)." },
        new Option<TimeSpan?>(ReloadDebounce)
        {
            Description = "How long the Envoy configuration directory must stay quiet after a change before it is reloaded: 500ms by default, at most 1m.",
            CustomParser = r => ParseValue<TimeSpan>(r, ReloadDebounce, "a duration such as 500ms or 2s", YamlReader.TryParseDuration, (o, v) => o.ReloadDebounce = v, nameof(EnvoyRateLimitOptions.ReloadDebounce)),
        },
        new Option<bool>(MergeDomains) { Description = "Let several Envoy configuration files add descriptors to one domain (MERGE_DOMAIN_CONFIG); otherwise a domain declared twice is an error." },
        new Option<bool>(ShadowMode) { Description = "Run every Envoy rule in shadow mode: counted and measured, never answered OVER_LIMIT (SHADOW_MODE)." },
        new Option<bool>(QuotaMode) { Description = "Make every Envoy rule a quota rule: a request is over the limit only when every descriptor it carries is (QUOTA_MODE)." },
        new Option<bool>(ResponseHeaders) { Description = "Send limit headers for Envoy to add to the response, describing the descriptor closest to its limit (LIMIT_RESPONSE_HEADERS_ENABLED)." },
        HeaderOption(LimitHeader, "the limit", "RateLimit-Limit", "LIMIT_LIMIT_HEADER", (o, v) => o.LimitHeader = v, nameof(EnvoyRateLimitOptions.LimitHeader)),
        HeaderOption(RemainingHeader, "what remains", "RateLimit-Remaining", "LIMIT_REMAINING_HEADER", (o, v) => o.RemainingHeader = v, nameof(EnvoyRateLimitOptions.RemainingHeader)),
        HeaderOption(ResetHeader, "the seconds until reset", "RateLimit-Reset", "LIMIT_RESET_HEADER", (o, v) => o.ResetHeader = v, nameof(EnvoyRateLimitOptions.ResetHeader)),
        new Option<double?>(NearLimitRatio)
        {
            Description = "The share of a limit past which Envoy hits count as near the limit in metrics: 0.8 by default, from 0 to 1 (NEAR_LIMIT_RATIO).",
            CustomParser = r => ParseValue<double>(r, NearLimitRatio, "a number such as 0.8", (string text, out double value) => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value), (o, v) => o.NearLimitRatio = v, nameof(EnvoyRateLimitOptions.NearLimitRatio)),
        },
        new Option<int?>(MaxDescriptors)
        {
            Description = "The most descriptors one Envoy request may carry; more is INVALID_ARGUMENT. 256 by default, at least 1.",
            CustomParser = r => ParseValue<int>(r, MaxDescriptors, "a whole number such as 256", (string text, out int value) => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value), (o, v) => o.MaxDescriptors = v, nameof(EnvoyRateLimitOptions.MaxDescriptors)),
        },
        new Option<EnvoyHitCounting?>(HitCounting)
        {
            Description = "Which Envoy hits are counted: all (the default, as envoyproxy/ratelimit: hits over the limit too), stop-when-over-limit (STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT) or within-limit (never a hit over the limit).",
            CustomParser = r => ParseValue<EnvoyHitCounting>(r, HitCounting, "all, stop-when-over-limit or within-limit", TryParseHitCounting, (o, v) => o.HitCounting = v, nameof(EnvoyRateLimitOptions.HitCounting)),
        },
    ];

    /// <summary>An <see cref="EnvoyHitCounting"/> as the command line spells it: all, stop-when-over-limit, within-limit.</summary>
    internal static bool TryParseHitCounting(string text, out EnvoyHitCounting value)
    {
        (var known, value) = text switch
        {
            "all" => (true, EnvoyHitCounting.All),
            "stop-when-over-limit" => (true, EnvoyHitCounting.StopWhenOverLimit),
            "within-limit" => (true, EnvoyHitCounting.WithinLimit),
            _ => (false, EnvoyHitCounting.All),
        };
        return known;
    }

    private static Option<string?> HeaderOption(string name, string what, string fallback, string reference, Action<EnvoyRateLimitOptions, string> apply, string property) => new(name)
    {
        Description = $"With --envoy-response-headers: the name of the header that carries {what}; {fallback} by default ({reference}).",
        CustomParser = r => ParseValue<string>(r, name, "a header name", (string text, out string value) => (value = text).Length > 0, apply, property),
    };

    private delegate bool TryParse<T>(string text, out T value);

    /// <summary>
    /// Parses an Envoy option's value and checks it with <see cref="EnvoyRateLimitOptions.Validate"/>, so that the command
    /// line accepts exactly what the service does; an error names the option.
    /// </summary>
    private static T? ParseValue<T>(ArgumentResult result, string option, string example, TryParse<T> parse, Action<EnvoyRateLimitOptions, T> apply, string property)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : string.Empty;
        if (!parse(text, out var value))
        {
            result.AddError($"{option}: '{text}' is not {example}.");
            return default;
        }

        var options = new EnvoyRateLimitOptions { ConfigDirectory = "." };
        apply(options, value);
        try
        {
            options.Validate();
        }
        catch (OptionsValidationException e)
        {
            // The service's message names the property: name the option instead.
            foreach (var failure in e.Failures)
            {
                result.AddError(failure.Replace($"{nameof(EnvoyRateLimitOptions)}.{property}", option, StringComparison.Ordinal));
            }
        }

        return value;
    }

    /// <summary>Refuses Envoy options that would do nothing: without --envoy, or without the option they refine.</summary>
    private static void Validate(CommandResult result, Option envoy, Option[] envoyOptions)
    {
        bool Given(string name) => result.GetResult(envoyOptions.First(o => o.Name == name)) is { Implicit: false };
        if (result.GetResult(envoy) is null)
        {
            foreach (var option in envoyOptions.Where(o => result.GetResult(o) is { Implicit: false }))
            {
                result.AddError($"{option.Name} applies to the Envoy service, which is off: give --envoy (and --envoy-config) too, or remove {option.Name}.");
            }

            return;
        }

        if (!Given(Config))
        {
            result.AddError("--envoy-config is required with --envoy: the directory of envoyproxy/ratelimit YAML files.");
        }

        foreach (var header in new[] { LimitHeader, RemainingHeader, ResetHeader }.Where(Given))
        {
            if (!result.GetValue<bool>(ResponseHeaders))
            {
                result.AddError($"{header} names a header that is sent only with --envoy-response-headers: add it, or remove {header}.");
            }
        }

        if (Given(ReloadDebounce) && result.GetValue<bool>(NoWatch))
        {
            result.AddError($"{ReloadDebounce} does nothing with {NoWatch}, which stops the reloads: remove one of them.");
        }
    }
}

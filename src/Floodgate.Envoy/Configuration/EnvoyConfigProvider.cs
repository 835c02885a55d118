using Floodgate.Envoy.Configuration;
using Floodgate.FileWatching;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.Envoy;

/// <summary>
/// Holds the current configuration and reloads it when the directory changes: changes are debounced, and a reload
/// that fails keeps the last good configuration and logs why.
/// </summary>
/// <remarks>
/// The directory may be reached through symbolic links (itself, or an ancestor such as a deploy tool's <c>current</c>):
/// each link on the way is watched in its parent directory, so replacing it (the atomic swap by rename that deploy
/// tools and the reference's <c>RUNTIME_WATCH_ROOT</c> expect) reloads, and the watch moves to the new target.
/// </remarks>
public sealed partial class EnvoyConfigProvider : IDisposable
{
    private readonly EnvoyRateLimitOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly EnvoyRateLimitMetrics _metrics;
    private readonly bool _ownsMetrics;
    // Guards loading, the watch and the debounce timer: one reload at a time, none after disposal.
    private readonly Lock _reloadLock = new();
    private EnvoyConfig _current = EnvoyConfig.Empty;
    private LinkedDirectoryWatch? _watch;
    private ITimer? _debounce;
    private bool _disposed;

    /// <summary>Creates a provider; call <see cref="Start"/> to load the configuration and watch the directory.</summary>
    /// <exception cref="OptionsValidationException">An option is invalid; the message names it.</exception>
    public EnvoyConfigProvider(IOptions<EnvoyRateLimitOptions> options, TimeProvider? timeProvider = null, ILogger<EnvoyConfigProvider>? logger = null)
        : this(options, timeProvider, logger, null)
    {
    }

    internal EnvoyConfigProvider(IOptions<EnvoyRateLimitOptions> options, TimeProvider? timeProvider, ILogger<EnvoyConfigProvider>? logger, EnvoyRateLimitMetrics? metrics)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _options.Validate();
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _ownsMetrics = metrics is null;
        _metrics = metrics ?? new EnvoyRateLimitMetrics();
    }

    /// <summary>Raised after every reload attempt, successful or not, on the thread that reloaded.</summary>
    public event EventHandler<EnvoyConfigReloadedEventArgs>? Reloaded;

    /// <summary>The configuration in force: the last one that loaded.</summary>
    public EnvoyConfig Current => Volatile.Read(ref _current);

    /// <summary>Why the last reload failed; <see langword="null"/> when it succeeded.</summary>
    public string? LastError { get; private set; }

    /// <summary>How many configurations have loaded successfully.</summary>
    public long Generation { get; private set; }

    /// <summary>Loads the configuration and, when enabled, starts watching the directory.</summary>
    /// <exception cref="EnvoyConfigException">The configuration is invalid: the service refuses to start on it.</exception>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    public void Start()
    {
        lock (_reloadLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var watching = _options.WatchConfigDirectory && _debounce is null;
            try
            {
                if (watching)
                {
                    // Watching starts before the first read: a change made while it reads is then seen, not lost.
                    _debounce = _time.CreateTimer(static state => ((EnvoyConfigProvider)state!).Reload(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                    _watch = new LinkedDirectoryWatch([_options.ConfigDirectory], null, OnChanged, OnLinkChanged, OnWatcherError);
                    Rewatch();
                }

                Install(EnvoyConfig.LoadDirectory(_options.ConfigDirectory, _options.MergeDomainConfigs));
            }
            catch when (watching)
            {
                // A service that does not start watches nothing.
                _watch?.Dispose();
                _watch = null;
                _debounce?.Dispose();
                _debounce = null;
                throw;
            }
        }
    }

    /// <summary>Reloads the directory now; on failure keeps the configuration in force and logs why.</summary>
    /// <returns>Whether the new configuration loaded.</returns>
    public bool Reload()
    {
        bool success;
        string? error = null;
        lock (_reloadLock)
        {
            if (_disposed)
            {
                return false;
            }

            try
            {
                // The links on the way may point elsewhere now: watch where the directory is before reading it.
                TryRewatch();

                Install(EnvoyConfig.LoadDirectory(_options.ConfigDirectory, _options.MergeDomainConfigs));
                success = true;
            }
            catch (Exception ex) when (ex is EnvoyConfigException or IOException or UnauthorizedAccessException)
            {
                success = false;
                error = ex.Message;
                LastError = error;
                _metrics.ConfigLoad(false);
                LogReloadFailed(_logger, error, Current.Domains.Count, ex);
            }
        }

        Reloaded?.Invoke(this, new EnvoyConfigReloadedEventArgs(success, error));
        return success;
    }

    /// <summary>Stops watching the directory.</summary>
    public void Dispose()
    {
        lock (_reloadLock)
        {
            _disposed = true;
            _watch?.Dispose();
            _watch = null;
            _debounce?.Dispose();
            _debounce = null;
            if (_ownsMetrics)
            {
                _metrics.Dispose();
            }
        }
    }

    private void Install(EnvoyConfig config)
    {
        Volatile.Write(ref _current, config);
        LastError = null;
        Generation++;
        _metrics.ConfigLoad(true);
        LogLoaded(_logger, config.Domains.Count, config.RuleCount, config.Files.Count, _options.ConfigDirectory);
        if (config.SkippedEntries.Count > 0)
        {
            LogSkipped(_logger, _options.ConfigDirectory, string.Join(", ", config.SkippedEntries));
        }

        if (config.Domains.Count == 0)
        {
            LogNoDomains(_logger, _options.ConfigDirectory);
        }
    }

    /// <summary>Moves the watch to where the directory's links lead now; throws when a watcher cannot start.</summary>
    private void Rewatch()
    {
        if (_watch?.Rewatch() is [var path] && path.Links.Count > 0)
        {
            LogWatching(_logger, _options.ConfigDirectory, path.Target ?? "(nothing: a link leads nowhere)", string.Join(", ", path.Links));
        }
    }

    /// <summary><see cref="Rewatch"/>, logging instead of throwing: the watch in force stays, and the next reload tries again.</summary>
    private void TryRewatch()
    {
        try
        {
            Rewatch();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            LogWatcherError(_logger, _options.ConfigDirectory, ex);
        }
    }

    /// <summary>A link on the way to the directory was created, replaced, changed or removed: reload.</summary>
    private void OnLinkChanged(object sender, FileSystemEventArgs e)
    {
        Arm();
        WatcherEventHandled?.Invoke(e.Name);
    }

    private void Arm()
    {
        lock (_reloadLock)
        {
            _debounce?.Change(_options.ReloadDebounce, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Raised after a watcher event has been handled, with the file's name; for tests.</summary>
    internal event Action<string?>? WatcherEventHandled;

    /// <summary>
    /// Whether a change to this entry can change the configuration: a file the loader reads (<c>*.yaml</c> or
    /// <c>*.yml</c>, not a dotfile), or a Kubernetes ConfigMap's <c>..data</c> link, whose atomic swap is the only
    /// event a ConfigMap update raises.
    /// </summary>
    private static bool IsConfigurationFile(string? name)
    {
        var file = Path.GetFileName(name);
        if (file is not { Length: > 0 })
        {
            return false;
        }

        return file.StartsWith("..", StringComparison.Ordinal)
            || (file[0] != '.' && (file.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".yml", StringComparison.OrdinalIgnoreCase)));
    }

    private void OnChanged(object sender, FileSystemEventArgs e)
    {
        // Only a change to a file the loader reads (or a rename away from one, or a watcher error, which has no name)
        // arms a reload: editors' swap and backup files, and other files, never do.
        if (e.Name is null || IsConfigurationFile(e.Name) || (e is RenamedEventArgs renamed && IsConfigurationFile(renamed.OldName)))
        {
            Arm();
        }

        WatcherEventHandled?.Invoke(e.Name);
    }

    private void OnWatcherError(object sender, ErrorEventArgs e)
    {
        // The watcher's buffer overflowed or the directory went away: reload as if something changed.
        LogWatcherError(_logger, _options.ConfigDirectory, e.GetException());
        OnChanged(sender, new FileSystemEventArgs(WatcherChangeTypes.Changed, _options.ConfigDirectory, null));
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Loaded the Envoy rate limit configuration: {Domains} domains, {Rules} rules from {Files} files in {Directory}")]
    private static partial void LogLoaded(ILogger logger, int domains, int rules, int files, string directory);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "The Envoy rate limit configuration did not reload, the last good one ({Domains} domains) stays in force: {Error}")]
    private static partial void LogReloadFailed(ILogger logger, string error, int domains, Exception exception);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Skipped entries of the Envoy rate limit configuration directory {Directory} (only *.yaml and *.yml files directly in it are read): {Entries}")]
    private static partial void LogSkipped(ILogger logger, string directory, string entries);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "The Envoy rate limit configuration directory {Directory} declares no domain: every request is answered OK and the service reports itself not serving")]
    private static partial void LogNoDomains(ILogger logger, string directory);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "The Envoy rate limit configuration directory {Directory} leads to {Target} through the links {Links}; watching them, so that a link swapped for another is followed")]
    private static partial void LogWatching(ILogger logger, string directory, string target, string links);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Watching the Envoy rate limit configuration directory {Directory} failed; reloading it")]
    private static partial void LogWatcherError(ILogger logger, string directory, Exception exception);
}

/// <summary>The outcome of a configuration reload.</summary>
/// <param name="success">Whether the new configuration loaded.</param>
/// <param name="error">Why it did not; <see langword="null"/> on success.</param>
public sealed class EnvoyConfigReloadedEventArgs(bool success, string? error) : EventArgs
{
    /// <summary>Whether the new configuration loaded.</summary>
    public bool Success { get; } = success;

    /// <summary>Why it did not; <see langword="null"/> on success.</summary>
    public string? Error { get; } = error;
}

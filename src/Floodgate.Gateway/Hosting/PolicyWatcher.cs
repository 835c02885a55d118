namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Watches the policy file and reloads it shortly after it changes (editors write in several steps, so changes are
/// debounced). A bad file is refused and logged; the last good policy stays in force.
/// </summary>
internal sealed class PolicyWatcher : IDisposable
{
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(200);
    private readonly FileSystemWatcher _watcher;
    private readonly Timer _timer;
    private readonly string _path;
    private readonly GatewayRuntime _runtime;

    public PolicyWatcher(string path, GatewayRuntime runtime)
    {
        _path = Path.GetFullPath(path);
        _runtime = runtime;
        _timer = new Timer(_ => Reload(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _watcher = new FileSystemWatcher(Path.GetDirectoryName(_path)!, Path.GetFileName(_path))
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        _watcher.Changed += OnChanged;
        _watcher.Created += OnChanged;
        _watcher.Renamed += OnChanged;
        _watcher.EnableRaisingEvents = true;
    }

    public void Dispose()
    {
        _watcher.EnableRaisingEvents = false;
        _watcher.Dispose();
        _timer.Dispose();
    }

    private void Reload()
    {
        try
        {
            _runtime.Reload(_path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or NotSupportedException)
        {
            // Reload reports policy errors itself; anything else must not take the process down from a timer thread.
            _runtime.ReportReloadFailure(_path, e);
        }
    }

    private void OnChanged(object sender, FileSystemEventArgs e) => _timer.Change(Debounce, Timeout.InfiniteTimeSpan);
}

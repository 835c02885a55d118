namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Watches the policy file and reloads it shortly after it changes (editors write in several steps, so changes are
/// debounced). A bad file is refused and logged; the last good policy stays in force.
/// </summary>
internal sealed class PolicyWatcher : IDisposable
{
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(200);
    private readonly DebouncedWatcher _watcher;
    private readonly string _path;
    private readonly GatewayRuntime _runtime;

    public PolicyWatcher(string path, GatewayRuntime runtime)
    {
        _path = Path.GetFullPath(path);
        _runtime = runtime;
        _watcher = new DebouncedWatcher([Path.GetDirectoryName(_path)!], Path.GetFileName(_path), Debounce, Reload);
    }

    public void Dispose() => _watcher.Dispose();

    private void Reload()
    {
        try
        {
            _runtime.Reload(_path);
        }
        catch (Exception e)
        {
            // Reload reports policy errors itself. Anything else (an unreadable file, or a failure no one foresaw) is
            // reported the same way and the policy in force stays: an exception on this timer thread would end the process.
            _runtime.ReportReloadFailure(_path, e);
        }
    }
}

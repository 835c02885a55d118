using Floodgate.Gateway.Policy;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Watches the policy file and the key files it names, and reloads shortly after one changes (editors write in several
/// steps, so changes are debounced). A bad file is refused and logged; the last good policy stays in force.
/// </summary>
/// <remarks>
/// Besides the files' own names, each directory's <c>..data</c> entry is watched: a Kubernetes ConfigMap or Secret
/// volume is updated by swapping that link, which raises no event under the files' names.
/// </remarks>
internal sealed class PolicyWatcher : IDisposable
{
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(200);
    private readonly Lock _gate = new();
    private readonly string _path;
    private readonly GatewayRuntime _runtime;
    private DebouncedWatcher? _watcher;
    private string[] _watched = [];
    private bool _disposed;

    public PolicyWatcher(string path, GatewayRuntime runtime)
    {
        _path = Path.GetFullPath(path);
        _runtime = runtime;
        Rewatch();
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _watcher?.Dispose();
        }
    }

    /// <summary>The files the policy in force reads: itself and its key files (relative to the working directory, as read).</summary>
    private string[] Files() =>
        [_path, .. (_runtime.Policy.Jwt?.KeyFiles ?? []).Select(f => Path.GetFullPath(PolicyLoader.ExpandHome(f)))];

    /// <summary>Watches the files of the policy in force, unless they are the ones watched already.</summary>
    private void Rewatch()
    {
        var files = Files();
        lock (_gate)
        {
            if (_disposed || files.SequenceEqual(_watched, StringComparer.Ordinal))
            {
                return;
            }

            _watcher?.Dispose();
            _watched = files;
            string[] names = [.. files.Select(Path.GetFileName).OfType<string>().Append("..data").Distinct(StringComparer.Ordinal)];
            _watcher = new DebouncedWatcher(files.Select(f => Path.GetDirectoryName(f)!).Where(Directory.Exists), names, Debounce, Reload);
        }
    }

    private void Reload()
    {
        try
        {
            _runtime.Reload(_path);
            // A reload may name other key files: watch those from now on.
            Rewatch();
        }
        catch (Exception e)
        {
            // Reload reports policy errors itself. Anything else (an unreadable file, or a failure no one foresaw) is
            // reported the same way and the policy in force stays: an exception on this timer thread would end the process.
            _runtime.ReportReloadFailure(_path, e);
        }
    }
}

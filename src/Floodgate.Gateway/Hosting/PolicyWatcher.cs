using Floodgate.Gateway.Policy;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Watches the policy file and the key files it names, and reloads shortly after one changes (editors write in several
/// steps, so changes are debounced). A bad file is refused and logged; the last good policy stays in force.
/// </summary>
/// <remarks>
/// Besides the files' own names, each directory's <c>..data</c> entry is watched: a Kubernetes ConfigMap or Secret
/// volume is updated by swapping that link, which raises no event under the files' names. A directory reached through
/// symbolic links (a deploy tool's <c>current -> releases/vN</c>, replaced by a rename) is followed when a link on the
/// way is swapped: see <see cref="DebouncedWatcher"/>.
/// </remarks>
internal sealed class PolicyWatcher : IDisposable
{
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(200);
    // Guards the watcher, the files it watches and disposal: a reload (on the watcher's timer) replaces the watcher
    // while the gateway may be stopping.
    private readonly Lock _watcherLock = new();
    private readonly string _path;
    private readonly GatewayRuntime _runtime;
    private DebouncedWatcher? _watcher;
    private string[] _watched = [];
    private bool _disposed;

    public PolicyWatcher(string path, GatewayRuntime runtime)
    {
        _path = Path.GetFullPath(path);
        _runtime = runtime;
        _ = Rewatch();
    }

    public void Dispose()
    {
        lock (_watcherLock)
        {
            _disposed = true;
            _watcher?.Dispose();
        }
    }

    /// <summary>
    /// The files to watch: the policy file, the key files of the policy in force, and the key files the policy file names
    /// now (a refused edit may name one that does not exist yet), relative to the working directory, as read.
    /// </summary>
    private string[] Files() =>
        [_path, .. _runtime.Policy.KeyFiles.Concat(_runtime.Policy.SecretFiles).Concat(PolicyLoader.KeyFilesNamedIn(_path)).Select(f => Path.GetFullPath(PolicyLoader.ExpandHome(f))).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];

    /// <summary>Watches <see cref="Files"/>, unless they are the ones watched already; whether the watch changed.</summary>
    private bool Rewatch()
    {
        var files = Files();
        lock (_watcherLock)
        {
            if (_disposed || files.SequenceEqual(_watched, StringComparer.Ordinal))
            {
                return false;
            }

            _watcher?.Dispose();
            _watched = files;
            string[] names = [.. files.Select(Path.GetFileName).OfType<string>().Append("..data").Distinct(StringComparer.Ordinal)];
            // A directory that does not exist (yet) is watched from the links that lead to it, if any.
            _watcher = new DebouncedWatcher(files.Select(f => Path.GetDirectoryName(f)!), names, Debounce, Reload, _runtime.Logger);
            return true;
        }
    }

    private void Reload()
    {
        try
        {
            _runtime.Reload(_path);

            // A reload may name other key files: watch those from now on. The replaced watcher's pending change (a file
            // written while this reload ran) went with it, so the files are read once more; unchanged, that does nothing.
            if (Rewatch())
            {
                _runtime.Reload(_path);
            }
        }
        catch (Exception e)
        {
            // Reload reports policy errors itself. Anything else (an unreadable file, or a failure no one foresaw) is
            // reported the same way and the policy in force stays: an exception on this timer thread would end the process.
            _runtime.ReportReloadFailure(_path, e);
        }
    }
}

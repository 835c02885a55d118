namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Watches files and calls back once they have been quiet for a moment: editors, deploy tools and mounted secrets write
/// in several steps, and one reload should see them all.
/// </summary>
internal sealed class DebouncedWatcher : IDisposable
{
    private readonly List<FileSystemWatcher> _watchers = [];
    private readonly Timer _timer;
    private readonly TimeSpan _debounce;

    /// <summary>Starts watching.</summary>
    /// <param name="directories">The directories watched.</param>
    /// <param name="fileNames">
    /// The names watched in each directory; <see langword="null"/> for any change in the directories, deletions included.
    /// </param>
    /// <param name="debounce">How long the files must stay quiet before <paramref name="changed"/> runs.</param>
    /// <param name="changed">Runs on a timer thread; it must not throw.</param>
    public DebouncedWatcher(IEnumerable<string> directories, IReadOnlyCollection<string>? fileNames, TimeSpan debounce, Action changed)
    {
        _debounce = debounce;
        _timer = new Timer(_ => changed(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        foreach (var directory in directories.Distinct(StringComparer.Ordinal))
        {
            var watcher = new FileSystemWatcher(directory);
            foreach (var name in fileNames ?? [])
            {
                watcher.Filters.Add(name);
            }

            // DirectoryName too: a Kubernetes volume's ..data entry is swapped by a rename, and may be seen as a directory.
            watcher.NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.Size | NotifyFilters.CreationTime;
            watcher.Changed += OnChanged;
            watcher.Created += OnChanged;
            watcher.Renamed += OnChanged;
            if (fileNames is null)
            {
                watcher.Deleted += OnChanged;
            }

            watcher.EnableRaisingEvents = true;
            _watchers.Add(watcher);
        }
    }

    public void Dispose()
    {
        foreach (var watcher in _watchers)
        {
            watcher.EnableRaisingEvents = false;
            watcher.Dispose();
        }

        _timer.Dispose();
    }

    private void OnChanged(object sender, FileSystemEventArgs e)
    {
        try
        {
            // Each change pushes the callback back: it runs once the files have been quiet for the debounce.
            _timer.Change(_debounce, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // An event raised while the gateway stops.
        }
    }
}

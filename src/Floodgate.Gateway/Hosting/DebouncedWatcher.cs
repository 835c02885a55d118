using Floodgate.Envoy;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Watches files and calls back once they have been quiet for a moment: editors, deploy tools and mounted secrets write
/// in several steps, and one reload should see them all.
/// </summary>
/// <remarks>
/// A directory may be reached through symbolic links: itself, or an ancestor such as a deploy tool's <c>current</c>
/// (<c>/etc/floodgate/current/policy.yaml</c>, <c>current -> releases/v2</c>), replaced by a rename. The kernel watches
/// where a link led when the watch began, so such a swap raises no event there. Each link on the way (resolved by
/// <see cref="WatchedPath"/>, as the Envoy service resolves its configuration directory) is therefore watched in its
/// parent directory too, and before the callback runs the watch moves to wherever the directories lead now.
/// </remarks>
internal sealed partial class DebouncedWatcher : IDisposable
{
    private readonly Lock _gate = new();
    private readonly string[] _directories;
    private readonly IReadOnlyCollection<string>? _fileNames;
    private readonly TimeSpan _debounce;
    private readonly Action _changed;
    private readonly ILogger _logger;
    private readonly Timer _timer;
    private List<FileSystemWatcher> _watchers = [];
    private WatchedPath[] _watched = [];
    private bool _disposed;

    /// <summary>Starts watching.</summary>
    /// <param name="directories">
    /// The directories watched, through any symbolic links on the way; one that leads nowhere now is watched from the
    /// links that lead to it, and from where it leads once one of them is changed.
    /// </param>
    /// <param name="fileNames">
    /// The names watched in each directory; <see langword="null"/> for any change in the directories, deletions included.
    /// </param>
    /// <param name="debounce">How long the files must stay quiet before <paramref name="changed"/> runs.</param>
    /// <param name="changed">Runs on a timer thread; it must not throw.</param>
    /// <param name="logger">Where the links followed, and a watch that could not move, are logged.</param>
    public DebouncedWatcher(IEnumerable<string> directories, IReadOnlyCollection<string>? fileNames, TimeSpan debounce, Action changed, ILogger? logger = null)
    {
        _directories = [.. directories.Distinct(StringComparer.Ordinal)];
        _fileNames = fileNames;
        _debounce = debounce;
        _changed = changed;
        _logger = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _timer = new Timer(static state => ((DebouncedWatcher)state!).OnQuiet(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        try
        {
            lock (_gate)
            {
                Rewatch();
            }
        }
        catch
        {
            _timer.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            DisposeAll(_watchers);
            _watchers = [];
        }

        _timer.Dispose();
    }

    /// <summary>
    /// Watches where the directories lead now, and the parent directory of each link on the way, unless that is what is
    /// watched already. The new watchers start before the old ones stop, and the directories are resolved again once
    /// they run, so a link swapped meanwhile is not missed. Throws when a watcher cannot start; the old ones then stay.
    /// </summary>
    private void Rewatch()
    {
        for (var attempt = 0; attempt < 3; attempt++)
        {
            WatchedPath[] paths = [.. _directories.Select(WatchedPath.Resolve)];
            if (paths.SequenceEqual(_watched))
            {
                return;
            }

            var watchers = new List<FileSystemWatcher>();
            try
            {
                // A link's parent: only the links' names, and their removal too (the directory is then gone).
                foreach (var parent in paths.SelectMany(p => p.LinkParents).GroupBy(p => p.Directory, StringComparer.Ordinal))
                {
                    watchers.Add(Watch(parent.Key, [.. parent.SelectMany(p => p.Names).Distinct(StringComparer.Ordinal)], deletions: true));
                }

                foreach (var target in paths.Select(p => p.Target).OfType<string>().Distinct(StringComparer.Ordinal))
                {
                    watchers.Add(Watch(target, _fileNames, deletions: _fileNames is null));
                }
            }
            catch
            {
                DisposeAll(watchers);
                throw;
            }

            DisposeAll(_watchers);
            _watchers = watchers;
            _watched = paths;
            for (var i = 0; i < paths.Length; i++)
            {
                if (paths[i].Links.Count > 0)
                {
                    Log.FollowingLinks(_logger, _directories[i], paths[i].Target ?? "(nothing: a link leads nowhere)", string.Join(", ", paths[i].Links));
                }
            }
        }
    }

    private FileSystemWatcher Watch(string directory, IReadOnlyCollection<string>? names, bool deletions)
    {
        var watcher = new FileSystemWatcher(directory);
        try
        {
            foreach (var name in names ?? [])
            {
                watcher.Filters.Add(name);
            }

            // DirectoryName too: a Kubernetes volume's ..data entry, or a deploy tool's current, is swapped by a rename,
            // and may be seen as a directory.
            watcher.NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.Size | NotifyFilters.CreationTime;
            watcher.Changed += OnChanged;
            watcher.Created += OnChanged;
            watcher.Renamed += OnChanged;
            if (deletions)
            {
                watcher.Deleted += OnChanged;
            }

            // The buffer overflowed or the directory went away: what changed is unknown, so read everything again.
            watcher.Error += (_, _) => Arm();
            watcher.EnableRaisingEvents = true;
            return watcher;
        }
        catch
        {
            watcher.Dispose();
            throw;
        }
    }

    private static void DisposeAll(List<FileSystemWatcher> watchers)
    {
        foreach (var watcher in watchers)
        {
            watcher.EnableRaisingEvents = false;
            watcher.Dispose();
        }
    }

    private void OnChanged(object sender, FileSystemEventArgs e) => Arm();

    private void Arm()
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

    /// <summary>The files have been quiet: follow the links to where they lead now, then call back.</summary>
    private void OnQuiet()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            try
            {
                Rewatch();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
            {
                // The files are read anyway; the next change tries to move the watch again.
                Log.RewatchFailed(_logger, string.Join(", ", _directories), e);
            }
        }

        _changed();
    }

    private static partial class Log
    {
        [LoggerMessage(50, LogLevel.Information, "{Directory} leads to {Target} through the links {Links}; watching them, so that a link swapped for another is followed")]
        public static partial void FollowingLinks(ILogger logger, string directory, string target, string links);

        [LoggerMessage(51, LogLevel.Warning, "Watching {Directories} where they lead now failed; the files are read again, and the next change tries again")]
        public static partial void RewatchFailed(ILogger logger, string directories, Exception exception);
    }
}

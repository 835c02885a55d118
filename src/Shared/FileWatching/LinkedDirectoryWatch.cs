namespace Floodgate.FileWatching;

/// <summary>
/// Watches directories through the symbolic links on the way to them: each directory where its links lead now, and
/// each link in its parent directory. The kernel watches where a link led when the watch began, so a link swapped for
/// another (a deploy tool's <c>current -> releases/v2</c>, replaced by a rename) raises events only in the link's
/// parent; <see cref="Rewatch"/> then moves the watch to where the links lead. Used by the Envoy service's
/// configuration directory and by the gateway's policy, key and certificate files.
/// </summary>
/// <remarks>
/// Not thread-safe: its owner serializes <see cref="Rewatch"/> and <see cref="Dispose"/>. Shared source (src/Shared),
/// compiled into the Envoy service and the gateway, each with its own debouncing.
/// </remarks>
/// <param name="directories">The directories watched.</param>
/// <param name="fileNames">The names watched in each directory; <see langword="null"/> for every change, deletions included.</param>
/// <param name="changed">Raised for a change in a directory (among <paramref name="fileNames"/>).</param>
/// <param name="linkChanged">Raised when a link on the way is created, replaced, changed or removed.</param>
/// <param name="error">Raised when a watcher's buffer overflowed or its directory went away: what changed is unknown.</param>
internal sealed class LinkedDirectoryWatch(
    IReadOnlyList<string> directories,
    IReadOnlyCollection<string>? fileNames,
    FileSystemEventHandler changed,
    FileSystemEventHandler linkChanged,
    ErrorEventHandler error) : IDisposable
{
    private List<FileSystemWatcher> _watchers = [];
    private WatchedPath[] _watched = [];

    /// <summary>
    /// Watches where the directories lead now, and the parent directory of each link on the way, unless that is what is
    /// watched already. The new watchers start before the old ones stop, and the directories are resolved again once
    /// they run, so a link swapped meanwhile is not missed.
    /// </summary>
    /// <returns>Where each directory leads, when the watch moved; <see langword="null"/> when it stayed.</returns>
    /// <exception cref="IOException">A watcher could not start; the watch in force stays.</exception>
    public IReadOnlyList<WatchedPath>? Rewatch()
    {
        WatchedPath[]? moved = null;
        for (var attempt = 0; attempt < 3; attempt++)
        {
            WatchedPath[] paths = [.. directories.Select(WatchedPath.Resolve)];
            if (paths.SequenceEqual(_watched))
            {
                break;
            }

            var watchers = new List<FileSystemWatcher>();
            try
            {
                // A link's parent: only the links' names, and their removal too (the directory is then gone).
                foreach (var parent in paths.SelectMany(p => p.LinkParents).GroupBy(p => p.Directory, StringComparer.Ordinal))
                {
                    watchers.Add(Watch(parent.Key, [.. parent.SelectMany(p => p.Names).Distinct(StringComparer.Ordinal)], deletions: true, linkChanged));
                }

                foreach (var target in paths.Select(p => p.Target).OfType<string>().Distinct(StringComparer.Ordinal))
                {
                    watchers.Add(Watch(target, fileNames, deletions: fileNames is null, changed));
                }
            }
            catch
            {
                DisposeAll(watchers);
                throw;
            }

            DisposeAll(_watchers);
            (_watchers, _watched, moved) = (watchers, paths, paths);
        }

        return moved;
    }

    /// <summary>Stops every watcher; a <see cref="Rewatch"/> after it starts afresh.</summary>
    public void Dispose()
    {
        DisposeAll(_watchers);
        (_watchers, _watched) = ([], []);
    }

    private FileSystemWatcher Watch(string directory, IReadOnlyCollection<string>? names, bool deletions, FileSystemEventHandler handler)
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
            watcher.Changed += handler;
            watcher.Created += handler;
            watcher.Renamed += (sender, e) => handler(sender, e);
            if (deletions)
            {
                watcher.Deleted += handler;
            }

            watcher.Error += error;
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
}

using Floodgate.FileWatching;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Watches files and calls back once they have been quiet for a moment: editors, deploy tools and mounted secrets write
/// in several steps, and one reload should see them all.
/// </summary>
/// <remarks>
/// A directory may be reached through symbolic links: itself, or an ancestor such as a deploy tool's <c>current</c>
/// (<c>/etc/floodgate/current/policy.yaml</c>, <c>current -> releases/v2</c>), replaced by a rename. The kernel watches
/// where a link led when the watch began, so such a swap raises no event there. Each link on the way is therefore watched
/// in its parent directory too (<see cref="LinkedDirectoryWatch"/>, as for the Envoy service's configuration
/// directory), and before the callback runs the watch moves to wherever the directories lead now.
/// </remarks>
internal sealed partial class DebouncedWatcher : IDisposable
{
    // Guards the watch (moved when the links change) and disposal: the quiet timer and Dispose both reach them.
    private readonly Lock _watchLock = new();
    private readonly string[] _directories;
    private readonly TimeSpan _debounce;
    private readonly Action _changed;
    private readonly ILogger _logger;
    private readonly Timer _timer;
    private readonly LinkedDirectoryWatch _watch;
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
        _debounce = debounce;
        _changed = changed;
        _logger = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _timer = new Timer(static state => ((DebouncedWatcher)state!).OnQuiet(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);

        // The buffer overflowed or the directory went away: what changed is unknown, so read everything again.
        _watch = new LinkedDirectoryWatch(_directories, fileNames, OnChanged, OnChanged, (_, _) => Arm());
        try
        {
            lock (_watchLock)
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
        lock (_watchLock)
        {
            _disposed = true;
            _watch.Dispose();
        }

        _timer.Dispose();
    }

    /// <summary>Moves the watch to where the directories' links lead now; throws when a watcher cannot start.</summary>
    private void Rewatch()
    {
        if (_watch.Rewatch() is not { } paths)
        {
            return;
        }

        for (var i = 0; i < paths.Count; i++)
        {
            if (paths[i].Links.Count > 0)
            {
                Log.FollowingLinks(_logger, _directories[i], paths[i].Target ?? "(nothing: a link leads nowhere)", string.Join(", ", paths[i].Links));
            }
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
        lock (_watchLock)
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

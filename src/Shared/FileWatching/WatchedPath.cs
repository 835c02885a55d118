namespace Floodgate.FileWatching;

/// <summary>
/// Where a directory's path leads now: the directory itself, with every symbolic link met on the way resolved, and those
/// links. Two resolutions are equal when both lead to the same place through the same links.
/// </summary>
internal sealed class WatchedPath : IEquatable<WatchedPath>
{
    /// <summary>How many links one resolution follows, as the kernel's own limit (ELOOP): a loop of links ends here.</summary>
    private const int MaxLinks = 40;

    private WatchedPath(string? target, IReadOnlyList<string> links)
    {
        Target = target;
        Links = links;
        LinkParents = [.. links
            .GroupBy(l => Path.GetDirectoryName(l)!, StringComparer.Ordinal)
            .Select(g => (g.Key, (IReadOnlySet<string>)g.Select(l => Path.GetFileName(l)).ToHashSet(StringComparer.Ordinal)))];
    }

    /// <summary>The directory the path leads to, with no link left in it; <see langword="null"/> when it leads nowhere.</summary>
    public string? Target { get; }

    /// <summary>The links met on the way, in the order they were followed, each as a path with no link before its name.</summary>
    public IReadOnlyList<string> Links { get; }

    /// <summary>The directories holding <see cref="Links"/>, each with the names of the links in it.</summary>
    public IReadOnlyList<(string Directory, IReadOnlySet<string> Names)> LinkParents { get; }

    /// <summary>
    /// Resolves <paramref name="path"/> one name at a time, as the kernel does: <c>..</c> after a link goes up from the
    /// link's target, not from the link. Never throws for what it finds on disk: a missing or unreadable entry, or too
    /// many links, leaves <see cref="Target"/> <see langword="null"/> with the links met until then.
    /// </summary>
    public static WatchedPath Resolve(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var links = new List<string>();
        var rooted = Path.IsPathRooted(path) ? path : Path.Join(Environment.CurrentDirectory, path);
        var current = Path.GetPathRoot(rooted)!;
        var remaining = new Stack<string>(Names(rooted).Reverse());
        while (remaining.TryPop(out var name))
        {
            if (name == ".")
            {
                continue;
            }

            if (name == "..")
            {
                current = Path.GetDirectoryName(current) ?? current;
                continue;
            }

            var next = Path.Join(current, name);
            string? target;
            try
            {
                target = new FileInfo(next).LinkTarget;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return new WatchedPath(null, links);
            }

            if (target is null)
            {
                if (!Directory.Exists(next))
                {
                    return new WatchedPath(null, links);
                }

                current = next;
                continue;
            }

            if (links.Count == MaxLinks)
            {
                return new WatchedPath(null, links);
            }

            links.Add(next);
            if (Path.IsPathRooted(target))
            {
                current = Path.GetPathRoot(target)!;
            }

            foreach (var part in Names(target).Reverse())
            {
                remaining.Push(part);
            }
        }

        return new WatchedPath(current, links);
    }

    public bool Equals(WatchedPath? other) =>
        other is not null && string.Equals(Target, other.Target, StringComparison.Ordinal) && Links.SequenceEqual(other.Links, StringComparer.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as WatchedPath);

    public override int GetHashCode() => HashCode.Combine(Target, Links.Count);

    /// <summary>The names of a path after its root, empty ones (doubled or trailing separators) left out.</summary>
    private static IEnumerable<string> Names(string path) =>
        path[(Path.GetPathRoot(path)?.Length ?? 0)..].Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);
}

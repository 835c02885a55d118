namespace Floodgate.Tls;

/// <summary>
/// A value read from files (certificates, keys), read again at first use after any of them changed, by last write time
/// and length. A change that cannot be used keeps the last good value until the files change again.
/// </summary>
/// <remarks>
/// The Redis store's TLS and the gateway's upstream TLS read their files through it, so a renewed certificate is used
/// from the next handshake on, without a restart or a reload.
/// </remarks>
/// <typeparam name="T">What the files hold.</typeparam>
internal sealed class WatchedFiles<T>
    where T : class
{
    private readonly string[] _paths;
    private readonly Loader _load;
    private readonly Action<string> _reloaded;
    private readonly Action<string, string> _refused;

    // Guards the stamps and the value read with them.
    private readonly Lock _filesLock = new();
    private (DateTime Written, long Length)[] _stamps;
    private T? _value;

    /// <summary>Watches <paramref name="paths"/>, whose value as they are now is <paramref name="initial"/>.</summary>
    /// <param name="paths">The files.</param>
    /// <param name="initial">The value read from them now; <see langword="null"/> when they could not be used.</param>
    /// <param name="load">Reads the files again.</param>
    /// <param name="reloaded">Told the files (comma-separated) when a change was read.</param>
    /// <param name="refused">Told the files and the reason when a change cannot be used.</param>
    public WatchedFiles(string[] paths, T? initial, Loader load, Action<string> reloaded, Action<string, string> refused)
    {
        _paths = paths;
        _load = load;
        _reloaded = reloaded;
        _refused = refused;
        _stamps = Stamps(paths);
        _value = initial;
    }

    /// <summary>Reads the files; <see langword="null"/>, with the reason in <paramref name="problem"/>, when they cannot be used.</summary>
    public delegate T? Loader(out string? problem);

    /// <summary>The files, comma-separated, as logs name them.</summary>
    public string Files => string.Join(", ", _paths);

    /// <summary>The value of the files as they are now, or the last good one (<see langword="null"/> if there never was one).</summary>
    public T? Current
    {
        get
        {
            lock (_filesLock)
            {
                var stamps = Stamps(_paths);
                if (stamps.AsSpan().SequenceEqual(_stamps))
                {
                    return _value;
                }

                // Recorded first, so that a file that cannot be used is not read again at every handshake.
                _stamps = stamps;

                // The previous value is not disposed: a connection made with it may still be using it.
                if (_load(out var problem) is { } next)
                {
                    _value = next;
                    _reloaded(Files);
                }
                else
                {
                    _refused(Files, problem ?? "unreadable");
                }

                return _value;
            }
        }
    }

    private static (DateTime, long)[] Stamps(string[] paths)
    {
        var stamps = new (DateTime, long)[paths.Length];
        for (var i = 0; i < paths.Length; i++)
        {
            var file = new FileInfo(paths[i]);
            stamps[i] = file.Exists ? (file.LastWriteTimeUtc, file.Length) : (DateTime.MinValue, -1);
        }

        return stamps;
    }
}

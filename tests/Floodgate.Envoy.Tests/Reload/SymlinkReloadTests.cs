using Floodgate.FileWatching;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Envoy.Tests;

/// <summary>
/// Configuration directories updated by swapping a symbolic link, on real files: a deploy tool's <c>current</c> link
/// replaced by a rename (the reference's <c>RUNTIME_WATCH_ROOT</c> case), and a Kubernetes ConfigMap's <c>..data</c>.
/// </summary>
public sealed class SymlinkReloadTests : IDisposable
{
    private const string Limit1 = "domain: r\ndescriptors:\n  - key: k\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n";
    private const string Limit5 = "domain: r\ndescriptors:\n  - key: k\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n";
    private const string Limit7 = "domain: r\ndescriptors:\n  - key: k\n    rate_limit: { unit: minute, requests_per_unit: 7 }\n";
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(50);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "floodgate-envoy-link-" + Guid.NewGuid().ToString("n"));

    public SymlinkReloadTests() => Directory.CreateDirectory(_root);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Where the link that is swapped sits relative to the configured directory.</summary>
    public enum Layout
    {
        /// <summary>The configured directory is the link: <c>current -> releases/v1</c>.</summary>
        DirectoryIsTheLink,

        /// <summary>The link is an ancestor, as with the reference's <c>RUNTIME_ROOT</c>: <c>current/ratelimit/config</c>.</summary>
        AncestorIsTheLink,

        /// <summary>The configured link points to a second link, the one swapped: <c>current -> stable -> releases/v1</c>.</summary>
        ChainedLinks,
    }

    [Theory]
    [InlineData(Layout.DirectoryIsTheLink)]
    [InlineData(Layout.AncestorIsTheLink)]
    [InlineData(Layout.ChainedLinks)]
    public async Task A_swapped_link_is_followed_and_an_invalid_target_keeps_the_last_good_configuration(Layout layout)
    {
        var sub = layout == Layout.AncestorIsTheLink ? Path.Combine("ratelimit", "config") : string.Empty;
        var swapped = layout == Layout.ChainedLinks ? "stable" : "current";
        Release("v1", sub, Limit1);
        Release("v2", sub, Limit5);
        Release("v3", sub, "domain: r\ndescriptors:\n  - key: k\n    rate_limit: { unit: fortnight }\n");
        Swap(swapped, Path.Combine("releases", "v1"));
        if (layout == Layout.ChainedLinks)
        {
            File.CreateSymbolicLink(Path.Combine(_root, "current"), "stable");
        }

        await using var server = await StartAsync(Path.Combine(_root, "current", sub));
        Assert.Equal(1u, await LimitAsync(server));

        // The link is replaced by a rename: the new release is served.
        Swap(swapped, Path.Combine("releases", "v2"));
        await ServesAsync(server, 5);

        // A release that does not load is refused, and the last good configuration stays.
        Swap(swapped, Path.Combine("releases", "v3"));
        await RefusedAsync(server, "config.yaml: line 4: invalid rate limit unit 'fortnight'");
        Assert.Equal(5u, await LimitAsync(server));

        // The watch moved to the new release with the link: fixing its file there is picked up.
        await File.WriteAllTextAsync(Path.Combine(_root, "releases", "v3", sub, "config.yaml"), Limit7);
        await ServesAsync(server, 7);

        // A link to nothing is refused too; swapped back to a release, it is followed again.
        Swap(swapped, Path.Combine("releases", "missing"));
        await RefusedAsync(server, "The rate limit configuration directory");
        Assert.Equal(7u, await LimitAsync(server));
        Swap(swapped, Path.Combine("releases", "v2"));
        await ServesAsync(server, 5);
    }

    [Fact]
    public async Task A_configmap_volume_is_reloaded_when_the_kubelet_swaps_its_data_link()
    {
        // The kubelet's layout: the files are links into ..data, itself a link to a timestamped directory.
        var volume = Path.Combine(_root, "volume");
        Directory.CreateDirectory(volume);
        await File.WriteAllTextAsync(Path.Combine(Directory.CreateDirectory(Path.Combine(volume, "..2030_01_01_00_00_00.1")).FullName, "config.yaml"), Limit1);
        Swap(Path.Combine("volume", "..data"), "..2030_01_01_00_00_00.1");
        File.CreateSymbolicLink(Path.Combine(volume, "config.yaml"), Path.Combine("..data", "config.yaml"));

        await using var server = await StartAsync(volume);
        Assert.Equal(1u, await LimitAsync(server));

        // An update: a new timestamped directory, ..data swapped to it by a rename, the old directory removed.
        await File.WriteAllTextAsync(Path.Combine(Directory.CreateDirectory(Path.Combine(volume, "..2030_01_01_00_01_00.2")).FullName, "config.yaml"), Limit5);
        Swap(Path.Combine("volume", "..data"), "..2030_01_01_00_01_00.2");
        Directory.Delete(Path.Combine(volume, "..2030_01_01_00_00_00.1"), recursive: true);
        await ServesAsync(server, 5);

        // An update that does not load keeps the last good configuration.
        await File.WriteAllTextAsync(Path.Combine(Directory.CreateDirectory(Path.Combine(volume, "..2030_01_01_00_02_00.3")).FullName, "config.yaml"), "domain: r\nunknown: 1\n");
        Swap(Path.Combine("volume", "..data"), "..2030_01_01_00_02_00.3");
        await RefusedAsync(server, "config.yaml: line 2: unknown key 'unknown'");
        Assert.Equal(5u, await LimitAsync(server));
    }

    [Fact]
    public void Resolving_follows_links_as_the_kernel_does_and_stops_at_a_loop()
    {
        Release("v1", "config", Limit1);
        Swap("current", Path.Combine("releases", "v1"));
        Directory.CreateDirectory(Path.Combine(_root, "releases", "other"));

        // ".." after a link goes up from where the link leads: current/.. is releases, not the root.
        var path = WatchedPath.Resolve(Path.Combine(_root, "current", "..", "v1", "config"));
        Assert.Equal(Path.Combine(_root, "releases", "v1", "config"), path.Target);
        Assert.Equal([Path.Combine(_root, "current")], path.Links);
        Assert.Equal(path, WatchedPath.Resolve(Path.Combine(_root, "current", "..", "v1", "config")));

        // A loop of links, and a link to nothing, lead nowhere, and name the links met.
        File.CreateSymbolicLink(Path.Combine(_root, "a"), "b");
        File.CreateSymbolicLink(Path.Combine(_root, "b"), "a");
        var loop = WatchedPath.Resolve(Path.Combine(_root, "a"));
        Assert.Null(loop.Target);
        Assert.Equal(40, loop.Links.Count);
        var dangling = WatchedPath.Resolve(Path.Combine(_root, "missing-link"));
        Assert.Null(dangling.Target);
        Assert.Empty(dangling.Links);
        Swap("current", Path.Combine("releases", "none"));
        Assert.NotEqual(path, WatchedPath.Resolve(Path.Combine(_root, "current", "..", "v1", "config")));
    }

    /// <summary>Writes <c>releases/{name}/{sub}/config.yaml</c>.</summary>
    private void Release(string name, string sub, string yaml)
    {
        var directory = Directory.CreateDirectory(Path.Combine(_root, "releases", name, sub));
        File.WriteAllText(Path.Combine(directory.FullName, "config.yaml"), yaml);
    }

    /// <summary>
    /// Points the link <paramref name="link"/> (relative to the root) at <paramref name="target"/> (relative to the link's
    /// directory) atomically: a new link under a temporary name, renamed over the old one. rename(2) itself: File.Move
    /// follows the link, and refuses one to a directory.
    /// </summary>
    private void Swap(string link, string target)
    {
        var path = Path.Combine(_root, link);
        var staged = path + ".tmp-" + Guid.NewGuid().ToString("n");
        File.CreateSymbolicLink(staged, target);
        if (Rename(staged, path) != 0)
        {
            throw new IOException($"rename {staged} {path}: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    [System.Runtime.InteropServices.DefaultDllImportSearchPaths(System.Runtime.InteropServices.DllImportSearchPath.SafeDirectories)]
    private static extern int Rename([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string oldPath, [System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string newPath);

    private static Task<EnvoyServer> StartAsync(string directory) => EnvoyServer.StartAsync(string.Empty, o =>
    {
        o.ConfigDirectory = directory;
        o.WatchConfigDirectory = true;
        o.ReloadDebounce = Debounce;
    });

    private static async Task<uint> LimitAsync(EnvoyServer server) =>
        (await server.CallAsync("r", [("k", "v")])).Statuses[0].CurrentLimit.RequestsPerUnit;

    /// <summary>Waits until the rule's limit is <paramref name="expected"/>, with no reload error.</summary>
    private static Task ServesAsync(EnvoyServer server, uint expected) =>
        EventuallyAsync(server.Time, async () => server.Provider.LastError is null && await LimitAsync(server) == expected, $"a limit of {expected}");

    /// <summary>Waits until a reload has failed with an error that starts with <paramref name="error"/>.</summary>
    private static Task RefusedAsync(EnvoyServer server, string error) =>
        EventuallyAsync(server.Time, () => Task.FromResult(server.Provider.LastError?.StartsWith(error, StringComparison.Ordinal) == true), $"the error '{error}'");

    /// <summary>
    /// Moves the fake clock one debounce window at a time, letting the watcher's events arrive between steps, until
    /// <paramref name="condition"/> holds; fails after 20 s.
    /// </summary>
    private static async Task EventuallyAsync(FakeTimeProvider time, Func<Task<bool>> condition, string what)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(20), $"Waited 20 s for {what}.");
            time.Advance(Debounce);
            await Task.Delay(TimeSpan.FromMilliseconds(20));
        }
    }
}

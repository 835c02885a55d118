using System.Diagnostics;

namespace Floodgate.Gateway.Tests.Deploy;

/// <summary>
/// The operations tools the deployment tests run: promtool and prometheus (Debian's <c>prometheus</c>), kubectl
/// (Debian's <c>kubernetes-client</c>), each installed by test.sh when missing. A missing tool fails the test, naming
/// its package: these tests check real tools' verdicts, and a skip would pass without checking anything.
/// </summary>
internal static class Tools
{
    /// <summary>Runs <paramref name="tool"/> with <paramref name="args"/> in <paramref name="directory"/>, bounded by <paramref name="timeout"/>.</summary>
    public static (int Code, string Output, string Errors) Run(string tool, string directory, TimeSpan timeout, params string[] args)
    {
        var info = new ProcessStartInfo(Find(tool))
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{tool} did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish within {timeout}.");
        }

        return (process.ExitCode, output.Result, errors.Result);
    }

    /// <summary>The full path of <paramref name="tool"/> on the PATH.</summary>
    public static string Find(string tool)
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Path.Combine(directory, tool);
            if (File.Exists(path))
            {
                return path;
            }
        }

        var package = tool switch { "kubectl" => "kubernetes-client", "chromium" => "chromium", _ => "prometheus" };
        throw new InvalidOperationException($"{tool} is not installed: test.sh installs it (Debian package {package}).");
    }

    /// <summary>A file or directory of the repository's deploy/ tree.</summary>
    public static string Deploy(params string[] parts) => Path.Combine([PolicyTests.RepositoryRoot(), "deploy", .. parts]);
}

using System.Diagnostics;
using System.Text;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// A process a test started, with the temporary directory it works in and everything it writes to stdout and stderr;
/// killed (its whole tree) if still running, and its directory removed, on dispose.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly StringBuilder _output = new();

    private ChildProcess(Process process, string directory)
    {
        Process = process;
        Directory = directory;
    }

    public Process Process { get; }

    /// <summary>The temporary directory the process works in.</summary>
    public string Directory { get; }

    /// <summary>What it has written so far, stdout and stderr interleaved by line.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts <paramref name="info"/> (its output redirected here), owning <paramref name="directory"/>.</summary>
    public static ChildProcess Start(ProcessStartInfo info, string directory, string name)
    {
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        var process = System.Diagnostics.Process.Start(info) ?? throw new InvalidOperationException($"{name} did not start.");
        var child = new ChildProcess(process, directory);
        process.OutputDataReceived += (_, e) => child.Append(e.Data);
        process.ErrorDataReceived += (_, e) => child.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    public void Dispose()
    {
        try
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                Process.WaitForExit(10_000);
            }
        }
        finally
        {
            Process.Dispose();
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }
}

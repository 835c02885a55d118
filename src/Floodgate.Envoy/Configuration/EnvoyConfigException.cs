namespace Floodgate.Envoy.Configuration;

/// <summary>
/// An envoyproxy/ratelimit configuration file that cannot be loaded. The message names the file, the line and the key
/// at fault, such as <c>rules.yaml: line 7: unknown key 'requests_per_minute' in rate_limit</c>.
/// </summary>
public sealed class EnvoyConfigException : Exception
{
    /// <summary>Creates an exception with a message.</summary>
    public EnvoyConfigException()
        : this("The rate limit configuration is invalid.")
    {
    }

    /// <summary>Creates an exception with a message.</summary>
    public EnvoyConfigException(string message)
        : base(message)
    {
        FileName = string.Empty;
    }

    /// <summary>Creates an exception with a message and its cause.</summary>
    public EnvoyConfigException(string message, Exception innerException)
        : base(message, innerException)
    {
        FileName = string.Empty;
    }

    internal EnvoyConfigException(string fileName, long line, string problem, Exception? innerException = null)
        : this(fileName, line, 0, problem, innerException)
    {
    }

    internal EnvoyConfigException(string fileName, long line, long column, string problem, Exception? innerException = null)
        : base(
            line <= 0 ? $"{fileName}: {problem}" : column > 0 ? $"{fileName}: line {line}, column {column}: {problem}" : $"{fileName}: line {line}: {problem}",
            innerException)
    {
        FileName = fileName;
        Line = line;
        Column = column;
        Problem = problem;
    }

    /// <summary>The file at fault, as named when it was loaded.</summary>
    public string FileName { get; }

    /// <summary>The line at fault, from 1; 0 when the problem concerns the whole file.</summary>
    public long Line { get; }

    /// <summary>The column at fault, from 1, for a YAML syntax error; otherwise 0.</summary>
    public long Column { get; }

    /// <summary>The problem without the file and line.</summary>
    public string? Problem { get; }
}

namespace Floodgate.Gateway.Policy;

/// <summary>One problem in a policy file, located by file, line, column and field.</summary>
/// <param name="File">The file.</param>
/// <param name="Line">The line, from 1; 0 when the problem concerns the whole file.</param>
/// <param name="Column">The column, from 1.</param>
/// <param name="Field">The field, as a path such as <c>user[1].limit</c>.</param>
/// <param name="Message">What is wrong, and what would be right.</param>
public sealed record PolicyError(string File, int Line, int Column, string Field, string Message)
{
    /// <summary>The error as <c>file:line:column: field: message</c>.</summary>
    public override string ToString() =>
        Line > 0 ? $"{File}:{Line}:{Column}: {Field}: {Message}" : $"{File}: {Field}: {Message}";
}

/// <summary>A policy file was refused; <see cref="Errors"/> says where and why.</summary>
public sealed class PolicyException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PolicyException(IReadOnlyList<PolicyError> errors)
        : base(Describe(errors))
    {
        Errors = errors;
    }

    /// <summary>Creates the exception with a single message.</summary>
    public PolicyException()
        : this([])
    {
    }

    /// <summary>Creates the exception with a single message.</summary>
    public PolicyException(string message)
        : this([new PolicyError("policy", 0, 0, "(file)", message)])
    {
    }

    /// <summary>Creates the exception with a single message and its cause.</summary>
    public PolicyException(string message, Exception innerException)
        : base(message, innerException)
    {
        Errors = [new PolicyError("policy", 0, 0, "(file)", message)];
    }

    /// <summary>Every problem found.</summary>
    public IReadOnlyList<PolicyError> Errors { get; }

    private static string Describe(IReadOnlyList<PolicyError> errors) =>
        errors.Count == 0 ? "The policy is invalid." : $"The policy is invalid ({errors.Count} error{(errors.Count == 1 ? string.Empty : "s")}):{Environment.NewLine}{string.Join(Environment.NewLine, errors)}";
}

namespace Floodgate.Rules;

/// <summary>
/// A request whose <see cref="IRequestContext.Subject"/> may stand for an anonymous caller (named after its client IP)
/// rather than a validated identity. Such a subject is keyed in a namespace of its own, apart from every validated
/// subject: a token whose subject claim reads like an anonymous caller's name does not share that caller's budget.
/// </summary>
/// <remarks>
/// Optional: a front door whose <see cref="IRequestContext"/> names anonymous callers by a subject of its own making
/// implements it too, as the ASP.NET Core request context does. A request that does not implement it has only validated
/// subjects.
/// </remarks>
public interface IAnonymousSubject
{
    /// <summary>Whether the subject stands for an anonymous caller.</summary>
    bool IsAnonymousSubject { get; }
}

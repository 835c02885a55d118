namespace Floodgate.Rules;

/// <summary>
/// A request whose <see cref="IRequestContext.Subject"/> may stand for an anonymous caller (named after its client IP)
/// rather than a validated identity. Such a subject is keyed in a namespace of its own, apart from every validated
/// subject: a token whose subject claim reads like an anonymous caller's name does not share that caller's budget.
/// </summary>
internal interface IAnonymousSubject
{
    /// <summary>Whether the subject stands for an anonymous caller.</summary>
    bool IsAnonymousSubject { get; }
}

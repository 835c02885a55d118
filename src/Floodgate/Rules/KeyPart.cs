namespace Floodgate.Rules;

/// <summary>What a key part reads from a request.</summary>
public enum KeyPartKind
{
    /// <summary>The client IP (IPv6 grouped by prefix, /64 by default).</summary>
    ClientIp,

    /// <summary>The validated subject.</summary>
    Subject,

    /// <summary>A validated claim, named by <see cref="KeyPart.Name"/>.</summary>
    Claim,

    /// <summary>A request header, named by <see cref="KeyPart.Name"/>.</summary>
    Header,

    /// <summary>The route template: the rule's own when it matches on one, else the request's, else the path.</summary>
    Route,

    /// <summary>The HTTP method.</summary>
    Method,

    /// <summary>The path.</summary>
    Path,

    /// <summary>The host.</summary>
    Host,

    /// <summary>The plan.</summary>
    Plan,

    /// <summary>A constant, given by <see cref="KeyPart.Name"/>.</summary>
    Constant,
}

/// <summary>One part of a rule's key.</summary>
/// <remarks>
/// Written in a policy as <c>client_ip</c>, <c>subject</c>, <c>claim:&lt;name&gt;</c>, <c>header:&lt;name&gt;</c>,
/// <c>route</c>, <c>method</c>, <c>path</c>, <c>host</c>, <c>plan</c> or <c>const:&lt;value&gt;</c>. When a request
/// lacks a part (no subject, no such header), the rule does not apply to it.
/// </remarks>
/// <param name="Kind">What the part reads.</param>
/// <param name="Name">The claim or header name, or the constant; <see langword="null"/> otherwise.</param>
public readonly record struct KeyPart(KeyPartKind Kind, string? Name = null)
{
    /// <summary>The client IP.</summary>
    public static KeyPart ClientIp => new(KeyPartKind.ClientIp);

    /// <summary>The subject.</summary>
    public static KeyPart Subject => new(KeyPartKind.Subject);

    /// <summary>The route template.</summary>
    public static KeyPart Route => new(KeyPartKind.Route);

    /// <summary>The method.</summary>
    public static KeyPart Method => new(KeyPartKind.Method);

    /// <summary>Whether the part names who is calling (IP, subject, claim, header), as opposed to what is called.</summary>
    public bool IsIdentity => Kind is KeyPartKind.ClientIp or KeyPartKind.Subject or KeyPartKind.Claim or KeyPartKind.Header;

    /// <summary>Parses a key part as written in a policy.</summary>
    /// <exception cref="FormatException">The text is not a key part; the message lists the forms.</exception>
    public static KeyPart Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        var colon = trimmed.IndexOf(':', StringComparison.Ordinal);
        var head = (colon < 0 ? trimmed : trimmed[..colon]).ToLowerInvariant();
        var name = colon < 0 ? null : trimmed[(colon + 1)..].Trim();
        KeyPart? part = (head, name) switch
        {
            ("client_ip" or "ip", null) => ClientIp,
            ("subject" or "sub", null) => Subject,
            ("route", null) => Route,
            ("method", null) => Method,
            ("path", null) => new KeyPart(KeyPartKind.Path),
            ("host", null) => new KeyPart(KeyPartKind.Host),
            ("plan", null) => new KeyPart(KeyPartKind.Plan),
            ("claim", { Length: > 0 }) => new KeyPart(KeyPartKind.Claim, name),
            ("header", { Length: > 0 }) => new KeyPart(KeyPartKind.Header, name),
            ("const", { Length: > 0 }) => new KeyPart(KeyPartKind.Constant, name),
            _ => null,
        };
        return part ?? throw new FormatException(
            $"'{text}' is not a key part: use client_ip, subject, claim:<name>, header:<name>, route, method, path, host, plan or const:<value>.");
    }

    /// <summary>The part as a policy writes it.</summary>
    public override string ToString() => Kind switch
    {
        KeyPartKind.ClientIp => "client_ip",
        KeyPartKind.Claim => $"claim:{Name}",
        KeyPartKind.Header => $"header:{Name}",
        KeyPartKind.Constant => $"const:{Name}",
        _ => Kind.ToString().ToLowerInvariant(),
    };
}

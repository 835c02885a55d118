using System.Globalization;

namespace Floodgate.Rules;

/// <summary>
/// A route template in ASP.NET Core's syntax: literal segments, parameters (<c>{id}</c>, <c>{id:int}</c>,
/// <c>{id?}</c> last) and a catch-all (<c>{*rest}</c> or <c>{**rest}</c>) last. <c>/orders/1</c> and <c>/orders/2</c>
/// both match <c>/orders/{id}</c>, and so share its budget when the key names the route.
/// </summary>
/// <remarks>Supported constraints: int, long, guid, alpha, bool. Literals match ignoring case, as ASP.NET Core routing does.</remarks>
public sealed class RouteTemplate
{
    private enum Kind
    {
        Literal,
        Parameter,
        Optional,
        CatchAll,
    }

    private readonly (Kind Kind, string Text, string? Constraint)[] _segments;

    /// <summary>Parses a template.</summary>
    /// <exception cref="FormatException">The template is malformed; the message quotes it and says why.</exception>
    public RouteTemplate(string template)
    {
        ArgumentNullException.ThrowIfNull(template);
        if (!template.StartsWith('/'))
        {
            throw new FormatException($"The route template '{template}' must start with '/'.");
        }

        Template = template;
        var parts = PathGlob.Trim(template.AsSpan()).ToString().Split('/');
        if (parts is [""])
        {
            parts = [];
        }

        _segments = new (Kind, string, string?)[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            var part = parts[i];
            if (!part.StartsWith('{'))
            {
                if (part.Length == 0 || part.Contains('{', StringComparison.Ordinal) || part.Contains('}', StringComparison.Ordinal))
                {
                    throw new FormatException($"The route template '{template}' has a malformed segment '{part}': a segment is a literal or one whole {{parameter}}.");
                }

                _segments[i] = (Kind.Literal, part, null);
                continue;
            }

            if (!part.EndsWith('}') || part.Length < 3)
            {
                throw new FormatException($"The route template '{template}' has a malformed parameter '{part}'.");
            }

            var body = part[1..^1];
            var kind = Kind.Parameter;
            if (body.StartsWith('*'))
            {
                kind = Kind.CatchAll;
                body = body.TrimStart('*');
            }
            else if (body.EndsWith('?'))
            {
                kind = Kind.Optional;
                body = body[..^1];
            }

            string? constraint = null;
            var colon = body.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                constraint = body[(colon + 1)..].ToLowerInvariant();
                body = body[..colon];
                if (constraint is not ("int" or "long" or "guid" or "alpha" or "bool"))
                {
                    throw new FormatException($"The route template '{template}' uses the constraint '{constraint}'; supported: int, long, guid, alpha, bool.");
                }
            }

            if (body.Length == 0)
            {
                throw new FormatException($"The route template '{template}' has a parameter without a name.");
            }

            if (kind != Kind.Parameter && i != parts.Length - 1)
            {
                throw new FormatException($"The route template '{template}' has an optional or catch-all parameter before its last segment.");
            }

            _segments[i] = (kind, body, constraint);
        }
    }

    /// <summary>The template as written.</summary>
    public string Template { get; }

    /// <summary>Whether <paramref name="path"/> matches the template.</summary>
    public bool IsMatch(ReadOnlySpan<char> path)
    {
        var rest = PathGlob.Trim(path);
        foreach (var (kind, text, constraint) in _segments)
        {
            if (kind == Kind.CatchAll)
            {
                return true;
            }

            if (rest.IsEmpty)
            {
                return kind == Kind.Optional;
            }

            var end = rest.IndexOf('/');
            var segment = end < 0 ? rest : rest[..end];
            rest = end < 0 ? [] : rest[(end + 1)..];
            var ok = kind == Kind.Literal
                ? segment.Equals(text, StringComparison.OrdinalIgnoreCase)
                : segment.Length > 0 && Satisfies(constraint, segment);
            if (!ok)
            {
                return false;
            }
        }

        return rest.IsEmpty;
    }

    /// <inheritdoc/>
    public override string ToString() => Template;

    private static bool Satisfies(string? constraint, ReadOnlySpan<char> value) => constraint switch
    {
        null => true,
        "int" => int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _),
        "long" => long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _),
        "guid" => Guid.TryParse(value, out _),
        "bool" => bool.TryParse(value, out _),
        _ => IsAlpha(value),
    };

    private static bool IsAlpha(ReadOnlySpan<char> value)
    {
        foreach (var c in value)
        {
            if (!char.IsAsciiLetter(c))
            {
                return false;
            }
        }

        return true;
    }
}

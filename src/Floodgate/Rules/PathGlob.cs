namespace Floodgate.Rules;

/// <summary>
/// A path pattern: <c>*</c> matches within one segment, <c>?</c> one character, and a <c>**</c> segment any number of
/// segments, so <c>/api/**</c> matches <c>/api</c> and everything below it. Matching ignores case, so that
/// <c>/API/orders</c> cannot slip past a rule written for <c>/api/orders</c>.
/// </summary>
public sealed class PathGlob
{
    private readonly string[] _segments;

    /// <summary>Parses a pattern.</summary>
    /// <exception cref="FormatException">The pattern does not start with '/'.</exception>
    public PathGlob(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (!pattern.StartsWith('/'))
        {
            throw new FormatException($"The path pattern '{pattern}' must start with '/'.");
        }

        Pattern = pattern;
        _segments = Trim(pattern.AsSpan()).ToString().Split('/', StringSplitOptions.None);
        if (_segments is [""])
        {
            _segments = [];
        }
    }

    /// <summary>The pattern as written.</summary>
    public string Pattern { get; }

    /// <summary>Whether <paramref name="path"/> matches.</summary>
    public bool IsMatch(ReadOnlySpan<char> path) => Match(0, Trim(path));

    /// <inheritdoc/>
    public override string ToString() => Pattern;

    internal static ReadOnlySpan<char> Trim(ReadOnlySpan<char> path)
    {
        path = path.TrimStart('/');
        return path.EndsWith("/") ? path[..^1] : path;
    }

    internal static bool SegmentMatches(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || char.ToUpperInvariant(pattern[p]) == char.ToUpperInvariant(text[t])))
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }

    private bool Match(int index, ReadOnlySpan<char> rest)
    {
        if (index == _segments.Length)
        {
            return rest.IsEmpty;
        }

        if (_segments[index] == "**")
        {
            while (true)
            {
                if (Match(index + 1, rest))
                {
                    return true;
                }

                if (rest.IsEmpty)
                {
                    return false;
                }

                var slash = rest.IndexOf('/');
                rest = slash < 0 ? [] : rest[(slash + 1)..];
            }
        }

        if (rest.IsEmpty)
        {
            return false;
        }

        var end = rest.IndexOf('/');
        var segment = end < 0 ? rest : rest[..end];
        return SegmentMatches(_segments[index], segment) && Match(index + 1, end < 0 ? [] : rest[(end + 1)..]);
    }
}

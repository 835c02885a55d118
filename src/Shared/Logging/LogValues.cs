using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Floodgate.Logging;

/// <summary>
/// Makes text a client controls (a path, a subject, a method, an Envoy domain) safe to put in a log line: escaped and cut
/// to a bounded length, so that it can neither forge nor erase lines on a terminal or in a line-oriented collector, nor
/// make one request log a line of any size. Pass the result as the structured value of a log message template, never
/// concatenated into the template. See docs/logging.md.
/// </summary>
/// <remarks>
/// <para>
/// Escaped: C0 controls, DEL and C1 controls (<c>\r</c>, <c>\n</c>, <c>\t</c>, the rest as <c>\xHH</c>, such as
/// <c>\x1B</c>); the line and paragraph separators U+2028 and U+2029 and the bidirectional controls U+061C, U+200E,
/// U+200F, U+202A to U+202E and U+2066 to U+2069 (as <c>\uHHHH</c>); a surrogate that is not half of a pair (as
/// <c>\uHHHH</c>); and the backslash itself (<c>\\</c>), so that an escape in the output always stands for one escaped
/// character and never for text the client sent.
/// </para>
/// <para>
/// Cut: at most <c>maxLength</c> characters of escaped text are kept, never splitting an escape or a surrogate pair,
/// followed by a marker of how many characters of the value were cut, such as <c>…(+9744 chars)</c>.
/// </para>
/// <para>
/// A value with nothing to escape and within the length is returned as is: no allocation on the common path.
/// </para>
/// <para>
/// Compiled into each assembly that logs such text (src/Shared, as ASP.NET Core shares internal sources), so each has its
/// own internal copy.
/// </para>
/// </remarks>
internal static class LogValues
{
    /// <summary>The length, in escaped characters, a value from a request is cut to: paths, subjects, methods, domains.</summary>
    public const int MaxLength = 256;

    /// <summary>The length an error message is cut to, when it may quote what a client or an upstream sent.</summary>
    public const int MaxMessageLength = 1024;

    /// <summary>The longest escape: <c>\uHHHH</c>.</summary>
    private const int LongestEscape = 6;

    /// <summary>Output up to this many characters is built on the stack.</summary>
    private const int StackLength = 512;

    /// <summary>Every character that is escaped, and the surrogates, whose pairs are kept whole and lone ones escaped.</summary>
    private static readonly SearchValues<char> Special = SearchValues.Create(SpecialCharacters());

    /// <summary>Escapes <paramref name="value"/> and cuts it to <paramref name="maxLength"/> characters, as the class describes.</summary>
    /// <param name="value">The text; <see langword="null"/> stays <see langword="null"/>, which the logger writes as <c>(null)</c>.</param>
    /// <param name="maxLength">How many characters of escaped text to keep, at least 1; <see cref="MaxLength"/> by default.</param>
    /// <returns><paramref name="value"/> itself when it needs neither; otherwise its escaped, cut copy.</returns>
    [return: NotNullIfNotNull(nameof(value))]
    public static string? Escape(string? value, int maxLength = MaxLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxLength);
        if (value is null || (value.Length <= maxLength && IsClean(value)))
        {
            return value;
        }

        return Rewrite(value, maxLength);
    }

    /// <summary>Whether nothing in <paramref name="value"/> needs escaping (a surrogate pair does not).</summary>
    private static bool IsClean(ReadOnlySpan<char> value)
    {
        int i;
        while ((i = value.IndexOfAny(Special)) >= 0)
        {
            if (!IsPairAt(value, i))
            {
                return false;
            }

            value = value[(i + 2)..];
        }

        return true;
    }

    private static string Rewrite(string value, int maxLength)
    {
        // Every character escaped at its longest bounds the output too, so a short value never rents a long buffer.
        var capacity = (int)Math.Min(maxLength, (long)value.Length * LongestEscape);
        char[]? rented = null;
        var output = capacity <= StackLength ? stackalloc char[StackLength] : (rented = ArrayPool<char>.Shared.Rent(capacity));
        try
        {
            var written = 0;
            var read = 0;
            Span<char> escape = stackalloc char[LongestEscape];
            while (read < value.Length)
            {
                // A run with nothing to escape is copied at once, as much of it as fits; only what fits is searched, so
                // that a long value costs no more than its kept part.
                var rest = value.AsSpan(read);
                var window = rest[..Math.Min(rest.Length, capacity - written)];
                var run = window.IndexOfAny(Special);
                if (run < 0)
                {
                    run = window.Length;
                }

                window[..run].CopyTo(output[written..]);
                written += run;
                read += run;
                if (read == value.Length || written == capacity)
                {
                    break;
                }

                // What a special character becomes; a surrogate pair is copied whole or not at all.
                var consumed = 1;
                int length;
                var c = value[read];
                if (IsPairAt(rest, run))
                {
                    escape[0] = c;
                    escape[1] = value[read + 1];
                    (length, consumed) = (2, 2);
                }
                else
                {
                    length = EscapeOf(c, escape);
                }

                if (written + length > capacity)
                {
                    break;
                }

                escape[..length].CopyTo(output[written..]);
                written += length;
                read += consumed;
            }

            ReadOnlySpan<char> kept = output[..written];
            return read == value.Length
                ? new string(kept)
                : string.Create(CultureInfo.InvariantCulture, $"{kept}…(+{value.Length - read} chars)");
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
    }

    private static bool IsPairAt(ReadOnlySpan<char> text, int index) =>
        char.IsHighSurrogate(text[index]) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]);

    /// <summary>Writes the escape of <paramref name="c"/> (a special character, not half of a pair) to <paramref name="escape"/>.</summary>
    /// <returns>Its length.</returns>
    private static int EscapeOf(char c, Span<char> escape)
    {
        escape[0] = '\\';
        switch (c)
        {
            case '\\':
                escape[1] = '\\';
                return 2;
            case '\r':
                escape[1] = 'r';
                return 2;
            case '\n':
                escape[1] = 'n';
                return 2;
            case '\t':
                escape[1] = 't';
                return 2;
            case <= '\u00FF':
                escape[1] = 'x';
                ((byte)c).TryFormat(escape[2..], out _, "X2", CultureInfo.InvariantCulture);
                return 4;
            default:
                escape[1] = 'u';
                ((ushort)c).TryFormat(escape[2..], out _, "X4", CultureInfo.InvariantCulture);
                return 6;
        }
    }

    private static string SpecialCharacters()
    {
        var special = new System.Text.StringBuilder();
        AppendRange(special, '\u0000', '\u001F'); // C0
        special.Append('\\');
        AppendRange(special, '\u007F', '\u009F'); // DEL, C1
        special.Append('\u061C').Append('\u200E').Append('\u200F'); // bidirectional marks
        AppendRange(special, '\u2028', '\u202E'); // line and paragraph separators, bidirectional embeddings and overrides
        AppendRange(special, '\u2066', '\u2069'); // bidirectional isolates
        AppendRange(special, '\uD800', '\uDFFF'); // surrogates: a pair is kept, a lone one escaped
        return special.ToString();

        static void AppendRange(System.Text.StringBuilder builder, char first, char last)
        {
            for (var c = first; c <= last; c++)
            {
                builder.Append(c);
            }
        }
    }
}

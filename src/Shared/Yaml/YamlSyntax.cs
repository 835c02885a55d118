using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;
using Token = YamlDotNet.Core.Tokens.Token;
using Tokens = YamlDotNet.Core.Tokens;

namespace Floodgate.Yaml;

/// <summary>
/// Reads a YAML file's text (the gateway's policy, the Envoy service's configuration files), and refuses text that is not
/// YAML with the line and column of the mistake and what was expected there, in our words. YamlDotNet's own errors are not enough for that: some carry a mark far from the
/// mistake (a tab used as indentation is reported at 1:1, or at the line before), some come as an
/// <see cref="InvalidOperationException"/> with no mark at all (a flow collection left open), and their wording names the
/// scanner's states rather than what to write. So the text is loaded through a parser that remembers where it got to,
/// and a failure is explained from that, from the scanner's position and from the text itself.
/// </summary>
internal static class YamlSyntax
{
    /// <summary>Loads <paramref name="text"/> as a YAML stream.</summary>
    /// <exception cref="YamlSyntaxException">The text is not YAML, or repeats a key or names an undefined anchor; it says where and why.</exception>
    public static YamlStream Load(string text)
    {
        var scanner = new Scanner(new StringReader(text));
        var parser = new TrackingParser(new Parser(scanner), text);
        var stream = new YamlStream();
        try
        {
            stream.Load(parser);
            return stream;
        }
        catch (YamlException e)
        {
            var (at, message) = parser.Problem ?? Explain(text, parser, e.Message, e.Start, e.End);
            throw new YamlSyntaxException(at, message);
        }
        catch (InvalidOperationException)
        {
            // The scanner throws this, with no mark, when a line inside an open '[' or '{' is not indented under the
            // collection's field; where the scanner stopped is that line.
            var (at, message) = Unindented(text, scanner.CurrentPosition);
            throw new YamlSyntaxException(at, message);
        }
        catch (ArgumentException)
        {
            // The tree builder throws this on events it does not expect, which the parser emits for some malformed
            // mappings the tracking parser does not recognize; the last event read is as near as is known.
            throw new YamlSyntaxException(parser.LastGood, Unknown);
        }
    }

    private const string Unknown =
        "this is not valid YAML: expected a field ('name: value'), a list entry ('- value') or a value, indented with spaces, with every quote and bracket closed.";

    /// <summary>Where the mistake behind YamlDotNet's error is, and what was expected there.</summary>
    private static (Mark At, string Message) Explain(string text, TrackingParser parser, string error, Mark start, Mark end)
    {
        var lower = error.ToLowerInvariant();
        if (lower.Contains(" tab ", StringComparison.Ordinal))
        {
            // YamlDotNet marks the mapping or the scalar before the tab, not the tab: the first line after the last
            // event read whose indentation holds a tab is the one.
            var tab = TabInIndentation(text, parser.LastGood.Index);
            return (tab ?? start, "a tab indents this line, and YAML indents with spaces only: expected spaces here.");
        }

        if (lower.Contains("quoted scalar", StringComparison.Ordinal))
        {
            return Quoted(text, lower, start, end);
        }

        if (AtEnd(text, start) && OpenBracket(text, text.Length) is { } unclosed)
        {
            return (unclosed.Start, unclosed is Tokens.FlowMappingStart
                ? "this '{' is never closed: expected '}' after the last field of the mapping it opens."
                : "this '[' is never closed: expected ']' after the last entry of the list it opens.");
        }

        if (lower.Contains("flow mapping", StringComparison.Ordinal) || lower.Contains("flow sequence", StringComparison.Ordinal))
        {
            var open = OpenBracket(text, start.Index);
            var where = open is null ? string.Empty : $" opened at {Position(open.Start)}";
            return (start, open is Tokens.FlowMappingStart || (open is null && lower.Contains("mapping", StringComparison.Ordinal))
                ? $"expected ',' before this field, or '}}' to close the mapping{where}."
                : $"expected ',' before this entry, or ']' to close the list{where}.");
        }

        if (lower.Contains("did not find expected key", StringComparison.Ordinal) || lower.Contains("did not find expected '-' indicator", StringComparison.Ordinal))
        {
            return (start, OutOfLine(parser, start));
        }

        if (lower.Contains("invalid mapping", StringComparison.Ordinal))
        {
            return ContinuedValue(text, start);
        }

        return (start, lower switch
        {
            _ when lower.Contains("mapping values are not allowed", StringComparison.Ordinal) =>
                "a ':' followed by a space cannot go here: expected one 'name: value' per line, or the value in quotes.",
            _ when lower.Contains("block sequence entries are not allowed", StringComparison.Ordinal) =>
                "a list entry ('- ') cannot start here: expected it on a line of its own, indented under its field.",
            _ when lower.Contains("could not find expected ':'", StringComparison.Ordinal) =>
                "expected ':' after this field name, on the same line.",
            _ when lower.Contains("cannot start any token", StringComparison.Ordinal) =>
                $"'{CharacterAt(text, start)}' cannot start a value: expected the value in quotes.",
            _ when lower.Contains("node content", StringComparison.Ordinal) || lower.Contains("did not find expected token", StringComparison.Ordinal) =>
                "expected a value here.",
            _ when lower.Contains("more than one anchor", StringComparison.Ordinal) =>
                "a value takes one anchor (&name): expected only one here.",
            _ when lower.Contains("anchor before sequence entry", StringComparison.Ordinal) =>
                "an anchor cannot come before a list entry's '-': expected it after the '- '.",
            _ when lower.Contains("anchor or alias", StringComparison.Ordinal) =>
                "an anchor or alias name cannot hold '[', ']', '{', '}' or ',': expected a plain name, such as &limits.",
            _ when lower.Contains("directive", StringComparison.Ordinal) =>
                "this directive is malformed: expected '%YAML 1.2' or '%TAG !handle! prefix' (a file needs neither).",
            _ when lower.Contains("tag", StringComparison.Ordinal) =>
                "this tag is malformed: expected a tag such as !!str, followed by a space.",
            _ when lower.Contains("block scalar", StringComparison.Ordinal) =>
                "this block value is malformed: expected '|' or '>' (with at most an indentation digit and '-' or '+') alone at the end of its line, then its lines indented alike.",
            _ when lower.Contains("comment", StringComparison.Ordinal) =>
                "a '#' comment cannot go here: expected it at the end of a line, after a space.",
            _ when lower.Contains("key indicator", StringComparison.Ordinal) =>
                "'?' starts an explicit key: expected a space after it.",
            _ when lower.Contains("document", StringComparison.Ordinal) =>
                "expected '---' alone on its line to start a document, or '...' to end one (a file is one document, and needs neither).",
            _ when lower.Contains("end of the stream", StringComparison.Ordinal) =>
                "the file ends too early: expected the rest of the value started above.",
            _ => Unknown,
        });
    }

    /// <summary>A quoted value YamlDotNet could not finish: <paramref name="start"/> is its opening quote.</summary>
    private static (Mark At, string Message) Quoted(string text, string error, Mark start, Mark end)
    {
        var quote = CharacterAt(text, start) is '\'' ? "'" : "\"";
        if (error.Contains("escape", StringComparison.Ordinal) || error.Contains("hexadecimal", StringComparison.Ordinal) || error.Contains("unicode", StringComparison.Ordinal))
        {
            // The end mark is where the escape goes wrong: its backslash, or its first bad digit.
            var at = (int)Math.Min(end.Index, text.Length);
            var escape = text.Substring(at, Math.Min(2, text.Length - at));
            return error.Contains("unknown escape", StringComparison.Ordinal) && escape.Length == 2
                ? (end, $"'{escape}' is not an escape: expected one such as \\n, \\t, \\\" or \\\\ (or the value in single quotes, where a backslash is plain).")
                : (end, "this escape does not give a valid character: expected \\x and 2, \\u and 4, or \\U and 8 hexadecimal digits.");
        }

        if (error.Contains("wrong indentation", StringComparison.Ordinal))
        {
            return (start, $"this quoted value is not closed before line {end.Line}, which is not indented as its continuation: expected a closing {quote}, or line {end.Line} indented deeper.");
        }

        if (error.Contains("document indicator", StringComparison.Ordinal))
        {
            return (start, $"this quoted value runs into the '---' or '...' on line {end.Line}: expected a closing {quote} before it.");
        }

        return (start, $"this quoted value is never closed: expected a closing {quote} after it.");
    }

    /// <summary>A line inside an open '[' or '{' that is not indented under the collection's field.</summary>
    private static (Mark At, string Message) Unindented(string text, Mark stopped)
    {
        var open = OpenBracket(text, stopped.Index);
        if (open is null)
        {
            return (stopped, "this line is not indented under the field it continues: expected it indented deeper, with spaces.");
        }

        return (open.Start, open is Tokens.FlowMappingStart
            ? $"the mapping this '{{' opens is still open at line {stopped.Line}, which is not indented under its field: expected '}}' to close it before line {stopped.Line}."
            : $"the list this '[' opens is still open at line {stopped.Line}, which is not indented under its field: expected ']' to close it before line {stopped.Line}.");
    }

    /// <summary>A line at a column where neither the open block collection nor the one just closed has its entries.</summary>
    private static string OutOfLine(TrackingParser parser, Mark at)
    {
        if (parser.Open is not { Flow: false } open)
        {
            return "this line is out of line with the lines above it: expected it in line with the fields or list entries it belongs with.";
        }

        if (open.Start.Column == at.Column)
        {
            return open.Mapping
                ? $"expected a field, 'name: value', like {Sibling(open)}."
                : $"expected a list entry, '- value', like {Sibling(open)}.";
        }

        var expected = $"column {open.Start.Column}, in line with {Sibling(open)}";
        if (parser.JustClosed is { Flow: false } inner && inner.Start.Column != open.Start.Column && inner.Start.Column != at.Column)
        {
            expected += $", or column {inner.Start.Column}, in line with {Sibling(inner)}";
        }

        return $"this line starts at column {at.Column}, out of line with the lines above it: expected {expected}.";
    }

    private static string Sibling(Frame frame) => frame.Mapping
        ? frame.LastKey is { } key ? $"'{key}' on line {frame.LastKeyLine}" : $"the field on line {frame.Start.Line}"
        : $"the '-' on line {frame.LastEntryLine}";

    /// <summary>
    /// A ':' the scanner found in a value spread over several lines: the line is indented deeper than the one before it
    /// (so it continues that line's value), or the line before has no ':' after its name.
    /// </summary>
    private static (Mark At, string Message) ContinuedValue(string text, Mark colon)
    {
        var lines = Lines(text);
        var line = (int)colon.Line - 1;
        var previous = line - 1;
        while (previous >= 0 && IsBlankOrComment(lines[previous]))
        {
            previous--;
        }

        if (line >= lines.Count || previous < 0)
        {
            return (colon, "a ':' followed by a space cannot go here: expected one 'name: value' per line, or the value in quotes.");
        }

        var indent = Indentation(lines[line]);
        var previousIndent = Indentation(lines[previous]);
        if (indent > previousIndent)
        {
            return (new Mark(0, line + 1, indent + 1), $"this line is indented deeper than line {previous + 1}, so it continues that line's value, which cannot hold a 'name: value': expected it at column {previousIndent + 1}, in line with the field above.");
        }

        return (new Mark(0, previous + 1, previousIndent + 1), $"expected ':' after the field name on this line (line {line + 1} reads as the rest of its value).");
    }

    /// <summary>The first tab in the indentation of a line that starts at or after <paramref name="from"/> and holds something.</summary>
    private static Mark? TabInIndentation(string text, long from)
    {
        var lines = Lines(text);
        var lineStart = 0;
        for (var i = 0; i < lines.Count; i++)
        {
            var line = lines[i];
            if (lineStart >= from)
            {
                var indent = Indentation(line, tabs: true);
                var tab = line.AsSpan(0, indent).IndexOf('\t');
                if (tab >= 0 && indent < line.TrimEnd('\r').Length)
                {
                    return new Mark(lineStart + tab, i + 1, tab + 1);
                }
            }

            lineStart += line.Length + 1;
        }

        return null;
    }

    /// <summary>
    /// The innermost '[' or '{' still open at <paramref name="until"/>, from the scanner's tokens of the text before it
    /// (the parser may fail before it has surfaced the bracket, which the scanner read ahead).
    /// </summary>
    private static Token? OpenBracket(string text, long until)
    {
        var open = new Stack<Token>();
        var scanner = new Scanner(new StringReader(text[..(int)Math.Clamp(until, 0, text.Length)]));
        try
        {
            while (scanner.MoveNext())
            {
                switch (scanner.Current)
                {
                    case Tokens.FlowSequenceStart or Tokens.FlowMappingStart:
                        open.Push(scanner.Current);
                        break;
                    case Tokens.FlowSequenceEnd or Tokens.FlowMappingEnd:
                        open.TryPop(out _);
                        break;
                }
            }
        }
        catch (Exception e) when (e is YamlException or InvalidOperationException)
        {
            // The brackets read so far are all there is to know.
        }

        return open.TryPeek(out var innermost) ? innermost : null;
    }

    private static bool AtEnd(string text, Mark mark) => mark.Index >= text.Length || string.IsNullOrWhiteSpace(text[(int)mark.Index..]);

    private static char CharacterAt(string text, Mark mark) => mark.Index < text.Length ? text[(int)mark.Index] : ' ';

    private static string Position(Mark mark) => string.Create(CultureInfo.InvariantCulture, $"{mark.Line}:{mark.Column}");

    private static List<string> Lines(string text) => [.. text.Split('\n')];

    private static bool IsBlankOrComment(string line) => string.IsNullOrWhiteSpace(line) || line.TrimStart().StartsWith('#');

    private static int Indentation(string line, bool tabs = false)
    {
        var i = 0;
        while (i < line.Length && (line[i] == ' ' || (tabs && line[i] == '\t')))
        {
            i++;
        }

        return i;
    }

    /// <summary>An open collection, as the parser's events gave it.</summary>
    private sealed class Frame(bool mapping, bool flow, Mark start)
    {
        public bool Mapping => mapping;

        public bool Flow => flow;

        public Mark Start => start;

        public int Children { get; set; }

        public Dictionary<string, Mark> Keys { get; } = new(StringComparer.Ordinal);

        public string? LastKey { get; set; }

        public long LastKeyLine { get; set; }

        public long LastEntryLine { get; set; }
    }

    /// <summary>
    /// Passes the parser's events on and remembers where it got to: the collections open, the one just closed, the end of
    /// the last event read. It also refuses a key given twice in one mapping (naming both places) and an alias to no
    /// anchor, before YamlDotNet does with a message of its own and, for the alias, no position; and a ':' with no name
    /// before it at the start of a line after a nested collection, for which the parser emits a value with no key (the
    /// tree builder then fails with an <see cref="ArgumentException"/> at the end of the mapping).
    /// </summary>
    private sealed class TrackingParser(IParser inner, string text) : IParser
    {
        private readonly Stack<Frame> _open = new();
        private readonly HashSet<string> _anchors = new(StringComparer.Ordinal);

        public ParsingEvent? Current => inner.Current;

        /// <summary>Where the last event read ends.</summary>
        public Mark LastGood { get; private set; } = Mark.Empty;

        /// <summary>The innermost collection open.</summary>
        public Frame? Open => _open.TryPeek(out var frame) ? frame : null;

        /// <summary>The collection the last event closed, if it closed one.</summary>
        public Frame? JustClosed { get; private set; }

        /// <summary>A mistake found here rather than by YamlDotNet.</summary>
        public (Mark At, string Message)? Problem { get; private set; }

        public bool MoveNext()
        {
            if (!inner.MoveNext())
            {
                return false;
            }

            var current = inner.Current!;
            JustClosed = null;
            switch (current)
            {
                case DocumentStart:
                    _anchors.Clear();
                    break;
                case AnchorAlias alias:
                    if (!_anchors.Contains(alias.Value.Value))
                    {
                        Fail(alias.Start, $"*{alias.Value.Value} refers to no anchor: expected &{alias.Value.Value} on a value before it.");
                    }

                    Child(alias, null);
                    break;
                case Scalar scalar:
                    Anchor(scalar);
                    Child(scalar, scalar.Value);
                    break;
                case MappingStart mapping:
                    Anchor(mapping);
                    Child(mapping, null);
                    _open.Push(new Frame(true, mapping.Style == MappingStyle.Flow, mapping.Start));
                    break;
                case SequenceStart sequence:
                    Anchor(sequence);
                    Child(sequence, null);
                    _open.Push(new Frame(false, sequence.Style == SequenceStyle.Flow, sequence.Start));
                    break;
                case MappingEnd or SequenceEnd:
                    JustClosed = _open.Pop();
                    break;
            }

            LastGood = current.End;
            return true;
        }

        private void Anchor(NodeEvent node)
        {
            if (!node.Anchor.IsEmpty)
            {
                _anchors.Add(node.Anchor.Value);
            }
        }

        /// <summary>Counts a node of the open collection, checking it against the keys before it when it is a key.</summary>
        private void Child(ParsingEvent node, string? key)
        {
            if (Open is not { } parent)
            {
                return;
            }

            if (!parent.Mapping)
            {
                parent.LastEntryLine = node.Start.Line;
            }
            else if (parent.Children % 2 == 0 && key is not null)
            {
                if (key.Length == 0 && !parent.Flow && node is Scalar { Style: ScalarStyle.Plain } && node.Start.Index > 0 && text[(int)node.Start.Index - 1] == ':')
                {
                    Fail(new Mark(node.Start.Index - 1, node.Start.Line, node.Start.Column - 1), "this ':' has no field name before it: expected 'name: value'.");
                }

                // Keys are compared as the policy reads them: by their text.
                if (parent.Keys.TryGetValue(key, out var first))
                {
                    Fail(node.Start, $"'{key}' is given twice in this mapping (first on line {first.Line}): expected each field once.");
                }

                parent.Keys[key] = node.Start;
                parent.LastKey = key;
                parent.LastKeyLine = node.Start.Line;
            }

            parent.Children++;
        }

        private void Fail(Mark at, string message)
        {
            Problem = (at, message);
            throw new YamlException(at, at, message);
        }
    }
}

/// <summary>Text that is not YAML: where the mistake is (line and column from 1) and what was expected there.</summary>
internal sealed class YamlSyntaxException(Mark at, string problem) : Exception(problem)
{
    /// <summary>The line of the mistake, from 1.</summary>
    public int Line { get; } = (int)at.Line;

    /// <summary>The column of the mistake, from 1.</summary>
    public int Column { get; } = (int)at.Column;
}

namespace Floodgate.Client.Fields;

/// <summary>
/// One member of a <c>RateLimit</c> or <c>RateLimit-Policy</c> list (RFC 8941 Structured Field Values): the policy's
/// name and the parameters pacing reads; texts are ranges of the field's text (nothing is copied).
/// </summary>
internal struct LimitItem
{
    /// <summary>The member's name: a String's content with its escapes kept, or a Token; empty for other bare items.</summary>
    public Range Name;

    /// <summary><c>q</c>: the quota; −1 when absent or not a non-negative Integer.</summary>
    public long Quota;

    /// <summary><c>w</c>: the window in seconds; −1 when absent or not a non-negative Integer.</summary>
    public long Window;

    /// <summary><c>r</c>: what remains; −1 when absent or not a non-negative Integer.</summary>
    public long Remaining;

    /// <summary><c>t</c>: seconds until the quota is fully available again; −1 when absent or not a non-negative Integer.</summary>
    public long Reset;

    /// <summary><c>pk</c>: the partition key, a Byte Sequence's base64 text; empty when absent.</summary>
    public Range PartitionKey;

    /// <summary><c>qu</c>: the quota unit (<c>requests</c>, <c>content-bytes</c>, <c>concurrent-requests</c>); empty when absent.</summary>
    public Range Unit;
}

/// <summary>
/// Reads an RFC 8941 List member by member without allocating. A field that does not parse is ignored whole, as RFC
/// 8941 says: read every member, and use what was read only when <see cref="Failed"/> stays false at the end.
/// </summary>
internal ref struct StructuredListReader
{
    private readonly ReadOnlySpan<char> _text;
    private int _position;
    private bool _expectMember;

    public StructuredListReader(ReadOnlySpan<char> text)
    {
        _text = text;
        while (_position < _text.Length && _text[_position] == ' ')
        {
            _position++;
        }
    }

    /// <summary>Whether the field broke the grammar; then no member of it may be used.</summary>
    public bool Failed { get; private set; }

    /// <summary>Reads the next member; false at the end of the list or on a syntax error (<see cref="Failed"/>).</summary>
    public bool TryRead(out LimitItem item)
    {
        item = new LimitItem { Quota = -1, Window = -1, Remaining = -1, Reset = -1 };
        if (Failed)
        {
            return false;
        }

        if (_position >= _text.Length)
        {
            // A comma must be followed by a member: "a, " is not a list.
            Failed = _expectMember;
            return false;
        }

        if (!ReadMember(ref item) || !ReadParameters(ref item))
        {
            Failed = true;
            return false;
        }

        SkipOptionalWhitespace();
        _expectMember = false;
        if (_position < _text.Length)
        {
            if (_text[_position] != ',')
            {
                Failed = true;
                return false;
            }

            _position++;
            SkipOptionalWhitespace();
            _expectMember = true;
            if (_position >= _text.Length)
            {
                Failed = true;
                return false;
            }
        }

        return true;
    }

    private bool ReadMember(ref LimitItem item)
    {
        if (_text[_position] != '(')
        {
            return ReadBareItem(out item.Name, out _);
        }

        // An inner list names no policy: parse it for the syntax, keep nothing.
        _position++;
        while (true)
        {
            while (_position < _text.Length && _text[_position] == ' ')
            {
                _position++;
            }

            if (_position >= _text.Length)
            {
                return false;
            }

            if (_text[_position] == ')')
            {
                _position++;
                item.Name = default;
                return true;
            }

            var discard = new LimitItem();
            if (!ReadBareItem(out _, out _) || !ReadParameters(ref discard))
            {
                return false;
            }

            if (_position >= _text.Length || (_text[_position] != ' ' && _text[_position] != ')'))
            {
                return false;
            }
        }
    }

    private bool ReadParameters(ref LimitItem item)
    {
        while (_position < _text.Length && _text[_position] == ';')
        {
            _position++;
            while (_position < _text.Length && _text[_position] == ' ')
            {
                _position++;
            }

            var keyStart = _position;
            if (_position >= _text.Length || !(IsLowerAlpha(_text[_position]) || _text[_position] == '*'))
            {
                return false;
            }

            _position++;
            while (_position < _text.Length && IsKeyChar(_text[_position]))
            {
                _position++;
            }

            var key = _text[keyStart.._position];
            Range value = default;
            long? integer = null;
            var kind = BareKind.Boolean;
            if (_position < _text.Length && _text[_position] == '=')
            {
                _position++;
                if (!ReadBareItem(out value, out kind, out integer))
                {
                    return false;
                }
            }

            // A later parameter of the same key overrides an earlier one (RFC 8941 §3.1.2).
            var count = integer is >= 0 ? integer.Value : -1;
            switch (key)
            {
                case "q": item.Quota = count; break;
                case "w": item.Window = count; break;
                case "r": item.Remaining = count; break;
                case "t": item.Reset = count; break;
                case "pk": item.PartitionKey = kind == BareKind.ByteSequence ? value : default; break;
                case "qu": item.Unit = kind is BareKind.String or BareKind.Token ? value : default; break;
                default: break;
            }
        }

        return true;
    }

    private bool ReadBareItem(out Range text, out BareKind kind) => ReadBareItem(out text, out kind, out _);

    private bool ReadBareItem(out Range text, out BareKind kind, out long? integer)
    {
        text = default;
        kind = BareKind.Boolean;
        integer = null;
        if (_position >= _text.Length)
        {
            return false;
        }

        var c = _text[_position];
        if (c == '"')
        {
            kind = BareKind.String;
            var start = ++_position;
            while (_position < _text.Length)
            {
                c = _text[_position];
                if (c == '\\')
                {
                    if (_position + 1 >= _text.Length || _text[_position + 1] is not ('"' or '\\'))
                    {
                        return false;
                    }

                    _position += 2;
                }
                else if (c == '"')
                {
                    text = start.._position;
                    _position++;
                    return true;
                }
                else if (c < ' ' || c > '~')
                {
                    return false;
                }
                else
                {
                    _position++;
                }
            }

            return false;
        }

        if (c == ':')
        {
            kind = BareKind.ByteSequence;
            var start = ++_position;
            while (_position < _text.Length && IsBase64(_text[_position]))
            {
                _position++;
            }

            if (_position >= _text.Length || _text[_position] != ':')
            {
                return false;
            }

            text = start.._position;
            _position++;
            return true;
        }

        if (c == '?')
        {
            kind = BareKind.Boolean;
            if (_position + 1 >= _text.Length || _text[_position + 1] is not ('0' or '1'))
            {
                return false;
            }

            _position += 2;
            return true;
        }

        if (c == '-' || char.IsAsciiDigit(c))
        {
            return ReadNumber(out kind, out integer);
        }

        if (char.IsAsciiLetter(c) || c == '*')
        {
            kind = BareKind.Token;
            var start = _position++;
            while (_position < _text.Length && IsTokenChar(_text[_position]))
            {
                _position++;
            }

            text = start.._position;
            return true;
        }

        return false;
    }

    private bool ReadNumber(out BareKind kind, out long? integer)
    {
        kind = BareKind.Integer;
        integer = null;
        var negative = _text[_position] == '-';
        if (negative)
        {
            _position++;
        }

        long value = 0;
        int digits = 0, fraction = -1;
        while (_position < _text.Length)
        {
            var c = _text[_position];
            if (char.IsAsciiDigit(c))
            {
                if (fraction >= 0)
                {
                    if (++fraction > 3)
                    {
                        return false;
                    }
                }
                else
                {
                    if (++digits > 15)
                    {
                        return false;
                    }

                    value = (value * 10) + (c - '0');
                }
            }
            else if (c == '.' && fraction < 0)
            {
                if (digits is 0 or > 12)
                {
                    return false;
                }

                fraction = 0;
            }
            else
            {
                break;
            }

            _position++;
        }

        if (digits == 0 || fraction == 0)
        {
            return false;
        }

        if (fraction > 0)
        {
            kind = BareKind.Decimal;
            return true;
        }

        integer = negative ? -value : value;
        return true;
    }

    private void SkipOptionalWhitespace()
    {
        while (_position < _text.Length && _text[_position] is ' ' or '\t')
        {
            _position++;
        }
    }

    private static bool IsLowerAlpha(char c) => c is >= 'a' and <= 'z';

    private static bool IsKeyChar(char c) => IsLowerAlpha(c) || char.IsAsciiDigit(c) || c is '_' or '-' or '.' or '*';

    private static bool IsBase64(char c) => char.IsAsciiLetterOrDigit(c) || c is '+' or '/' or '=';

    // tchar (RFC 9110) plus ':' and '/'.
    private static bool IsTokenChar(char c) =>
        char.IsAsciiLetterOrDigit(c) || c is '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~' or ':' or '/';

    private enum BareKind
    {
        Boolean,
        Integer,
        Decimal,
        String,
        Token,
        ByteSequence,
    }
}

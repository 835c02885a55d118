using System.Buffers;
using System.Text;
using System.Text.Json;
using Floodgate.Costs;

namespace Floodgate.AspNetCore.Costs;

/// <summary>
/// Finds the usage an upstream reports in a response body as it streams by: the OpenAI-style <c>usage</c> object
/// (<c>prompt_tokens</c>, <c>completion_tokens</c>, <c>total_tokens</c>, or the <c>input_tokens</c> and
/// <c>output_tokens</c> newer APIs use) and the <c>model</c>, in a JSON body or in the events of a
/// <c>text/event-stream</c> (where the usage comes in the last events).
/// </summary>
/// <remarks>
/// <para>
/// Nothing is buffered: each chunk is looked at once, after it has gone to the client, by a small lexer that knows only
/// whether it is inside a JSON string. It skips to the next quote or line end with a vectorized search, so a chunk costs
/// about a memory scan. When a key <c>"usage"</c> is followed by an object, that object alone is copied (at most
/// <see cref="MaxUsageBytes"/>; a larger one is dropped as malformed) and read; a usage split across chunks is
/// reassembled byte by byte. A later usage replaces an earlier one field by field, so a stream that reports input
/// tokens first and output tokens last is charged both. A line end ends any string: JSON strings hold no raw line
/// ends, so a malformed event cannot blind the lexer for the rest of the stream.
/// </para>
/// <para>Memory is bounded: one buffer of <see cref="MaxUsageBytes"/>, rented when a usage object starts.</para>
/// </remarks>
internal sealed class UsageScanner
{
    /// <summary>The largest usage object read; a larger one is malformed for this purpose.</summary>
    public const int MaxUsageBytes = 4096;

    private const int MaxModelBytes = 200;

    private static readonly SearchValues<byte> OutsideString = SearchValues.Create("\"\n"u8);
    private static readonly SearchValues<byte> InsideString = SearchValues.Create("\"\\\n"u8);

    private readonly CostReport _report;
    private Phase _phase;
    private bool _inString;
    private bool _escaped;

    // The key being read: which of "usage" and "model" it can still be, and how far.
    private int _keyAt;
    private bool _mayBeUsage;
    private bool _mayBeModel;
    private Key _key;

    // The usage object or model name being copied.
    private byte[]? _capture;
    private int _captured;
    private int _depth;

    public UsageScanner(CostReport report) => _report = report;

    private enum Phase : byte
    {
        Scanning,
        AfterKey,
        AfterColon,
        CapturingObject,
        CapturingModel,
    }

    private enum Key : byte
    {
        None,
        Usage,
        Model,
    }

    /// <summary>Usage objects found and read.</summary>
    public int Found { get; private set; }

    /// <summary>Usage objects dropped: too large, cut by a line end inside a string, or not JSON.</summary>
    public int Malformed { get; private set; }

    /// <summary>Looks at the next chunk of the body.</summary>
    public void Feed(ReadOnlySpan<byte> data)
    {
        var i = 0;
        while (i < data.Length)
        {
            switch (_phase)
            {
                case Phase.Scanning:
                    i = Scan(data, i);
                    break;
                case Phase.AfterKey:
                    i = AfterKey(data, i);
                    break;
                case Phase.AfterColon:
                    i = AfterColon(data, i);
                    break;
                case Phase.CapturingObject:
                    i = CaptureObject(data, i);
                    break;
                default:
                    i = CaptureModel(data, i);
                    break;
            }
        }
    }

    /// <summary>Gives the capture buffer back; the scanner reads nothing more.</summary>
    public void Complete()
    {
        if (_phase == Phase.CapturingObject)
        {
            Malformed++;
        }

        Reset();
    }

    private int Scan(ReadOnlySpan<byte> data, int i)
    {
        if (!_inString)
        {
            var next = data[i..].IndexOfAny(OutsideString);
            if (next < 0)
            {
                return data.Length;
            }

            i += next;
            if (data[i] == (byte)'"')
            {
                _inString = true;
                _escaped = false;
                _keyAt = 0;
                _mayBeUsage = true;
                _mayBeModel = _report.Model is null;
            }

            return i + 1;
        }

        // Inside a string: a key of interest is followed byte by byte; anything else jumps to the string's end.
        while (i < data.Length)
        {
            if (!_mayBeUsage && !_mayBeModel && !_escaped)
            {
                var next = data[i..].IndexOfAny(InsideString);
                if (next < 0)
                {
                    return data.Length;
                }

                i += next;
            }

            var b = data[i++];
            if (_escaped)
            {
                _escaped = false;
                continue;
            }

            switch (b)
            {
                case (byte)'\n':
                    _inString = false;
                    return i;
                case (byte)'\\':
                    _escaped = true;
                    _mayBeUsage = _mayBeModel = false;
                    continue;
                case (byte)'"':
                    _inString = false;
                    var key = _keyAt == 5 ? (_mayBeUsage ? Key.Usage : _mayBeModel ? Key.Model : Key.None) : Key.None;
                    if (key != Key.None)
                    {
                        _key = key;
                        _phase = Phase.AfterKey;
                    }

                    return i;
            }

            _mayBeUsage &= _keyAt < 5 && b == "usage"u8[_keyAt];
            _mayBeModel &= _keyAt < 5 && b == "model"u8[_keyAt];
            _keyAt++;
        }

        return i;
    }

    private int AfterKey(ReadOnlySpan<byte> data, int i)
    {
        var b = data[i];
        if (IsSpace(b))
        {
            return i + 1;
        }

        // A key is followed by a colon; a string that is a value is not, and is read again as ordinary text.
        _phase = b == (byte)':' ? Phase.AfterColon : Phase.Scanning;
        return b == (byte)':' ? i + 1 : i;
    }

    private int AfterColon(ReadOnlySpan<byte> data, int i)
    {
        var b = data[i];
        if (IsSpace(b))
        {
            return i + 1;
        }

        if (_key == Key.Usage && b == (byte)'{')
        {
            Begin(Phase.CapturingObject);
            _depth = 0;
            return i;
        }

        if (_key == Key.Model && b == (byte)'"')
        {
            Begin(Phase.CapturingModel);
            return i + 1;
        }

        // "usage": null, or a model that is not a string: ordinary text.
        _phase = Phase.Scanning;
        return i;
    }

    private int CaptureObject(ReadOnlySpan<byte> data, int i)
    {
        var start = i;
        while (i < data.Length)
        {
            var b = data[i++];
            if (_inString)
            {
                if (_escaped)
                {
                    _escaped = false;
                }
                else if (b == (byte)'\\')
                {
                    _escaped = true;
                }
                else if (b == (byte)'"')
                {
                    _inString = false;
                }
                else if (b == (byte)'\n')
                {
                    // No JSON string holds a raw line end: the object is malformed, and the line starts afresh.
                    _inString = false;
                    Drop();
                    return i;
                }

                continue;
            }

            if (b == (byte)'"')
            {
                _inString = true;
            }
            else if (b == (byte)'{')
            {
                _depth++;
            }
            else if (b == (byte)'}' && --_depth == 0)
            {
                if (!Append(data[start..i]))
                {
                    return i;
                }

                Read(_capture.AsSpan(0, _captured));
                Reset();
                return i;
            }
        }

        Append(data[start..i]);
        return i;
    }

    private int CaptureModel(ReadOnlySpan<byte> data, int i)
    {
        var end = data[i..].IndexOfAny(InsideString);
        if (end < 0)
        {
            if (_captured + (data.Length - i) > MaxModelBytes)
            {
                // Too long for a model name: the rest of the string is ordinary text.
                Reset();
                _inString = true;
                _mayBeUsage = _mayBeModel = false;
            }
            else
            {
                Append(data[i..]);
            }

            return data.Length;
        }

        var b = data[i + end];
        if (b == (byte)'"' && _captured + end <= MaxModelBytes)
        {
            Append(data.Slice(i, end));
            _report.Model = Encoding.UTF8.GetString(_capture.AsSpan(0, _captured));
        }

        // An escape in a model name, a line end, or a name too long: no model. After an escape the string goes on.
        Reset();
        _inString = b == (byte)'\\';
        _escaped = _inString;
        _mayBeUsage = _mayBeModel = false;
        return i + end + 1;
    }

    private void Begin(Phase phase)
    {
        _phase = phase;
        _capture ??= ArrayPool<byte>.Shared.Rent(MaxUsageBytes);
        _captured = 0;
        _inString = false;
        _escaped = false;
    }

    /// <summary>Copies part of the object; <see langword="false"/>, dropping it, when it grows past the limit.</summary>
    private bool Append(ReadOnlySpan<byte> part)
    {
        if (_captured + part.Length > MaxUsageBytes)
        {
            Drop();
            return false;
        }

        part.CopyTo(_capture.AsSpan(_captured));
        _captured += part.Length;
        return true;
    }

    private void Drop()
    {
        Malformed++;
        Reset();
    }

    private void Reset()
    {
        _phase = Phase.Scanning;
        _captured = 0;
        if (_capture is not null)
        {
            ArrayPool<byte>.Shared.Return(_capture);
            _capture = null;
        }
    }

    private void Read(ReadOnlySpan<byte> usage)
    {
        long? input = null, output = null, total = null;
        try
        {
            var reader = new Utf8JsonReader(usage);
            reader.Read();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.ValueSpan;
                var escaped = reader.ValueIsEscaped;
                reader.Read();
                if (!escaped && reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0)
                {
                    if (name.SequenceEqual("prompt_tokens"u8) || name.SequenceEqual("input_tokens"u8))
                    {
                        input = value;
                    }
                    else if (name.SequenceEqual("completion_tokens"u8) || name.SequenceEqual("output_tokens"u8))
                    {
                        output = value;
                    }
                    else if (name.SequenceEqual("total_tokens"u8))
                    {
                        total = value;
                    }
                }
                else
                {
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            Malformed++;
            return;
        }

        Found++;
        _report.InputTokens = input ?? _report.InputTokens;
        _report.OutputTokens = output ?? _report.OutputTokens;

        // A total that no longer adds up (input or output came later) is dropped for the sum.
        _report.TotalTokens = total ?? (input is null && output is null ? _report.TotalTokens : null);
    }

    private static bool IsSpace(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n';
}

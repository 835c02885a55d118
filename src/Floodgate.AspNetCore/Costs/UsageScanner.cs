using System.Buffers;
using System.Text;
using System.Text.Json;
using Floodgate.Costs;

namespace Floodgate.AspNetCore.Costs;

/// <summary>
/// Finds the usage an upstream reports in a response body as it streams by: the OpenAI-style <c>usage</c> object
/// (<c>prompt_tokens</c>, <c>completion_tokens</c>, <c>total_tokens</c>, or the <c>input_tokens</c> and
/// <c>output_tokens</c> newer APIs use) and, when a rule prices by it, the <c>model</c>, in a JSON body or in the events
/// of a <c>text/event-stream</c> (where the usage comes in the last events).
/// </summary>
/// <remarks>
/// <para>
/// Nothing is buffered: each chunk is looked at once, after it has gone to the client, by one vectorized search for the
/// key <c>"usage"</c> (and <c>"model"</c> until one is found, when a rule needs it), so a chunk costs about a memory
/// scan, with no work per string or per byte. A match is a key only when the last byte before it, whitespace aside, is
/// <c>{</c> or <c>,</c>: inside a JSON string a quote is escaped (<c>\"usage\"</c> does not match) and a quote that ends a
/// string is never followed by a bare word, so in valid JSON this tells keys from text exactly. A key cut by the end of
/// a read is carried over (how much of it was seen, and the byte before it), so reads may split the body anywhere.
/// When the key is followed by a colon and an object, that object alone is copied (at most
/// <see cref="MaxUsageBytes"/>; a larger one is dropped as malformed) and read; a usage split across chunks is
/// reassembled. A later usage replaces an earlier one field by field, so a stream that reports input tokens first and
/// output tokens last is charged both. A line end inside a string of the usage object drops it: JSON strings hold no
/// raw line ends, so a malformed event cannot swallow the rest of the stream.
/// </para>
/// <para>Memory is bounded: one buffer of <see cref="MaxUsageBytes"/>, rented when a usage object starts.</para>
/// </remarks>
internal sealed class UsageScanner
{
    /// <summary>The largest usage object read; a larger one is malformed for this purpose.</summary>
    public const int MaxUsageBytes = 4096;

    private const int MaxModelBytes = 200;

    private static readonly SearchValues<byte> InsideString = SearchValues.Create("\"\\\n"u8);

    private readonly CostReport _report;
    private bool _readsModel;
    private Phase _phase;
    private Key _key;

    // The last byte fed that is not whitespace, and a key cut by the end of the last chunk: how many of its bytes were
    // seen (0: none), and the last byte that is not whitespace before it.
    private byte _last;
    private int _usageSeen;
    private byte _beforeUsage;
    private int _modelSeen;
    private byte _beforeModel;

    // The usage object or model name being copied.
    private byte[]? _capture;
    private int _captured;
    private int _depth;
    private bool _inString;
    private bool _escaped;

    /// <summary>A scanner that fills <paramref name="report"/>.</summary>
    /// <param name="report">The request's report.</param>
    /// <param name="readsModel">Whether to read the response's <c>model</c> (a rule prices tokens by it).</param>
    public UsageScanner(CostReport report, bool readsModel = true)
    {
        _report = report;
        _readsModel = readsModel;
    }

    private enum Phase : byte
    {
        Searching,
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

    private static ReadOnlySpan<byte> UsageKey => "\"usage\""u8;

    private static ReadOnlySpan<byte> ModelKey => "\"model\""u8;

    private bool WantsModel => _readsModel && _report.Model is null;

    /// <summary>Looks at the next chunk of the body.</summary>
    public void Feed(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        var i = _phase == Phase.Searching && (_usageSeen | _modelSeen) != 0 ? Resume(data) : 0;
        while (i < data.Length)
        {
            switch (_phase)
            {
                case Phase.Searching:
                    i = Search(data, i);
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

        var last = data.LastIndexOfAnyExcept(Whitespace);
        if (last >= 0)
        {
            _last = data[last];
        }
    }

    /// <summary>Gives the capture buffer back; the scanner reads nothing more.</summary>
    public void Complete()
    {
        if (_phase == Phase.CapturingObject)
        {
            Malformed++;
        }

        _usageSeen = _modelSeen = 0;
        Reset();
    }

    private static ReadOnlySpan<byte> Whitespace => " \t\r\n"u8;

    /// <summary>Finds the next key from <paramref name="i"/>; at the end, remembers a key the chunk ends in the middle of.</summary>
    private int Search(ReadOnlySpan<byte> data, int i)
    {
        var rest = data[i..];
        var at = rest.IndexOf(UsageKey);
        var key = Key.Usage;
        if (WantsModel)
        {
            // Only as far as a usage key: the model of a stream comes before its usage.
            var model = (at < 0 ? rest : rest[..at]).IndexOf(ModelKey);
            if (model >= 0)
            {
                at = model;
                key = Key.Model;
            }
        }

        if (at < 0)
        {
            CarryCutKey(data, i);
            return data.Length;
        }

        at += i;
        if (!IsKeyStart(Before(data, at)))
        {
            // Text that looks like a key: look again from its second byte (a key may start at its closing quote).
            return at + 1;
        }

        _key = key;
        _phase = Phase.AfterKey;
        return at + UsageKey.Length;
    }

    /// <summary>The last byte before <paramref name="at"/> that is not whitespace, in this chunk or the ones before.</summary>
    private byte Before(ReadOnlySpan<byte> data, int at)
    {
        var before = data[..at].LastIndexOfAnyExcept(Whitespace);
        return before >= 0 ? data[before] : _last;
    }

    private static bool IsKeyStart(byte before) => before is (byte)'{' or (byte)',';

    /// <summary>Remembers how much of a key the chunk ends with (from <paramref name="from"/>), for the next chunk.</summary>
    private void CarryCutKey(ReadOnlySpan<byte> data, int from)
    {
        _usageSeen = CutKey(data, from, UsageKey);
        _beforeUsage = _usageSeen > 0 ? Before(data, data.Length - _usageSeen) : (byte)0;
        _modelSeen = WantsModel ? CutKey(data, from, ModelKey) : 0;
        _beforeModel = _modelSeen > 0 ? Before(data, data.Length - _modelSeen) : (byte)0;
    }

    /// <summary>How many bytes of <paramref name="key"/> the chunk ends with (0 to its length minus one).</summary>
    private static int CutKey(ReadOnlySpan<byte> data, int from, ReadOnlySpan<byte> key)
    {
        for (var seen = Math.Min(key.Length - 1, data.Length - from); seen > 0; seen--)
        {
            if (data[^seen..].SequenceEqual(key[..seen]))
            {
                return seen;
            }
        }

        return 0;
    }

    /// <summary>Goes on with a key the last chunk ended in the middle of; where to search from.</summary>
    private int Resume(ReadOnlySpan<byte> data)
    {
        var (usage, model) = (_usageSeen, _modelSeen);
        _usageSeen = _modelSeen = 0;
        if (usage > 0 && TryResume(data, UsageKey, usage, _beforeUsage, Key.Usage, ref _usageSeen, out var next))
        {
            return next;
        }

        if (model > 0 && WantsModel && TryResume(data, ModelKey, model, _beforeModel, Key.Model, ref _modelSeen, out next))
        {
            return next;
        }

        return 0;
    }

    private bool TryResume(ReadOnlySpan<byte> data, ReadOnlySpan<byte> key, int seen, byte before, Key which, ref int stillSeen, out int next)
    {
        var rest = key[seen..];
        next = 0;
        if (data.Length < rest.Length)
        {
            // Still cut: the whole chunk is more of the key.
            if (!data.SequenceEqual(rest[..data.Length]))
            {
                return false;
            }

            stillSeen = seen + data.Length;
            next = data.Length;
            return true;
        }

        if (!data.StartsWith(rest) || !IsKeyStart(before))
        {
            return false;
        }

        _key = which;
        _phase = Phase.AfterKey;
        next = rest.Length;
        return true;
    }

    private int AfterKey(ReadOnlySpan<byte> data, int i)
    {
        var b = data[i];
        if (IsSpace(b))
        {
            return i + 1;
        }

        // A key is followed by a colon; a string that is a value is not, and is read again as ordinary text.
        _phase = b == (byte)':' ? Phase.AfterColon : Phase.Searching;
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
        _phase = Phase.Searching;
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
                // Too long for a model name: the rest of the string is searched as any text is.
                Reset();
                return i;
            }

            Append(data[i..]);
            return data.Length;
        }

        if (data[i + end] == (byte)'"' && _captured + end <= MaxModelBytes)
        {
            Append(data.Slice(i, end));
            _report.Model = Encoding.UTF8.GetString(_capture.AsSpan(0, _captured));
        }

        // An escape in a model name, a line end, or a name too long: no model; the search goes on after it.
        Reset();
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

    /// <summary>Makes the scanner new for the next response of a reused step: nothing found, nothing carried over.</summary>
    /// <param name="readsModel">Whether to read the response's <c>model</c>.</param>
    public void Restart(bool readsModel)
    {
        Reset();
        _readsModel = readsModel;
        _last = 0;
        _usageSeen = _modelSeen = 0;
        _beforeUsage = _beforeModel = 0;
        _key = Key.None;
        _depth = 0;
        _inString = _escaped = false;
        Found = Malformed = 0;
    }

    private void Reset()
    {
        _phase = Phase.Searching;
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

using System.IO.Pipelines;
using Floodgate.AspNetCore.Http;
using Floodgate.Costs;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Floodgate.AspNetCore.Costs;

/// <summary>
/// The cost step of one request that holds reservations: its report (the request's <see cref="ICostReportFeature"/>)
/// and, when a rule reads usage from the response, its response body: every write goes to the client first, unchanged
/// and unbuffered, then its bytes go past the <see cref="UsageScanner"/>, when the response is JSON or an event stream.
/// </summary>
/// <remarks>
/// <para>
/// Put in place of the body feature for the rest of the pipeline, as ASP.NET Core's response compression does: the
/// stream for writers of <see cref="HttpResponse.Body"/> (YARP copies the upstream's body there), a pipe over it for
/// writers of <see cref="HttpResponse.BodyWriter"/>. Flushes pass straight through, so an event reaches the client when
/// its writer flushes it.
/// </para>
/// <para>
/// One object is the step, the body and the report's owner, and it is reused: the middleware rents one per request that
/// reserves and gives it back once the request is settled (a cache of one per thread), so a request that reserves
/// allocates nothing for its step, its scanner or its report, as Kestrel reuses its own response stream. What the
/// request was given stops being its own when it ends: the report and the body are not to be kept past the response.
/// </para>
/// </remarks>
internal sealed class CostStep : Stream, IHttpResponseBodyFeature, ICostReportFeature
{
    [ThreadStatic]
    private static CostStep? t_cached;

    private readonly UsageScanner _scanner;
    private readonly CostTrailers _trailerFeature = new();
    private CostPlan _plan = null!;
    private HttpContext _context = null!;
    private IHttpResponseBodyFeature? _inner;
    private Stream _innerStream = Null;
    private bool _installedTrailers;
    private PipeWriter? _writer;
    private bool? _scans;

    private CostStep()
    {
        _scanner = new UsageScanner(Report);
    }

    /// <inheritdoc/>
    public CostReport Report { get; } = new();

    /// <summary>
    /// Starts the step of an admitted request: its cost report on the features, and its response body scanned for usage
    /// when a rule reads it from there. The caller runs the rest of the pipeline, then calls <see cref="End"/>, settles,
    /// and gives the step back with <see cref="Return"/>.
    /// </summary>
    public static CostStep Rent(HttpRequestContext request, CostPlan plan)
    {
        var step = t_cached ?? new CostStep();
        t_cached = null;
        step.Begin(request, plan);
        return step;
    }

    /// <summary>Gives the step back once the request has been settled; it must not be used after.</summary>
    public void Return()
    {
        _plan = null!;
        _context = null!;
        _inner = null;
        _innerStream = Null;
        _writer = null;
        _scans = null;
        _installedTrailers = false;
        _trailerFeature.Trailers.Clear();
        Report.InputTokens = Report.OutputTokens = Report.TotalTokens = Report.Units = null;
        Report.Model = null;
        Report.StatusCode = null;
        t_cached = this;
    }

    /// <summary>
    /// Ends the step once the rest of the pipeline has run: the body and features as they were, a cost header or
    /// trailer read; how the request ended, for its settlement.
    /// </summary>
    /// <param name="threw">Whether the rest of the pipeline threw.</param>
    public RequestCompletion End(bool threw)
    {
        var features = _context.Features;
        if (_inner is not null)
        {
            _scanner.Complete();
            features.Set(_inner);
        }

        features.Set<ICostReportFeature>(null);
        ReadHeaders();
        Report.StatusCode = _context.Response.StatusCode;
        if (_installedTrailers)
        {
            features.Set<IHttpResponseTrailersFeature>(null);
        }

        return threw || _context.RequestAborted.IsCancellationRequested || _context.Response.StatusCode >= 500
            ? RequestCompletion.Failed
            : RequestCompletion.Completed;
    }

    private void Begin(HttpRequestContext request, CostPlan plan)
    {
        _plan = plan;
        _context = request.HttpContext;
        foreach (var rule in plan.FieldRules)
        {
            // A model named by the request prices the tokens, whatever the response says.
            Report.Model ??= rule.Costs!.ModelField is { } field ? request.GetField(field) : null;
        }

        var features = _context.Features;
        features.Set<ICostReportFeature>(this);
        if (plan.ReadsBody && features.Get<IHttpResponseBodyFeature>() is { } body)
        {
            _inner = body;
            _innerStream = body.Stream;
            _scanner.Restart(plan.ReadsModel);
            features.Set<IHttpResponseBodyFeature>(this);
        }

        if (plan.Headers.Length > 0 && features.Get<IHttpResponseTrailersFeature>() is null)
        {
            // HTTP/1.1 carries no trailers to the client, so the server offers none, and a proxy (YARP) copies the
            // upstream's trailers only where there is somewhere to copy them: here, to be read, never sent.
            _installedTrailers = true;
            features.Set<IHttpResponseTrailersFeature>(_trailerFeature);
        }
    }

    /// <summary>A cost in a response header, or in a trailer (which wins: it is written when the cost is known).</summary>
    private void ReadHeaders()
    {
        if (_plan.Headers.Length == 0 || Report.Units is not null)
        {
            return;
        }

        var trailers = _context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers;
        foreach (var name in _plan.Headers)
        {
            if ((trailers is not null && Parse(trailers[name]) is { } fromTrailer ? fromTrailer : Parse(_context.Response.Headers[name])) is { } units)
            {
                Report.Units = units;
                return;
            }
        }

        static long? Parse(string? text) =>
            long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value) ? value : null;
    }

    // The body: IHttpResponseBodyFeature and Stream.

    /// <inheritdoc/>
    Stream IHttpResponseBodyFeature.Stream => this;

    /// <inheritdoc/>
    public PipeWriter Writer => _writer ??= PipeWriter.Create(this, new StreamPipeWriterOptions(leaveOpen: true));

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public void DisableBuffering() => Inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default) => Inner.StartAsync(cancellationToken);

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) =>
        SendFileFallback.SendFileAsync(this, path, offset, count, cancellationToken);

    public async Task CompleteAsync()
    {
        var inner = Inner;
        if (_writer is not null)
        {
            await _writer.FlushAsync().ConfigureAwait(false);
        }

        await inner.CompleteAsync().ConfigureAwait(false);
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        _innerStream.Write(buffer);
        Scan(buffer);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // The client first: the scan never delays a byte. A write that completes at once (the usual case: the server
        // buffers it) costs no state machine.
        var write = _innerStream.WriteAsync(buffer, cancellationToken);
        if (!write.IsCompletedSuccessfully)
        {
            return ScanAfterAsync(write, buffer);
        }

        write.GetAwaiter().GetResult();
        Scan(buffer.Span);
        return default;
    }

    public override void Flush() => _innerStream.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => _innerStream.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>The body feature this one wraps; a step given back has none, and refuses rather than write elsewhere.</summary>
    private IHttpResponseBodyFeature Inner => _inner ?? throw new ObjectDisposedException(nameof(CostStep), "The request's response has ended.");

    private async ValueTask ScanAfterAsync(ValueTask write, ReadOnlyMemory<byte> buffer)
    {
        await write.ConfigureAwait(false);
        Scan(buffer.Span);
    }

    private void Scan(ReadOnlySpan<byte> bytes)
    {
        // Decided at the first write, when the headers are final: only JSON and event streams report usage.
        _scans ??= ReportsUsage(_context.Response.ContentType);
        if (_scans.Value)
        {
            _scanner.Feed(bytes);
        }
    }

    private static bool ReportsUsage(string? contentType) =>
        contentType is not null
        && (contentType.Contains("json", StringComparison.OrdinalIgnoreCase)
            || contentType.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase));

    /// <summary>Trailers kept for reading where the connection cannot send them (HTTP/1.1).</summary>
    private sealed class CostTrailers : IHttpResponseTrailersFeature
    {
        public IHeaderDictionary Trailers { get; set; } = new HeaderDictionary();
    }
}

using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Floodgate.AspNetCore.Costs;

/// <summary>
/// The response body of a request that holds cost reservations: every write goes to the client first, unchanged and
/// unbuffered, then its bytes go past the <see cref="UsageScanner"/>, when the response is JSON or an event stream.
/// </summary>
/// <remarks>
/// Put in place of the body feature for the rest of the pipeline, as ASP.NET Core's response compression does: the
/// stream for writers of <see cref="HttpResponse.Body"/> (YARP copies the upstream's body there), a pipe over it for
/// writers of <see cref="HttpResponse.BodyWriter"/>. Flushes pass straight through, so an event reaches the client when
/// its writer flushes it.
/// </remarks>
internal sealed class UsageScanningBody : Stream, IHttpResponseBodyFeature
{
    private readonly IHttpResponseBodyFeature _inner;
    private readonly Stream _innerStream;
    private readonly HttpResponse _response;
    private readonly UsageScanner _scanner;
    private PipeWriter? _writer;
    private bool? _scans;

    public UsageScanningBody(IHttpResponseBodyFeature inner, HttpResponse response, UsageScanner scanner)
    {
        _inner = inner;
        _innerStream = inner.Stream;
        _response = response;
        _scanner = scanner;
    }

    public Stream Stream => this;

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

    public void DisableBuffering() => _inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default) => _inner.StartAsync(cancellationToken);

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) =>
        SendFileFallback.SendFileAsync(this, path, offset, count, cancellationToken);

    public async Task CompleteAsync()
    {
        if (_writer is not null)
        {
            await _writer.FlushAsync().ConfigureAwait(false);
        }

        await _inner.CompleteAsync().ConfigureAwait(false);
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

    private async ValueTask ScanAfterAsync(ValueTask write, ReadOnlyMemory<byte> buffer)
    {
        await write.ConfigureAwait(false);
        Scan(buffer.Span);
    }

    private void Scan(ReadOnlySpan<byte> bytes)
    {
        // Decided at the first write, when the headers are final: only JSON and event streams report usage.
        _scans ??= ReportsUsage(_response.ContentType);
        if (_scans.Value)
        {
            _scanner.Feed(bytes);
        }
    }

    private static bool ReportsUsage(string? contentType) =>
        contentType is not null
        && (contentType.Contains("json", StringComparison.OrdinalIgnoreCase)
            || contentType.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase));
}

using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Floodgate.Gateway.Tests.Traffic;

/// <summary>
/// Large bodies through the gateway: streamed both ways in flat memory, a route's own body size limit (and none), and
/// a body over its limit answered 413 and counted as the client's error, not the upstream's.
/// </summary>
[Collection(MeasuredCollection.Name)]
public sealed class LargeBodyTests(ITestOutputHelper output)
{
    private const long Size = 200L * 1024 * 1024;
    private const long Limit = 100_000_000;

    private static string Policy(TrafficUpstream upstream) => $$"""
        routes:
          - id: open
            path: /open/{**rest}
            destinations: [{{upstream.Url}}]
            max_request_body_size: unlimited
          - id: limited
            path: /limited/{**rest}
            destinations: [{{upstream.Url}}]
            max_request_body_size: 100MB
        """;

    [Fact]
    public async Task A_200_MiB_upload_and_download_stream_through_the_gateway_in_flat_memory()
    {
        await using var upstream = await TrafficUpstream.StartAsync();
        await using var gate = await TrafficGateway.StartAsync(Policy(upstream));
        using var client = gate.Client();

        // Warm up (JIT, pools, connections), so that the baseline holds what a running gateway holds.
        Assert.Equal("1048576", await UploadAsync(client, "/open/upload", 1024 * 1024));
        Assert.Equal(1024 * 1024, await DownloadAsync(client, "/open/download/1048576"));

        var upload = await MeasureAsync(async () => Assert.Equal(Size.ToString(CultureInfo.InvariantCulture), await UploadAsync(client, "/open/upload", Size)));
        var download = await MeasureAsync(async () => Assert.Equal(Size, await DownloadAsync(client, $"/open/download/{Size}")));
        output.WriteLine($"upload   {upload}");
        output.WriteLine($"download {download}");

        // Buffered, either body would add 200 MiB; streamed, what grows is the garbage of the copies' buffers between
        // collections. (Client, gateway and upstream share this process: all three are measured together.)
        Assert.True(upload.PeakManagedGrowth < 64L * 1024 * 1024, $"upload: {upload}");
        Assert.True(download.PeakManagedGrowth < 64L * 1024 * 1024, $"download: {download}");
    }

    [Fact]
    public async Task A_route_limited_to_100_MB_answers_413_to_a_larger_body_as_a_client_error_and_the_unlimited_route_takes_it()
    {
        await using var upstream = await TrafficUpstream.StartAsync();
        await using var gate = await TrafficGateway.StartAsync(Policy(upstream), level: LogLevel.Debug);
        using var client = gate.Client();

        // Declared too large: refused before the client sends it (it waits for 100 Continue, which never comes).
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/limited/upload") { Content = new GeneratedContent(Limit + 1) })
        {
            request.Headers.ExpectContinue = true;
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        }

        // Chunked, no length given: refused once the gateway has read the 100 MB the route allows.
        Assert.StartsWith("HTTP/1.1 413 ", await ChunkedUploadAsync(gate.Host.ProxyAddress, "/limited/upload", Limit + 64 * 1024));

        // Under the limit on the limited route, and over it on the unlimited one, the body goes through.
        Assert.Equal("1000", await UploadAsync(client, "/limited/upload", 1000));
        Assert.Equal((Limit + 1).ToString(CultureInfo.InvariantCulture), await UploadAsync(client, "/open/upload", Limit + 1));

        // Both refusals are the client's: logged at Debug with Kestrel's reason, never as an upstream failure.
        var lines = gate.Logs.GetSnapshot().Where(e => e.Category == "Floodgate.Gateway.Proxy").ToList();
        Assert.Equal(2, lines.Count(l => l.Level == LogLevel.Debug && l.Message.Contains("RequestBodyClient", StringComparison.Ordinal) && l.Message.EndsWith("answered 413", StringComparison.Ordinal)));
        Assert.DoesNotContain(lines, l => l.Level >= LogLevel.Warning);
    }

    private static async Task<string> UploadAsync(HttpClient client, string path, long size)
    {
        using var response = await client.PostAsync(new Uri(path, UriKind.Relative), new GeneratedContent(size));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    private static async Task<long> DownloadAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(new Uri(path, UriKind.Relative), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64 * 1024];
        long total = 0;
        int read;
        while ((read = await body.ReadAsync(buffer)) > 0)
        {
            total += read;
        }

        return total;
    }

    /// <summary>
    /// Sends a chunked body of <paramref name="size"/> bytes on a socket while reading the answer, so that an answer sent
    /// before the body ends (the 413) is read before the server closes; the answer's status line and headers.
    /// </summary>
    private static async Task<string> ChunkedUploadAsync(Uri gateway, string path, long size)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var socket = new TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, gateway.Port, timeout.Token);
        var stream = socket.GetStream();
        var head = new StringBuilder();
        var reading = Task.Run(
            async () =>
            {
                var buffer = new byte[4096];
                int read;
                while (!head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal) && (read = await stream.ReadAsync(buffer, timeout.Token)) > 0)
                {
                    head.Append(Encoding.ASCII.GetString(buffer, 0, read));
                }
            },
            timeout.Token);

        try
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"POST {path} HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n\r\n"), timeout.Token);
            var chunk = new byte[64 * 1024];
            var prefix = Encoding.ASCII.GetBytes($"{chunk.Length:X}\r\n");
            for (long sent = 0; sent < size && !reading.IsCompleted; sent += chunk.Length)
            {
                await stream.WriteAsync(prefix, timeout.Token);
                await stream.WriteAsync(chunk, timeout.Token);
                await stream.WriteAsync("\r\n"u8.ToArray(), timeout.Token);
            }
        }
        catch (IOException)
        {
            // The gateway closed the connection on the refused body: the answer is what it wrote before.
        }

        await reading;
        return head.ToString();
    }

    private static async Task<Measurement> MeasureAsync(Func<Task> transfer)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var process = Process.GetCurrentProcess();
        var managed = GC.GetTotalMemory(forceFullCollection: true);
        process.Refresh();
        var workingSet = process.WorkingSet64;
        long peakManaged = managed, peakWorkingSet = workingSet;
        using var done = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                peakManaged = Math.Max(peakManaged, GC.GetTotalMemory(forceFullCollection: false));
                process.Refresh();
                peakWorkingSet = Math.Max(peakWorkingSet, process.WorkingSet64);
                await Task.Delay(10, CancellationToken.None);
            }
        });
        var clock = Stopwatch.StartNew();
        var allocated = GC.GetTotalAllocatedBytes();
        await transfer();
        var elapsed = clock.Elapsed;
        await done.CancelAsync();
        await sampler;
        return new Measurement(managed, peakManaged, workingSet, peakWorkingSet, GC.GetTotalAllocatedBytes() - allocated, elapsed);
    }

    private sealed record Measurement(long Managed, long PeakManaged, long WorkingSet, long PeakWorkingSet, long Allocated, TimeSpan Elapsed)
    {
        public long PeakManagedGrowth => PeakManaged - Managed;

        public override string ToString() => string.Create(
            CultureInfo.InvariantCulture,
            $"{Size / 1024 / 1024} MiB in {Elapsed.TotalSeconds:0.00} s: managed heap {Mib(Managed)} -> peak {Mib(PeakManaged)} (+{Mib(PeakManagedGrowth)}), working set {Mib(WorkingSet)} -> peak {Mib(PeakWorkingSet)} (+{Mib(PeakWorkingSet - WorkingSet)}), allocated {Mib(Allocated)}");

        private static string Mib(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0 / 1024.0:0.0} MiB");
    }
}

/// <summary>A request body of a given size, generated as it is sent (never held in memory), with its length declared.</summary>
internal sealed class GeneratedContent(long size) : HttpContent
{
    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        var chunk = new byte[64 * 1024];
        for (var remaining = size; remaining > 0; remaining -= chunk.Length)
        {
            await stream.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, remaining)));
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = size;
        return true;
    }
}

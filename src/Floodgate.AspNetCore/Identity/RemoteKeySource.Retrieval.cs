using System.Globalization;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.AspNetCore.Identity;

// How the documents are fetched and read, and how each fetch is reported to the source.
internal sealed partial class RemoteKeySource
{
    /// <summary>Reads a bare JWKS document into a configuration.</summary>
    private sealed class JwksRetriever : IConfigurationRetriever<OpenIdConnectConfiguration>
    {
        public async Task<OpenIdConnectConfiguration> GetConfigurationAsync(string address, IDocumentRetriever retriever, CancellationToken cancel)
        {
            var document = await retriever.GetDocumentAsync(address, cancel).ConfigureAwait(false);
            var configuration = new OpenIdConnectConfiguration { JwksUri = address, JsonWebKeySet = new JsonWebKeySet(document) };
            foreach (var key in configuration.JsonWebKeySet.GetSigningKeys())
                configuration.SigningKeys.Add(key);
            return configuration;
        }
    }

    /// <summary>
    /// Fetches a metadata document over HTTP. Not IdentityModel's <see cref="HttpDocumentRetriever"/>: its failures read
    /// "IDX20807 … [PII is hidden]", and ours must say which URL answered what, in one line fit for the log.
    /// </summary>
    private sealed class DocumentRetriever(HttpClient client, bool requireHttps) : IDocumentRetriever
    {
        public async Task<string> GetDocumentAsync(string address, CancellationToken cancel)
        {
            if (requireHttps && !address.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
                throw new IOException($"{address} is not an https:// address, and metadata must be fetched over https.");
            try
            {
                using var response = await client.GetAsync(new Uri(address), cancel).ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                    throw new IOException(string.Create(CultureInfo.InvariantCulture, $"{address} answered HTTP {(int)response.StatusCode} ({response.ReasonPhrase})."));
                return await response.Content.ReadAsStringAsync(cancel).ConfigureAwait(false);
            }
            catch (HttpRequestException ex)
            {
                throw new IOException($"{address} cannot be reached: {ex.Message}", ex);
            }
            catch (TaskCanceledException ex) when (!cancel.IsCancellationRequested)
            {
                throw new IOException(string.Create(CultureInfo.InvariantCulture, $"{address} did not answer within {client.Timeout.TotalSeconds:0.###} s."), ex);
            }
        }

        /// <summary>A failed fetch in one line: its own message, not IdentityModel's wrapping of it.</summary>
        public static string Describe(Exception exception)
        {
            while (exception is InvalidOperationException { InnerException: { } inner } && exception.Message.StartsWith("IDX", StringComparison.Ordinal))
                exception = inner;
            var message = exception.Message.ReplaceLineEndings(" ").Trim();
            return message.EndsWith('.') ? message : message + ".";
        }
    }

    /// <summary>
    /// Wraps a retriever: reports each fetch to the source (its start, success or failure), counts it, and signals each
    /// completed one to the requests waiting for it.
    /// </summary>
    private sealed class SignalingRetriever(RemoteKeySource source, IConfigurationRetriever<OpenIdConnectConfiguration> inner, IdentityMetrics metrics)
        : IConfigurationRetriever<OpenIdConnectConfiguration>
    {
        private TaskCompletionSource<OpenIdConnectConfiguration?> _next = NewSignal();
        private OpenIdConnectConfiguration? _latest;

        public OpenIdConnectConfiguration? Latest => Volatile.Read(ref _latest);

        public Task<OpenIdConnectConfiguration?> NextRetrieval => Volatile.Read(ref _next).Task;

        public async Task<OpenIdConnectConfiguration> GetConfigurationAsync(string address, IDocumentRetriever retriever, CancellationToken cancel)
        {
            OpenIdConnectConfiguration? configuration = null;
            source.FetchStarting();
            try
            {
                configuration = await inner.GetConfigurationAsync(address, retriever, cancel).ConfigureAwait(false);
                Volatile.Write(ref _latest, configuration);
                metrics.KeyRefresh(success: true);
                source.Fetched();
                return configuration;
            }
            catch (Exception ex)
            {
                metrics.KeyRefresh(success: false);
                source.FetchFailed(ex);
                throw;
            }
            finally
            {
                Interlocked.Exchange(ref _next, NewSignal()).TrySetResult(configuration);
            }
        }

        private static TaskCompletionSource<OpenIdConnectConfiguration?> NewSignal() =>
            new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

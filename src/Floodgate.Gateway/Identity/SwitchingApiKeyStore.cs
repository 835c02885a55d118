using System.Diagnostics.CodeAnalysis;
using Floodgate.ApiKeys;

namespace Floodgate.Gateway.Identity;

/// <summary>
/// The API key store beside the store in force, swapped with it on a reload that reopens the store, so that the key
/// resolver and the admin API always use the one in force.
/// </summary>
internal sealed class SwitchingApiKeyStore(IApiKeyStore initial) : IApiKeyStore
{
    private IApiKeyStore _current = initial;

    public IApiKeyStore Current
    {
        get => Volatile.Read(ref _current);
        set => Volatile.Write(ref _current, value);
    }

    public bool TryFind(ReadOnlySpan<char> id, [NotNullWhen(true)] out ApiKeyEntry? entry) => Current.TryFind(id, out entry);

    public ValueTask<ApiKeyEntry?> FindAsync(string id, CancellationToken cancellationToken = default) => Current.FindAsync(id, cancellationToken);

    public ValueTask<bool> CreateAsync(ApiKeyRecord record, CancellationToken cancellationToken = default) => Current.CreateAsync(record, cancellationToken);

    public ValueTask<bool> ReplaceAsync(ApiKeyRecord current, ApiKeyRecord next, CancellationToken cancellationToken = default) => Current.ReplaceAsync(current, next, cancellationToken);

    public ValueTask<bool> RevokeAsync(string id, CancellationToken cancellationToken = default) => Current.RevokeAsync(id, cancellationToken);

    public ValueTask<ApiKeyEntry?> GetAsync(string id, CancellationToken cancellationToken = default) => Current.GetAsync(id, cancellationToken);

    public ValueTask<IReadOnlyList<ApiKeyEntry>> ListAsync(string? subject, string? after, int limit, CancellationToken cancellationToken = default) =>
        Current.ListAsync(subject, after, limit, cancellationToken);
}

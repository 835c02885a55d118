using System.Diagnostics;
using Floodgate.ApiKeys;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

/// <summary>API keys in a real redis-server, mirrored by two stores as two replicas would.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisApiKeyStoreTests(RedisFixture fixture)
{
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

    [Fact]
    public async Task A_key_created_on_one_replica_is_mirrored_by_the_other_and_a_revocation_within_a_second()
    {
        var prefix = NewPrefix();
        using var connectionA = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        using var connectionB = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        await using var a = new RedisApiKeyStore(connectionA, prefix);
        await using var b = new RedisApiKeyStore(connectionB, prefix);
        await Task.WhenAll(a.Ready, b.Ready);

        var (record, _) = NewRecord("alice");
        Assert.True(await a.CreateAsync(record));
        Assert.False(await b.CreateAsync(record)); // the id is taken, whichever replica asks
        Assert.True(a.TryFind(record.Id, out _)); // at once where it was made
        Assert.True(await WithinASecondAsync(() => b.TryFind(record.Id, out _)));

        var watch = Stopwatch.StartNew();
        Assert.True(await a.RevokeAsync(record.Id));
        Assert.False(a.TryFind(record.Id, out _));
        Assert.True(await WithinASecondAsync(() => !b.TryFind(record.Id, out _)), $"still held after {watch.Elapsed}");
        Assert.Null(await b.FindAsync(record.Id));
        Assert.False(await b.RevokeAsync(record.Id));
    }

    [Fact]
    public async Task A_replacement_applies_only_over_the_record_read_and_everywhere()
    {
        var prefix = NewPrefix();
        using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        await using var a = new RedisApiKeyStore(connection, prefix);
        await using var b = new RedisApiKeyStore(connection, prefix);
        await Task.WhenAll(a.Ready, b.Ready);
        var (record, _) = NewRecord("alice");
        Assert.True(await a.CreateAsync(record));

        var stored = (await b.GetAsync(record.Id))!.Record;
        var rotated = stored.Rotated(ApiKeySecret.NewKey("fg_live_", record.Id).Hash, Now, TimeSpan.FromHours(1));
        Assert.True(await b.ReplaceAsync(stored, rotated));

        // A second writer that read the same record loses: its rotation would drop the first one's key.
        var other = stored.Rotated(ApiKeySecret.NewKey("fg_live_", record.Id).Hash, Now, TimeSpan.FromHours(1));
        Assert.False(await a.ReplaceAsync(stored, other));
        Assert.True(await WithinASecondAsync(() => a.TryFind(record.Id, out var held) && held.Record.HasPrevious));
        Assert.Equal(ApiKeyJson.Write(rotated), ApiKeyJson.Write((await a.GetAsync(record.Id))!.Record));
    }

    [Fact]
    public async Task Keys_outlive_the_replica_and_are_listed_by_subject_with_their_last_use()
    {
        var prefix = NewPrefix();
        using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        var (alice, _) = NewRecord("alice");
        var (bob, _) = NewRecord("bob");
        await using (var first = new RedisApiKeyStore(connection, prefix))
        {
            await first.Ready;
            Assert.True(await first.CreateAsync(alice));
            Assert.True(await first.CreateAsync(bob));
            Assert.True(first.TryFind(alice.Id, out var entry));
            entry.Touch(Now);

            // Disposing writes the last uses noted.
        }

        await using var second = new RedisApiKeyStore(connection, prefix);
        await second.Ready;
        Assert.Equal(2, second.Count);
        var listed = Assert.Single(await second.ListAsync("alice", null, 10));
        Assert.Equal(alice.Id, listed.Record.Id);
        Assert.Equal(Now, listed.LastUsedAt);
        Assert.Null((await second.GetAsync(bob.Id))!.LastUsedAt);
        Assert.Equal(2, (await second.ListAsync(null, null, 10)).Count);
        var firstPage = Assert.Single(await second.ListAsync(null, null, 1));
        Assert.Single(await second.ListAsync(null, firstPage.Record.Id, 10));

        // The latest use wins: an older one flushed later does not lower it.
        Assert.True(second.TryFind(alice.Id, out var again));
        again.Touch(Now.AddSeconds(-30));
        await second.FlushAsync();
        Assert.Equal(Now, (await second.GetAsync(alice.Id))!.LastUsedAt);
        again.Touch(Now.AddMinutes(1));
        await second.FlushAsync();
        Assert.Equal(Now.AddMinutes(1), (await second.GetAsync(alice.Id))!.LastUsedAt);
    }

    [Fact]
    public async Task A_key_not_yet_mirrored_is_read_once_and_an_unknown_id_is_looked_up_once()
    {
        using var server = RedisServer.Start();
        var prefix = NewPrefix();
        using var connection = await ConnectionMultiplexer.ConnectAsync(server.Configuration);
        await using var store = new RedisApiKeyStore(connection, prefix);
        await store.Ready;

        // Written behind the mirror's back (as if its message were still on its way): found by one read.
        var (record, _) = NewRecord("carol");
        await connection.GetDatabase().HashSetAsync($"{prefix}:{{apikeys}}:all", record.Id, ApiKeyJson.Write(record));
        Assert.False(store.TryFind(record.Id, out _));
        Assert.Equal(record.Id, (await store.FindAsync(record.Id))!.Record.Id);

        var before = HashReads(server);
        var unknown = ApiKeySecret.NewId();
        for (var i = 0; i < 50; i++)
        {
            Assert.Null(await store.FindAsync(unknown));
        }

        Assert.Equal(1, HashReads(server) - before);
        Assert.Equal(1, store.UnknownCount);

        // A key created under that id since is not hidden by the negative cache: the change clears it.
        var late = new ApiKeyRecord(unknown, ApiKeySecret.NewKey("fg_live_", unknown).Hash, "dave", null, null, Now);
        await using var writer = new RedisApiKeyStore(connection, prefix);
        await writer.Ready;
        Assert.True(await writer.CreateAsync(late));
        Assert.True(await WithinASecondAsync(() => store.TryFind(unknown, out _)));
        Assert.Equal(0, store.UnknownCount);
    }

    private static long HashReads(RedisServer server) =>
        server.Cli("INFO", "commandstats").Split('\n')
            .Where(line => line.StartsWith("cmdstat_hget:", StringComparison.Ordinal))
            .Select(line => long.Parse(line.Split("calls=")[1].Split(',')[0], System.Globalization.CultureInfo.InvariantCulture))
            .SingleOrDefault();

    private static async Task<bool> WithinASecondAsync(Func<bool> condition)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > TimeSpan.FromSeconds(1))
            {
                return false;
            }

            await Task.Delay(10);
        }

        return true;
    }

    private static string NewPrefix() => "keys" + Guid.NewGuid().ToString("N")[..8];

    private static (ApiKeyRecord Record, string Key) NewRecord(string subject)
    {
        var id = ApiKeySecret.NewId();
        var (key, hash) = ApiKeySecret.NewKey("fg_live_", id);
        return (new ApiKeyRecord(id, hash, subject, null, null, Now), key);
    }
}

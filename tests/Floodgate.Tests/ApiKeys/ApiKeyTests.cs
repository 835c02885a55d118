using Floodgate.ApiKeys;

namespace Floodgate.Tests.ApiKeys;

/// <summary>The key form, records (check, rotation, expiry), their JSON and the memory store.</summary>
public sealed class ApiKeyTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_new_key_has_the_prefix_and_id_and_reads_back_its_id_and_only_its_hash_is_kept()
    {
        var id = ApiKeySecret.NewId();
        var (key, hash) = ApiKeySecret.NewKey("fg_live_", id);

        Assert.StartsWith("fg_live_" + id + "_", key, StringComparison.Ordinal);
        Assert.Equal(8 + 12 + 1 + 32, key.Length);
        Assert.True(ApiKeySecret.TryReadId(key, "fg_live_", out var read));
        Assert.Equal(id, read.ToString());
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)), hash);
        Assert.NotEqual(key, ApiKeySecret.NewKey("fg_live_", id).Key);
    }

    [Theory]
    [InlineData("fg_test_abcdefghijkl_0123456789ABCDEFGHIJKLMNOPQRSTUV")] // another prefix
    [InlineData("fg_live_abcdefghijkl_0123456789ABCDEFGHIJKLMNOPQRSTU")] // a secret one short
    [InlineData("fg_live_abcdefghijkl-0123456789ABCDEFGHIJKLMNOPQRSTUV")] // no separator
    [InlineData("fg_live_ABCDEFGHIJKL_0123456789ABCDEFGHIJKLMNOPQRSTUV")] // an id in capitals
    [InlineData("fg_live_abcdefghijkl_0123456789ABCDEFGHIJKLMNOPQRST+V")] // a character outside base62
    [InlineData("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl")]
    public void Text_not_of_the_key_form_is_refused_without_a_lookup(string text) =>
        Assert.False(ApiKeySecret.TryReadId(text, "fg_live_", out _));

    [Theory]
    [InlineData("")]
    [InlineData("fg live")]
    [InlineData("a_prefix_that_is_much_too_long_to_be_one_")]
    public void A_prefix_must_be_short_letters_digits_and_underscores(string prefix)
    {
        Assert.False(ApiKeySecret.IsValidPrefix(prefix));
        Assert.Throws<ArgumentException>(() => ApiKeySecret.NewKey(prefix, ApiKeySecret.NewId()));
    }

    [Fact]
    public void Hashing_a_key_allocates_nothing()
    {
        var (key, hash) = ApiKeySecret.NewKey("fg_live_", ApiKeySecret.NewId());
        Span<byte> into = stackalloc byte[ApiKeySecret.HashLength];
        ApiKeySecret.Hash(key, into);
        var before = GC.GetAllocatedBytesForCurrentThread();
        ApiKeySecret.Hash(key, into);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.True(into.SequenceEqual(hash));
    }

    [Fact]
    public void A_record_accepts_its_key_refuses_another_and_an_expired_one()
    {
        var (record, key, _) = NewRecord(expiresAt: Now.AddDays(1));
        Assert.Equal(ApiKeyCheck.Valid, record.Check(ApiKeySecret.Hash(key), Now));
        Assert.Equal(ApiKeyCheck.Mismatch, record.Check(ApiKeySecret.Hash(key + "x"), Now));
        Assert.Equal(ApiKeyCheck.Expired, record.Check(ApiKeySecret.Hash(key), Now.AddDays(1)));

        // An expired key's wrong secret is still a mismatch: expiry is told only to the key's holder.
        Assert.Equal(ApiKeyCheck.Mismatch, record.Check(ApiKeySecret.Hash(key + "x"), Now.AddDays(2)));
    }

    [Fact]
    public void A_rotated_key_accepts_the_old_key_until_the_grace_period_ends_and_the_new_one_after()
    {
        var (record, oldKey, _) = NewRecord();
        var (newKey, newHash) = ApiKeySecret.NewKey("fg_live_", record.Id);
        var rotated = record.Rotated(newHash, Now, TimeSpan.FromHours(1));

        Assert.Equal(record.Id, rotated.Id);
        Assert.Equal(Now, rotated.RotatedAt);
        Assert.Equal(ApiKeyCheck.Valid, rotated.Check(ApiKeySecret.Hash(newKey), Now));
        Assert.Equal(ApiKeyCheck.Valid, rotated.Check(ApiKeySecret.Hash(oldKey), Now.AddMinutes(59)));
        Assert.Equal(ApiKeyCheck.Mismatch, rotated.Check(ApiKeySecret.Hash(oldKey), Now.AddHours(1)));
        Assert.Equal(ApiKeyCheck.Valid, rotated.Check(ApiKeySecret.Hash(newKey), Now.AddHours(1)));

        // Without a grace period the old key stops at once.
        var atOnce = record.Rotated(newHash, Now, TimeSpan.Zero);
        Assert.False(atOnce.HasPrevious);
        Assert.Equal(ApiKeyCheck.Mismatch, atOnce.Check(ApiKeySecret.Hash(oldKey), Now));
    }

    [Fact]
    public void A_record_round_trips_through_json_without_its_secret()
    {
        var (record, key, _) = NewRecord(account: "acme", plan: "pro", expiresAt: Now.AddDays(30));
        var rotated = record.Rotated(ApiKeySecret.NewKey("fg_live_", record.Id).Hash, Now.AddMinutes(5), TimeSpan.FromHours(2));
        var json = ApiKeyJson.Write(rotated);
        var read = ApiKeyJson.Read(json)!;

        Assert.DoesNotContain(key[^32..], json, StringComparison.Ordinal);
        Assert.Equal(json, ApiKeyJson.Write(read));
        Assert.Equal(("alice", "acme", "pro"), (read.Subject, read.Account, read.Plan));
        Assert.Equal(Now.AddDays(30), read.ExpiresAt);
        Assert.Equal(Now.AddMinutes(5).AddHours(2), read.PreviousValidUntil);
        Assert.Equal(ApiKeyCheck.Valid, read.Check(ApiKeySecret.Hash(key), Now.AddHours(1)));
        Assert.Null(ApiKeyJson.Read("{\"id\":\"nope\"}"));
        Assert.Null(ApiKeyJson.Read("not json"));
    }

    [Fact]
    public void A_record_refuses_names_that_are_empty_or_too_long()
    {
        var hash = ApiKeySecret.Hash("x");
        Assert.Throws<ArgumentException>(() => new ApiKeyRecord(ApiKeySecret.NewId(), hash, "", null, null, Now));
        Assert.Throws<ArgumentException>(() => new ApiKeyRecord(ApiKeySecret.NewId(), hash, new string('a', 257), null, null, Now));
        Assert.Throws<ArgumentException>(() => new ApiKeyRecord(ApiKeySecret.NewId(), hash, "alice", "", null, Now));
        Assert.Throws<ArgumentException>(() => new ApiKeyRecord(ApiKeySecret.NewId(), hash, "alice", null, "", Now));
        Assert.Throws<ArgumentException>(() => new ApiKeyRecord("short", hash, "alice", null, null, Now));
        Assert.Throws<ArgumentException>(() => new ApiKeyRecord(ApiKeySecret.NewId(), new byte[5], "alice", null, null, Now));
    }

    [Fact]
    public async Task The_memory_store_creates_once_replaces_only_what_it_holds_revokes_and_lists_by_subject()
    {
        var store = new MemoryApiKeyStore();
        var (alice, _, _) = NewRecord();
        var (bob, _, _) = NewRecord(subject: "bob");
        Assert.True(await store.CreateAsync(alice));
        Assert.False(await store.CreateAsync(alice));
        Assert.True(await store.CreateAsync(bob));
        Assert.True(store.TryFind(alice.Id.AsSpan(), out var found));
        Assert.Same(alice, found.Record);

        found.Touch(Now);
        var rotated = alice.Rotated(ApiKeySecret.NewKey("fg_live_", alice.Id).Hash, Now, TimeSpan.FromHours(1));
        Assert.True(await store.ReplaceAsync(alice, rotated));
        Assert.False(await store.ReplaceAsync(alice, rotated)); // the stored record is no longer alice's first
        var replaced = await store.GetAsync(alice.Id);
        Assert.Same(rotated, replaced!.Record);
        Assert.Equal(Now, replaced.LastUsedAt); // kept across the rotation

        var page = await store.ListAsync("alice", null, 10);
        Assert.Equal([alice.Id], page.Select(e => e.Record.Id));
        Assert.Equal(2, (await store.ListAsync(null, null, 10)).Count);
        Assert.Single(await store.ListAsync(null, null, 1));

        Assert.True(await store.RevokeAsync(alice.Id));
        Assert.False(await store.RevokeAsync(alice.Id));
        Assert.False(store.TryFind(alice.Id.AsSpan(), out _));
        Assert.Null(await store.FindAsync(alice.Id));
    }

    [Fact]
    public void A_use_is_noted_to_the_second()
    {
        var (record, _, _) = NewRecord();
        var entry = new ApiKeyEntry(record);
        Assert.Null(entry.LastUsedAt);
        entry.Touch(Now);
        entry.Touch(Now.AddMilliseconds(500));
        Assert.Equal(Now, entry.LastUsedAt);
        entry.Touch(Now.AddSeconds(2));
        Assert.Equal(Now.AddSeconds(2), entry.LastUsedAt);
    }

    internal static (ApiKeyRecord Record, string Key, string Id) NewRecord(string subject = "alice", string? account = null, string? plan = null, DateTimeOffset? expiresAt = null)
    {
        var id = ApiKeySecret.NewId();
        var (key, hash) = ApiKeySecret.NewKey("fg_live_", id);
        return (new ApiKeyRecord(id, hash, subject, account, plan, Now, expiresAt), key, id);
    }
}

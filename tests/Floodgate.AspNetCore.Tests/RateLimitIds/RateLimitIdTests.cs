using System.Text;
using Floodgate.AspNetCore.RateLimitIds;

namespace Floodgate.AspNetCore.Tests.RateLimitIds;

/// <summary>The rate-limit id's derivation against the test vectors of docs/edge.md (computed independently of this code).</summary>
public sealed class RateLimitIdTests
{
    private static readonly byte[] Secret = Encoding.UTF8.GetBytes("floodgate-test-vector-secret-0123456789abcdef");

    public static TheoryData<string, string, string[], string, string> Vectors => new()
    {
        { "k1", "alice", [], "k1.MhM46PLh32pmxJiL_8IJ_g.Hg-0SXVnrKn__u4VvB5LOw", "LuR45hL2kqFdgcdZaBPWLA" },
        { "k1", "alice", ["acme"], "k1.MdfyiW8iHMYKPKydyN7JBw.1dXVc3j8CTt6HHhAUkVX8A", "Ax4tEDTK32-8NzTdac1Urw" },
        { "k2", "bob", ["acme", ""], "k2.N6fHWpwr6LsIf4t4GrxWsg.0-u8TQ6MQwrpwfilq38Ksw", "ew8CwCiBHWT0YPqTyD_Gow" },
        { "k1", "zoë", [], "k1.d5M83v7DRWyYBXpGKwbOEg.YeSkKVKsNyJACxaYVX7mtA", "T7f0SHT200tyGoQ8YEXXVQ" },
    };

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Create_and_ForEndpoint_give_the_documented_vectors(string kid, string subject, string[] claims, string id, string orders)
    {
        Assert.Equal(id, RateLimitId.Create(Secret, kid, subject, [.. claims]));
        Assert.Equal(orders, RateLimitId.ForEndpoint(id, "orders"));
        Assert.True(Verifies(id, Secret));
    }

    [Fact]
    public void An_absent_claim_is_the_empty_string_and_parts_cannot_be_shifted_between_fields()
    {
        Assert.Equal(RateLimitId.Create(Secret, "k1", "alice", (string?)null), RateLimitId.Create(Secret, "k1", "alice", string.Empty));
        Assert.NotEqual(RateLimitId.Create(Secret, "k1", "alice"), RateLimitId.Create(Secret, "k1", "alice", string.Empty));
        Assert.NotEqual(RateLimitId.Create(Secret, "k1", "ab", "c"), RateLimitId.Create(Secret, "k1", "a", "bc"));
    }

    [Fact]
    public void A_tag_verifies_only_under_its_own_key_id_and_secret_and_uid()
    {
        var id = RateLimitId.Create(Secret, "k1", "alice");
        Assert.True(Verifies(id, Secret));
        Assert.False(Verifies(id, Encoding.UTF8.GetBytes("floodgate-test-vector-secret-0123456789abcdeF")));

        // The same uid and tag under another key id: the key id is inside the tag.
        Assert.False(Verifies("k2" + id[2..], Secret));

        // Every single character changed in the uid or the tag breaks it.
        for (var i = 3; i < id.Length; i++)
        {
            if (id[i] == '.')
            {
                continue;
            }

            var changed = id[..i] + (id[i] == 'A' ? 'B' : 'A') + id[(i + 1)..];
            Assert.False(Verifies(changed, Secret), $"changed at {i}: {changed}");
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("k1")]
    [InlineData("k1.MhM46PLh32pmxJiL_8IJ_g")]
    [InlineData("k1.MhM46PLh32pmxJiL_8IJ_g.Hg-0SXVnrKn__u4VvB5LO")]
    [InlineData("k1.MhM46PLh32pmxJiL_8IJ_g.Hg-0SXVnrKn__u4VvB5LOww")]
    [InlineData(".MhM46PLh32pmxJiL_8IJ_g.Hg-0SXVnrKn__u4VvB5LOw")]
    [InlineData("k1.MhM46PLh32pmxJiL_8IJ_g!Hg-0SXVnrKn__u4VvB5LOw")]
    [InlineData("k1.MhM46PLh32pmxJiL+8IJ/g.Hg-0SXVnrKn__u4VvB5LOw")]
    [InlineData("k1.MhM46PLh32pmxJiL_8IJ_g.Hg-0SXVnrKn__u4VvB5L==")]
    [InlineData("123456789012345678901234567890123.MhM46PLh32pmxJiL_8IJ_g.Hg-0SXVnrKn__u4VvB5LOw")]
    [InlineData("k1.MhM46PLh32pmxJiL_8IJ_h.Hg-0SXVnrKn__u4VvB5LOw")]
    [InlineData("k1.MhM46PLh32pmxJiL_8IJ_g.Hg-0SXVnrKn__u4VvB5LOx")]
    [InlineData("k1.MhM46PLh32pmxJiL_8IJ_g.Hg-0SXVnrKn__u4VvB5LO\u00e9")]
    public void Malformed_ids_do_not_parse(string id)
    {
        Span<byte> uid = stackalloc byte[16];
        Span<byte> tag = stackalloc byte[16];
        Assert.False(RateLimitId.TryParse(id, out _, uid, tag));
    }

    [Theory]
    [InlineData("k1", true)]
    [InlineData("key_2026-01", true)]
    [InlineData("", false)]
    [InlineData("k.1", false)]
    [InlineData("k 1", false)]
    [InlineData("ключ", false)]
    [InlineData("123456789012345678901234567890123", false)]
    public void Key_ids_are_short_and_plain(string keyId, bool valid)
    {
        Assert.Equal(valid, RateLimitId.IsValidKeyId(keyId));
        if (!valid)
        {
            Assert.Throws<ArgumentException>(() => RateLimitId.Create(Secret, keyId, "alice"));
        }
    }

    [Fact]
    public void The_options_refuse_short_secrets_duplicate_key_ids_and_no_keys()
    {
        var none = new RateLimitIdOptions();
        Assert.Contains("at least one key", Assert.Throws<ArgumentException>(none.Validate).Message, StringComparison.Ordinal);

        var shortSecret = new RateLimitIdOptions();
        shortSecret.Keys.Add(new RateLimitIdKey("k1", new byte[31]));
        Assert.Contains("at least 32 bytes", Assert.Throws<ArgumentException>(shortSecret.Validate).Message, StringComparison.Ordinal);

        var twice = new RateLimitIdOptions();
        twice.Keys.Add(new RateLimitIdKey("k1", new byte[32]));
        twice.Keys.Add(new RateLimitIdKey("k1", new byte[32]));
        Assert.Contains("names two keys", Assert.Throws<ArgumentException>(twice.Validate).Message, StringComparison.Ordinal);

        var cookie = new RateLimitIdOptions { CookieName = "a b" };
        cookie.Keys.Add(new RateLimitIdKey("k1", new byte[32]));
        Assert.Contains("is not a cookie name", Assert.Throws<ArgumentException>(cookie.Validate).Message, StringComparison.Ordinal);
    }

    private static bool Verifies(string id, byte[] secret)
    {
        Span<byte> uid = stackalloc byte[16];
        Span<byte> tag = stackalloc byte[16];
        return RateLimitId.TryParse(id, out var keyId, uid, tag) && RateLimitId.VerifyTag(secret, keyId, uid, tag);
    }
}

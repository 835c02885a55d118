using Floodgate.Logging;

namespace Floodgate.Tests.Logging;

public sealed class LogValuesTests
{
    [Theory]
    [InlineData("/orders/42")]
    [InlineData("alice@example.com")]
    [InlineData("ip:203.0.113.7")]
    [InlineData("")]
    [InlineData("Zoë 名前 שלום")]
    [InlineData("emoji \U0001F600 pairs \U0001F4A9")]
    [InlineData("GET")]
    public void A_clean_value_is_returned_as_the_same_instance(string value)
    {
        Assert.Same(value, LogValues.Escape(value));
        Assert.Same(value, LogValues.Escape(LogValues.Escape(value)));
    }

    [Fact]
    public void A_clean_value_of_exactly_the_length_is_the_same_instance()
    {
        var value = new string('a', LogValues.MaxLength);
        Assert.Same(value, LogValues.Escape(value));
    }

    [Fact]
    public void Null_stays_null() => Assert.Null(LogValues.Escape(null));

    [Theory]
    [InlineData("a\rb", @"a\rb")]
    [InlineData("a\nb", @"a\nb")]
    [InlineData("a\tb", @"a\tb")]
    [InlineData("a\0b", @"a\x00b")]
    [InlineData("a\u001Bb", @"a\x1Bb")]
    [InlineData("a\u0007b", @"a\x07b")]
    [InlineData("a\u001Fb", @"a\x1Fb")]
    [InlineData("a\u007Fb", @"a\x7Fb")]
    [InlineData("a\u0080b", @"a\x80b")]
    [InlineData("a\u0085b", @"a\x85b")]
    [InlineData("a\u009Bb", @"a\x9Bb")]
    [InlineData("a\u009Fb", @"a\x9Fb")]
    [InlineData("a\u2028b", @"a\u2028b")]
    [InlineData("a\u2029b", @"a\u2029b")]
    [InlineData("a\u202Ab", @"a\u202Ab")]
    [InlineData("a\u202Bb", @"a\u202Bb")]
    [InlineData("a\u202Cb", @"a\u202Cb")]
    [InlineData("a\u202Db", @"a\u202Db")]
    [InlineData("a\u202Eb", @"a\u202Eb")]
    [InlineData("a\u2066b", @"a\u2066b")]
    [InlineData("a\u2067b", @"a\u2067b")]
    [InlineData("a\u2068b", @"a\u2068b")]
    [InlineData("a\u2069b", @"a\u2069b")]
    [InlineData("a\u061Cb", @"a\u061Cb")]
    [InlineData("a\u200Eb", @"a\u200Eb")]
    [InlineData("a\u200Fb", @"a\u200Fb")]
    [InlineData("a\\b", @"a\\b")]
    [InlineData(@"a\x1Bb", @"a\\x1Bb")]
    public void Each_special_character_is_escaped(string value, string expected) =>
        Assert.Equal(expected, LogValues.Escape(value));

    [Fact]
    public void Every_control_character_is_escaped_and_no_other_character_below_U_00A0()
    {
        for (var c = '\0'; c < '\u00A0'; c++)
        {
            var escaped = LogValues.Escape(c.ToString());
            if (char.IsControl(c))
            {
                Assert.DoesNotContain(c, escaped);
                Assert.StartsWith("\\", escaped, StringComparison.Ordinal);
            }
            else if (c != '\\')
            {
                Assert.Equal(c.ToString(), escaped);
            }
        }
    }

    [Fact]
    public void The_forged_log_line_of_the_report_is_escaped()
    {
        const string Path = "/a\r\u001B[2K12:00:00 info: all good";
        Assert.Equal(@"/a\r\x1B[2K12:00:00 info: all good", LogValues.Escape(Path));
    }

    [Fact]
    public void A_backslash_before_an_escape_keeps_the_escape_unambiguous()
    {
        // A client sending the four characters \x1B and one sending ESC log differently.
        Assert.NotEqual(LogValues.Escape("\\x1B"), LogValues.Escape("\u001B"));
        Assert.Equal(@"\\\x1B", LogValues.Escape("\\\u001B"));
    }

    [Fact]
    public void Lone_surrogates_are_escaped_and_pairs_kept()
    {
        Assert.Equal(@"a\uD83Db", LogValues.Escape("a\uD83Db"));
        Assert.Equal(@"a\uDE00b", LogValues.Escape("a\uDE00b"));
        Assert.Equal(@"\uD83D", LogValues.Escape("\uD83D"));
        Assert.Equal("a\U0001F600b", LogValues.Escape("a\U0001F600b"));
        Assert.Equal(@"\uDE00\uD83D", LogValues.Escape("\uDE00\uD83D"));
    }

    [Fact]
    public void A_long_value_is_cut_to_the_length_with_a_marker_of_what_was_cut()
    {
        var value = new string('a', 10_000);
        var escaped = LogValues.Escape(value);
        Assert.Equal(new string('a', 256) + "…(+9744 chars)", escaped);
    }

    [Fact]
    public void The_length_can_be_chosen()
    {
        Assert.Equal("abc…(+3 chars)", LogValues.Escape("abcdef", 3));
        Assert.Equal("abcdef", LogValues.Escape("abcdef", 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => LogValues.Escape("a", 0));
    }

    [Fact]
    public void The_length_counts_escaped_characters_and_never_splits_an_escape()
    {
        // "\r" takes two characters and "\x1B" four: "a\r\x1B" needs a length of 7, and "b" one more.
        Assert.Equal(@"a\r…(+2 chars)", LogValues.Escape("a\r\u001Bb", 3));
        Assert.Equal(@"a\r…(+2 chars)", LogValues.Escape("a\r\u001Bb", 4));
        Assert.Equal(@"a\r…(+2 chars)", LogValues.Escape("a\r\u001Bb", 6));
        Assert.Equal(@"a\r\x1B…(+1 chars)", LogValues.Escape("a\r\u001Bb", 7));
        Assert.Equal(@"a\r\x1Bb", LogValues.Escape("a\r\u001Bb", 8));
        Assert.Equal("…(+1 chars)", LogValues.Escape("\u2028", 5));
    }

    [Fact]
    public void A_long_value_of_escapes_stays_within_the_length()
    {
        var escaped = LogValues.Escape(new string('\u001B', 10_000));
        const string Marker = "…(+9936 chars)";
        Assert.Equal(string.Concat(Enumerable.Repeat(@"\x1B", 64)) + Marker, escaped);
    }

    [Fact]
    public void Cutting_never_splits_a_surrogate_pair()
    {
        // At a length of 4, "abc" and the whole pair would take 5: the pair is left out, not split.
        Assert.Equal("abc…(+3 chars)", LogValues.Escape("abc\U0001F600d", 4));
        Assert.Equal("abc\U0001F600…(+1 chars)", LogValues.Escape("abc\U0001F600d", 5));

        // A value of pairs only, cut at every length: the kept text is always whole pairs.
        var pairs = string.Concat(Enumerable.Repeat("\U0001F600", 300));
        for (var length = 1; length <= 20; length++)
        {
            var escaped = LogValues.Escape(pairs, length);
            var kept = escaped[..escaped.IndexOf('…', StringComparison.Ordinal)];
            Assert.Equal(length / 2 * 2, kept.Length);
            Assert.True(kept.EnumerateRunes().All(r => r.Value == 0x1F600));
            Assert.EndsWith($"(+{600 - kept.Length} chars)", escaped, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_value_longer_than_the_stack_buffer_is_escaped_whole()
    {
        var value = string.Concat(Enumerable.Repeat("a\r", 1000));
        var escaped = LogValues.Escape(value, 4000);
        Assert.Equal(string.Concat(Enumerable.Repeat(@"a\r", 1000)), escaped);

        var cut = LogValues.Escape(value, 1000);
        Assert.Equal(string.Concat(Enumerable.Repeat(@"a\r", 333)) + "a…(+1333 chars)", cut);
    }

    [Fact]
    public void An_escaped_value_holds_no_control_separator_or_bidirectional_character()
    {
        var random = new Random(7);
        for (var i = 0; i < 2000; i++)
        {
            var chars = new char[random.Next(0, 40)];
            for (var j = 0; j < chars.Length; j++)
            {
                // Mostly the interesting ranges, some of anything.
                chars[j] = (char)(random.Next(4) switch
                {
                    0 => random.Next(0, 0xA0),
                    1 => random.Next(0x2020, 0x2070),
                    2 => random.Next(0xD800, 0xE000),
                    _ => random.Next(0, 0x10000),
                });
            }

            var escaped = LogValues.Escape(new string(chars), 64);
            for (var k = 0; k < escaped.Length; k++)
            {
                var c = escaped[k];
                Assert.False(char.IsControl(c), $"U+{(int)c:X4} at {k} of {escaped}");
                Assert.False(c is '\u061C' or '\u200E' or '\u200F' or (>= '\u2028' and <= '\u202E') or (>= '\u2066' and <= '\u2069'), $"U+{(int)c:X4}");
                if (char.IsHighSurrogate(c))
                {
                    Assert.True(k + 1 < escaped.Length && char.IsLowSurrogate(escaped[k + 1]));
                    k++;
                }
                else
                {
                    Assert.False(char.IsLowSurrogate(c));
                }
            }

            var marker = escaped.IndexOf('…', StringComparison.Ordinal);
            Assert.True((marker < 0 ? escaped.Length : marker) <= 64);
        }
    }
}

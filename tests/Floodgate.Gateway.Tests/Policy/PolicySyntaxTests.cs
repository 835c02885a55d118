using Floodgate.Gateway.Cli;
using Floodgate.Gateway.Policy;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// Text that is not YAML: each error names the line and column of the mistake, and says what was expected there in
/// our words (never the YAML library's or .NET's exception text).
/// </summary>
public sealed class PolicySyntaxTests
{
    private const string Tab = "a tab indents this line, and YAML indents with spaces only: expected spaces here.";

    [Theory]
    // Before a list entry, after five good lines: YamlDotNet's own mark is 1:1.
    [InlineData("upstream: http://a\nedge:\n  - name: ip\n    limit: 1/min\nuser:\n\t- name: x\n", 6, 1)]
    // Before a field of a list entry: YamlDotNet's own mark is 3:11, the line before.
    [InlineData("upstream: http://a\nedge:\n  - name: ip\n\tlimit: 1/min\n", 4, 1)]
    [InlineData("store:\n\tkind: memory\n", 2, 1)]
    [InlineData("upstream: http://a\n\t# a comment\nedge: []\n", 2, 1)]
    [InlineData("upstream: http://a\nedge:\n  - name: ip\n    limit: 1/min\n  - name: b\n\t  limit: 2/min\n", 6, 1)]
    // After spaces: the column is the tab's.
    [InlineData("edge:\n  - name: ip\n  \tlimit: 1/min\n", 3, 3)]
    [InlineData("edge:\n  - name: ip\n    \tlimit: 1/min\n", 3, 5)]
    public void A_tab_used_as_indentation_is_reported_on_its_line_and_column(string yaml, int line, int column) =>
        AssertSyntaxError(yaml, line, column, Tab);

    [Theory]
    // Left open, and the next field starts: YamlDotNet throws an InvalidOperationException with no position.
    [InlineData("upstream: http://a\nstore: { kind: memory\n\nidentity:\n  anonymous: allow\n", 2, 8,
        "the mapping this '{' opens is still open at line 4, which is not indented under its field: expected '}' to close it before line 4.")]
    [InlineData("upstream: http://a\nedge: {name: ip", 2, 7, "this '{' is never closed: expected '}' after the last field of the mapping it opens.")]
    [InlineData("upstream: http://a\nedge: {\n  name: ip\n", 2, 7, "this '{' is never closed: expected '}' after the last field of the mapping it opens.")]
    [InlineData("upstream: http://a\nroutes: [a, b\nedge: []\n", 2, 9,
        "the list this '[' opens is still open at line 3, which is not indented under its field: expected ']' to close it before line 3.")]
    [InlineData("upstream: http://a\nroutes: [a, b", 2, 9, "this '[' is never closed: expected ']' after the last entry of the list it opens.")]
    // The innermost of two open brackets.
    [InlineData("upstream: http://a\nroutes: [a, {b: c\nedge: []\n", 2, 13,
        "the mapping this '{' opens is still open at line 3, which is not indented under its field: expected '}' to close it before line 3.")]
    [InlineData("upstream: http://a\nroutes: [a b: c, d: e f: g]\n", 2, 24, "expected ',' before this entry, or ']' to close the list opened at 2:9.")]
    public void An_unclosed_bracket_is_reported_where_it_opens(string yaml, int line, int column, string message) =>
        AssertSyntaxError(yaml, line, column, message);

    [Theory]
    [InlineData("upstream: \"http://a\nedge: []\n", 1, 11,
        "this quoted value is not closed before line 2, which is not indented as its continuation: expected a closing \", or line 2 indented deeper.")]
    [InlineData("edge:\n  - name: \"ip\n    limit: 1/min\n", 2, 11,
        "this quoted value is not closed before line 3, which is not indented as its continuation: expected a closing \", or line 3 indented deeper.")]
    [InlineData("upstream: 'http://a\nedge: []\n", 1, 11, "this quoted value is never closed: expected a closing ' after it.")]
    [InlineData("upstream: \"http://a", 1, 11, "this quoted value is never closed: expected a closing \" after it.")]
    [InlineData("upstream: \"http://a\\q\"\n", 1, 20,
        "'\\q' is not an escape: expected one such as \\n, \\t, \\\" or \\\\ (or the value in single quotes, where a backslash is plain).")]
    public void An_unclosed_quote_or_a_bad_escape_is_reported_where_it_is(string yaml, int line, int column, string message) =>
        AssertSyntaxError(yaml, line, column, message);

    [Theory]
    // A field less indented than its siblings.
    [InlineData("upstream: http://a\nstore:\n    kind: memory\n  max_keys: 3\n", 4, 3,
        "this line starts at column 3, out of line with the lines above it: expected column 1, in line with 'store' on line 2, or column 5, in line with 'kind' on line 3.")]
    [InlineData("upstream: http://a\nstore:\n  kind: memory\n  max_keys: 3\n redis: x\n", 5, 2,
        "this line starts at column 2, out of line with the lines above it: expected column 1, in line with 'store' on line 2, or column 3, in line with 'max_keys' on line 4.")]
    [InlineData("edge:\n  - name: ip\n   limit: 1/min\n", 3, 4,
        "this line starts at column 4, out of line with the lines above it: expected column 3, in line with the '-' on line 2, or column 5, in line with 'name' on line 2.")]
    // More indented than its siblings: it reads as the rest of the value above.
    [InlineData("store:\n  kind: memory\n    max_keys: 3\n", 3, 5,
        "this line is indented deeper than line 2, so it continues that line's value, which cannot hold a 'name: value': expected it at column 3, in line with the field above.")]
    [InlineData("upstream\nedge: []\n", 1, 1, "expected ':' after the field name on this line (line 2 reads as the rest of its value).")]
    [InlineData("upstream: http://a\nedge\nuser: []\n", 2, 1, "expected a field, 'name: value', like 'upstream' on line 1.")]
    public void A_line_out_of_line_with_its_siblings_is_reported_with_the_columns_it_could_have(string yaml, int line, int column, string message) =>
        AssertSyntaxError(yaml, line, column, message);

    [Theory]
    [InlineData("upstream: http://a\nupstream: http://b\n", 2, 1, "'upstream' is given twice in this mapping (first on line 1): expected each field once.")]
    [InlineData("upstream: http://a\nstore:\n  kind: memory\n  'kind': redis\n", 4, 3, "'kind' is given twice in this mapping (first on line 3): expected each field once.")]
    [InlineData("upstream: http://a\nedge: [{name: a, name: b}]\n", 2, 18, "'name' is given twice in this mapping (first on line 2): expected each field once.")]
    public void A_key_given_twice_is_reported_at_the_second(string yaml, int line, int column, string message) =>
        AssertSyntaxError(yaml, line, column, message);

    [Theory]
    [InlineData("upstream: *target\n", 1, 11, "*target refers to no anchor: expected &target on a value before it.")]
    [InlineData("upstream: @target\n", 1, 11, "'@' cannot start a value: expected the value in quotes.")]
    [InlineData("upstream: http://a: b\n", 1, 19, "a ':' followed by a space cannot go here: expected one 'name: value' per line, or the value in quotes.")]
    [InlineData("routes: [a, , b]\n", 1, 13, "expected a value here.")]
    // YamlDotNet emits a value with no key for this, and its tree builder throws an ArgumentException.
    [InlineData("upstream: http://a\nstore:\n  kind: memory\n:\n", 4, 1, "this ':' has no field name before it: expected 'name: value'.")]
    public void Other_mistakes_are_located_and_explained(string yaml, int line, int column, string message) =>
        AssertSyntaxError(yaml, line, column, message);

    [Fact]
    public void Check_prints_a_syntax_error_as_file_line_column_field_message()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-syntax-").FullName;
        try
        {
            // The quickstart with the '}' of its store left out.
            var path = Path.Combine(directory, "quickstart.yaml");
            var quickstart = File.ReadAllText(Path.Combine(PolicyTests.RepositoryRoot(), "samples", "quickstart.yaml"));
            Assert.Contains("store: { kind: memory }", quickstart, StringComparison.Ordinal);
            File.WriteAllText(path, quickstart.Replace("store: { kind: memory }", "store: { kind: memory  ", StringComparison.Ordinal));
            var line = quickstart[..quickstart.IndexOf("store:", StringComparison.Ordinal)].Count(c => c == '\n') + 1;

            using var output = new StringWriter();
            using var errors = new StringWriter();
            var code = GatewayCli.Build(output, errors).Parse(["check", path]).Invoke();

            Assert.Equal(1, code);
            Assert.Equal(
                $"{path}:{line}:8: (syntax): the mapping this '{{' opens is still open at line {line + 2}, which is not indented under its field: expected '}}' to close it before line {line + 2}.{Environment.NewLine}"
                + $"{path}: 1 error(s).{Environment.NewLine}",
                errors.ToString());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("upstream: http://a\nstore:\n  kind: memory\n:\n")]
    [InlineData("upstream: http://a\nidentity: {jwt: {keys: [a.pem]\nedge: []\n")]
    public void The_key_files_of_a_file_that_is_not_yaml_are_none(string yaml)
    {
        // The watcher asks after a refused reload: a throw there would replace the syntax error it reports.
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, yaml);
            Assert.Empty(PolicyLoader.KeyFilesNamedIn(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static void AssertSyntaxError(string yaml, int line, int column, string message)
    {
        var error = Assert.Single(Assert.Throws<PolicyException>(() => PolicyLoader.Parse(yaml, "p.yaml")).Errors);
        Assert.Equal($"p.yaml:{line}:{column}: (syntax): {message}", error.ToString());
    }
}

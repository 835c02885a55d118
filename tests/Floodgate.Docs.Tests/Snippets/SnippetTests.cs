namespace Floodgate.Docs.Tests.Snippets;

/// <summary>
/// Every C# block of README.md and docs/*.md compiles, as a developer pasting it into a new <c>dotnet new web</c> app
/// would compile it (see <see cref="SnippetCompiler"/> for what a block may assume). A failure names the file and
/// line of the block and of each error.
/// </summary>
public sealed class SnippetTests
{
    public static TheoryData<string, int> Blocks()
    {
        var data = new TheoryData<string, int>();
        foreach (var snippet in MarkdownSnippets.All())
        {
            data.Add(snippet.File, snippet.Line);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Blocks))]
    public void The_block_compiles(string file, int line)
    {
        var snippet = MarkdownSnippets.Read(file).Single(s => s.Line == line);
        var errors = SnippetCompiler.Errors(snippet);
        Assert.True(errors.Count == 0, $"""
            The C# block at {snippet} does not compile, as the top-level program of a new `dotnet new web` app
            (its implicit usings, ASP.NET Core and Floodgate's assemblies):
              {string.Join(Environment.NewLine + "  ", errors)}
            Give the block the `using` lines it needs. A block may use `builder`, `app` and `services` undeclared; declare
            anything else it assumes on a line just before its fence: <!-- compile with: var o = new RedisStoreOptions(); -->
            (tests/Floodgate.Docs.Tests/Snippets/SnippetCompiler.cs says what is assumed.)
            """);
    }

    [Fact]
    public void Blocks_are_found_in_README_and_docs()
    {
        var snippets = MarkdownSnippets.All().ToList();
        Assert.Contains(snippets, s => s.File == "README.md");
        Assert.Contains(snippets, s => s.File == "docs/aspnetcore.md");
        Assert.All(snippets, s => Assert.NotEmpty(s.Lines));
    }

    [Fact]
    public void A_block_that_is_a_sample_is_that_sample_word_for_word()
    {
        var samples = MarkdownSnippets.All().Where(s => s.Sample is not null).ToList();
        Assert.Contains(samples, s => s.File == "README.md" && s.Sample == "samples/Floodgate.AspNetCore.Sample/Program.cs");
        foreach (var snippet in samples)
        {
            var expected = File.ReadAllText(Path.Combine(MarkdownSnippets.Root, snippet.Sample!)).ReplaceLineEndings("\n").TrimEnd();
            var actual = string.Join("\n", snippet.Lines).TrimEnd();
            Assert.True(expected == actual, $"The C# block at {snippet} says it is {snippet.Sample} (<!-- sample: ... -->) but differs from it: copy one into the other.");
        }
    }

    [Fact]
    public void A_broken_block_is_reported_with_its_file_line_and_error()
    {
        var snippet = new MarkdownSnippet("docs/example.md", 10, ["using Floodgate.Limits;", string.Empty, "var rate = Rate.Parse(\"10/s\");", "Console.WriteLine(store);"], string.Empty, null);
        var error = Assert.Single(SnippetCompiler.Errors(snippet));
        Assert.Equal("docs/example.md:14 `Console.WriteLine(store);`: CS0103: The name 'store' does not exist in the current context", error);
    }
}

namespace Floodgate.Docs.Tests.Snippets;

/// <summary>A C# block of a Markdown file: where it is, its lines, and what the lines before its fence declare.</summary>
/// <param name="File">The file, relative to the repository root, such as <c>docs/gateway.md</c>.</param>
/// <param name="Line">The 1-based line of the block's opening fence.</param>
/// <param name="Lines">The block's lines, without the fences.</param>
/// <param name="CompileWith">C# statements a <c>&lt;!-- compile with: … --&gt;</c> line before the fence declares; empty when none.</param>
/// <param name="Sample">The file a <c>&lt;!-- sample: path --&gt;</c> line before the fence says the block is, if any.</param>
public sealed record MarkdownSnippet(string File, int Line, IReadOnlyList<string> Lines, string CompileWith, string? Sample)
{
    public override string ToString() => $"{File}:{Line}";
}

/// <summary>Finds the repository's Markdown files and their C# blocks.</summary>
public static class MarkdownSnippets
{
    private const string CompileWithMarker = "<!-- compile with:";
    private const string SampleMarker = "<!-- sample:";

    /// <summary>The repository root: the first directory up from the tests' binaries that holds Floodgate.slnx.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>README.md and every docs/*.md, as paths relative to <see cref="Root"/>.</summary>
    public static IEnumerable<string> Files() =>
        new[] { "README.md" }.Concat(Directory.GetFiles(Path.Combine(Root, "docs"), "*.md").Select(f => Path.GetRelativePath(Root, f)).Order(StringComparer.Ordinal));

    /// <summary>Every C# block (<c>```csharp</c>, <c>```cs</c> or <c>```c#</c>) of every file.</summary>
    public static IEnumerable<MarkdownSnippet> All() => Files().SelectMany(Read);

    /// <summary>The C# blocks of <paramref name="file"/>.</summary>
    public static IEnumerable<MarkdownSnippet> Read(string file)
    {
        var lines = System.IO.File.ReadAllLines(Path.Combine(Root, file));
        for (var i = 0; i < lines.Length; i++)
        {
            var fence = lines[i].Trim();
            if (fence is not ("```csharp" or "```cs" or "```c#"))
            {
                continue;
            }

            var start = i;
            var body = new List<string>();
            for (i++; i < lines.Length && lines[i].Trim() != "```"; i++)
            {
                body.Add(lines[i]);
            }

            var (compileWith, sample) = Markers(lines, start);
            yield return new MarkdownSnippet(file.Replace('\\', '/'), start + 1, body, compileWith, sample);
        }
    }

    /// <summary>The markers on the lines just before the fence at <paramref name="fence"/> (blank lines between are skipped).</summary>
    private static (string CompileWith, string? Sample) Markers(string[] lines, int fence)
    {
        var compileWith = string.Empty;
        string? sample = null;
        for (var j = fence - 1; j >= 0; j--)
        {
            var line = lines[j].Trim();
            if (line.Length == 0)
            {
                continue;
            }

            if (line.StartsWith(CompileWithMarker, StringComparison.Ordinal) && line.EndsWith("-->", StringComparison.Ordinal))
            {
                compileWith = line[CompileWithMarker.Length..^3].Trim() + Environment.NewLine + compileWith;
                continue;
            }

            if (line.StartsWith(SampleMarker, StringComparison.Ordinal) && line.EndsWith("-->", StringComparison.Ordinal))
            {
                sample = line[SampleMarker.Length..^3].Trim();
                continue;
            }

            break;
        }

        return (compileWith, sample);
    }

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (System.IO.File.Exists(Path.Combine(directory.FullName, "Floodgate.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No Floodgate.slnx above {AppContext.BaseDirectory}.");
    }
}

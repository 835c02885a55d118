using System.Text;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Floodgate.Docs.Tests.Snippets;

/// <summary>
/// Compiles a documented C# block as the top-level program of a fresh <c>dotnet new web</c> app, with the same
/// implicit usings, against the shared framework (ASP.NET Core included) and Floodgate's assemblies.
/// </summary>
/// <remarks>
/// A block is compiled as written, its own <c>using</c> lines first. What it takes from its surroundings is declared
/// before it: <c>builder</c> (<c>WebApplication.CreateBuilder(args)</c>), <c>app</c> (<c>builder.Build()</c>) and
/// <c>services</c> (<c>builder.Services</c>) when it uses them without declaring them, and anything else through a
/// <c>&lt;!-- compile with: C# statements --&gt;</c> line just before the fence (such as
/// <c>&lt;!-- compile with: var o = new RedisStoreOptions(); --&gt;</c>). A block that only declares types (a
/// controller) is compiled as a library.
/// </remarks>
public static partial class SnippetCompiler
{
    /// <summary>The implicit usings of a project on Microsoft.NET.Sdk.Web, as a new app has them.</summary>
    private const string WebAppUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Net.Http.Json;
        global using System.Threading;
        global using System.Threading.Tasks;
        global using Microsoft.AspNetCore.Builder;
        global using Microsoft.AspNetCore.Hosting;
        global using Microsoft.AspNetCore.Http;
        global using Microsoft.AspNetCore.Routing;
        global using Microsoft.Extensions.Configuration;
        global using Microsoft.Extensions.DependencyInjection;
        global using Microsoft.Extensions.Hosting;
        global using Microsoft.Extensions.Logging;
        """;

    private static readonly Lazy<IReadOnlyList<MetadataReference>> References = new(LoadReferences);

    /// <summary>The errors of <paramref name="snippet"/>, each with the block's line and its text; none when it compiles.</summary>
    public static IReadOnlyList<string> Errors(MarkdownSnippet snippet)
    {
        var (source, origins) = Program(snippet);
        var tree = CSharpSyntaxTree.ParseText(source, new CSharpParseOptions(LanguageVersion.Latest), path: snippet.ToString());
        var usings = CSharpSyntaxTree.ParseText(WebAppUsings, new CSharpParseOptions(LanguageVersion.Latest), path: "GlobalUsings.g.cs");
        var compilation = CSharpCompilation.Create(
            "Snippet",
            [usings, tree],
            References.Value,
            new CSharpCompilationOptions(Kind(tree), nullableContextOptions: NullableContextOptions.Enable));
        var errors = new List<string>();
        foreach (var diagnostic in compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error))
        {
            var line = diagnostic.Location.GetLineSpan().StartLinePosition.Line;
            var origin = line >= 0 && line < origins.Count ? origins[line] : "(outside the block)";
            errors.Add($"{origin}: {diagnostic.Id}: {diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}");
        }

        return errors;
    }

    /// <summary>A program when the block has statements; a library when it only declares types (a controller).</summary>
    private static OutputKind Kind(SyntaxTree tree) =>
        tree.GetRoot().DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.GlobalStatementSyntax>().Any()
            ? OutputKind.ConsoleApplication
            : OutputKind.DynamicallyLinkedLibrary;

    /// <summary>The program compiled for <paramref name="snippet"/>, and for each of its lines where it comes from.</summary>
    public static (string Source, IReadOnlyList<string> Origins) Program(MarkdownSnippet snippet)
    {
        var text = new StringBuilder();
        var origins = new List<string>();
        void Add(string line, string origin)
        {
            text.AppendLine(line);
            origins.Add(origin);
        }

        string BlockLine(int index) => $"{snippet.File}:{snippet.Line + 1 + index} `{snippet.Lines[index].Trim()}`";

        // The block's own using directives first, as C# requires them before any statement.
        var body = 0;
        while (body < snippet.Lines.Count && (IsUsingDirective(snippet.Lines[body]) || string.IsNullOrWhiteSpace(snippet.Lines[body]) || snippet.Lines[body].TrimStart().StartsWith("//", StringComparison.Ordinal)))
        {
            Add(snippet.Lines[body], BlockLine(body));
            body++;
        }

        var rest = string.Join('\n', snippet.Lines.Skip(body));
        if (Uses(rest, "builder") && !Declares(rest, "builder"))
        {
            Add("var builder = WebApplication.CreateBuilder(args);", "the assumed `var builder = WebApplication.CreateBuilder(args);`");
        }

        if (Uses(rest, "services") && !Declares(rest, "services"))
        {
            Add("var services = WebApplication.CreateBuilder(args).Services;", "the assumed `var services = builder.Services;`");
        }

        if (Uses(rest, "app") && !Declares(rest, "app"))
        {
            Add("var app = WebApplication.CreateBuilder(args).Build();", "the assumed `var app = builder.Build();`");
        }

        foreach (var line in snippet.CompileWith.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries))
        {
            Add(line, $"the block's `<!-- compile with: {line} -->`");
        }

        for (var i = body; i < snippet.Lines.Count; i++)
        {
            Add(snippet.Lines[i], BlockLine(i));
        }

        return (text.ToString(), origins);
    }

    private static bool IsUsingDirective(string line)
    {
        var trimmed = line.TrimStart();
        return trimmed.StartsWith("using ", StringComparison.Ordinal) && trimmed.TrimEnd().EndsWith(';') && !trimmed.StartsWith("using var ", StringComparison.Ordinal) && !trimmed.Contains('(', StringComparison.Ordinal);
    }

    private static bool Uses(string code, string name) => Regex.IsMatch(code, $@"(?<![\w.]){name}\b");

    private static bool Declares(string code, string name) => Regex.IsMatch(code, $@"\b(var|WebApplication|WebApplicationBuilder|IServiceCollection)\s+{name}\s*=");

    /// <summary>The shared framework's assemblies (ASP.NET Core's included), then those of the tests' output not in it (Floodgate's and its packages').</summary>
    private static List<MetadataReference> LoadReferences()
    {
        var frameworks = new[] { typeof(object).Assembly.Location, typeof(Microsoft.AspNetCore.Builder.WebApplication).Assembly.Location }.Select(Path.GetDirectoryName).Distinct();
        var byName = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var directory in frameworks)
        {
            foreach (var file in Directory.GetFiles(directory!, "*.dll"))
            {
                byName.TryAdd(Path.GetFileNameWithoutExtension(file), file);
            }
        }

        foreach (var file in Directory.GetFiles(AppContext.BaseDirectory, "*.dll"))
        {
            var name = Path.GetFileNameWithoutExtension(file);
            if (!name.StartsWith("Microsoft.CodeAnalysis", StringComparison.Ordinal) && !name.StartsWith("xunit", StringComparison.Ordinal))
            {
                byName.TryAdd(name, file);
            }
        }

        var references = new List<MetadataReference>();
        foreach (var file in byName.Values)
        {
            if (IsManaged(file))
            {
                references.Add(MetadataReference.CreateFromFile(file));
            }
        }

        return references;
    }

    private static bool IsManaged(string file)
    {
        try
        {
            System.Reflection.AssemblyName.GetAssemblyName(file);
            return true;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }
}

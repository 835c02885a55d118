using Floodgate.Docs.Tests.Snippets;

namespace Floodgate.Docs.Tests.Algorithms;

/// <summary>
/// The plots of docs/algorithms.md are what the engine decides today. Regenerate them with
/// <c>FLOODGATE_WRITE_PLOTS=1 dotnet test tests/Floodgate.Docs.Tests -c Release --filter FullyQualifiedName~AlgorithmPlotTests</c>.
/// </summary>
public sealed class AlgorithmPlotTests
{
    private const string Regenerate = "FLOODGATE_WRITE_PLOTS=1 dotnet test tests/Floodgate.Docs.Tests -c Release --filter FullyQualifiedName~AlgorithmPlotTests";

    public static TheoryData<string> Names()
    {
        var names = new TheoryData<string>();
        foreach (var algorithm in AlgorithmPlots.Algorithms)
        {
            names.Add(algorithm.Name);
        }

        return names;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Checked_in_plot_is_current(string name)
    {
        var algorithm = AlgorithmPlots.Algorithms.Single(a => a.Name == name);
        var svg = AlgorithmPlots.Svg(algorithm, AlgorithmPlots.Run(algorithm));
        var path = AlgorithmPlots.PathOf(MarkdownSnippets.Root, algorithm);
        if (Environment.GetEnvironmentVariable("FLOODGATE_WRITE_PLOTS") == "1")
        {
            File.WriteAllText(path, svg);
        }

        Assert.True(File.Exists(path), $"{path} is missing; generate it with: {Regenerate}");
        Assert.True(File.ReadAllText(path).ReplaceLineEndings("\n") == svg, $"{path} is stale: the engine now decides differently. Regenerate it with: {Regenerate}");
    }

    [Fact]
    public void Every_plot_is_shown_in_docs_algorithms_md()
    {
        var page = File.ReadAllText(Path.Combine(MarkdownSnippets.Root, "docs", "algorithms.md"));
        Assert.All(AlgorithmPlots.Algorithms, a => Assert.Contains($"images/{a.Name}.svg", page, StringComparison.Ordinal));
    }

    [Fact]
    public void The_runs_keep_each_algorithm_s_bound()
    {
        // The plots are the engine's decisions: check the properties the page states against them.
        var admitted = AlgorithmPlots.Algorithms.ToDictionary(a => a.Name, a => AlgorithmPlots.Run(a).Admitted);
        Assert.Equal(admitted["algorithm-gcra"], admitted["algorithm-leaky-bucket"]);
        Assert.All(admitted.Values, a => Assert.InRange(a.Count, 1, 90));

        // The sliding log: at most 10 in any window of one second, wherever it starts.
        var log = admitted["algorithm-sliding-log"];
        Assert.All(log, t => Assert.InRange(log.Count(u => u > t - 1.0 + 1e-9 && u <= t), 1, 10));

        // The queue: requests leave at least 100 ms apart.
        var queue = admitted["algorithm-leaky-bucket-queue"];
        Assert.All(queue.Zip(queue.Skip(1)), p => Assert.True(p.Second - p.First >= 0.1 - 1e-9, $"{p.First} then {p.Second}"));

        // Fixed windows: more than 10 within one second across a window's edge.
        var fixedWindow = admitted["algorithm-fixed-window"];
        Assert.Contains(fixedWindow, t => fixedWindow.Count(u => u >= t && u < t + 1.0) > 10);
    }
}

using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Policy;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Tests.Deploy;

/// <summary>
/// The deployment files mean what the gateway expects: every Kubernetes overlay rendered by a real
/// <c>kubectl kustomize</c>, docker-compose.yml and the Dockerfile parsed; their ports, probe paths, policy and
/// autoscaler agree with the gateway's defaults and admin endpoints, and every container runs unprivileged.
/// </summary>
public sealed class DeploymentTests
{
    private static readonly GatewayHostOptions Defaults = new() { PolicyPath = "policy.yaml" };

    public static TheoryData<string> Overlays => new() { "redis-single", "sentinel", "cluster" };

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Every_overlay_renders_a_gateway_that_agrees_with_its_defaults(string overlay)
    {
        var rendered = Tools.Run("kubectl", Tools.Deploy("kubernetes"), TimeSpan.FromSeconds(120), "kustomize", Path.Combine("overlays", overlay));
        Assert.True(rendered.Code == 0, rendered.Errors);
        var documents = Documents(rendered.Output);

        var deployment = Single(documents, "Deployment", "floodgate");
        var pod = Map(Map(deployment, "spec", "template"), "spec");
        var gateway = Seq(pod, "containers").Cast<YamlMappingNode>().Single(c => Text(c, "name") == "gateway");
        var ports = Seq(gateway, "ports").Cast<YamlMappingNode>().ToDictionary(p => Text(p, "name"), p => int.Parse(Text(p, "containerPort"), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(Defaults.Listen.Port, ports["http"]);
        Assert.Equal(Defaults.Admin!.Port, ports["admin"]);

        // The arguments listen on those ports, on every interface, and name the mounted policy.
        var args = Seq(gateway, "args").Select(a => ((YamlScalarNode)a).Value!).ToList();
        Assert.Contains($"--listen=http://0.0.0.0:{Defaults.Listen.Port}", args);
        Assert.Contains($"--admin=http://0.0.0.0:{Defaults.Admin.Port}", args);
        var policyArg = args.Single(a => a.StartsWith("--policy=", StringComparison.Ordinal))["--policy=".Length..];
        var mount = Seq(gateway, "volumeMounts").Cast<YamlMappingNode>().Single(m => Text(m, "name") == "policy");
        Assert.Equal(Text(mount, "mountPath"), Path.GetDirectoryName(policyArg));

        // The policy mounted is valid, and its Redis is the overlay's.
        var configMap = Single(documents, "ConfigMap", "floodgate-policy");
        var policy = PolicyLoader.Parse(Text(Map(configMap, "data"), "policy.yaml"), overlay + "/policy.yaml");
        Assert.Equal(StoreKind.Redis, policy.StoreKind);

        // Probes on the admin port's real paths.
        Assert.Equal("/healthz", Text(Map(Map(gateway, "livenessProbe"), "httpGet"), "path"));
        Assert.Equal("/readyz", Text(Map(Map(gateway, "readinessProbe"), "httpGet"), "path"));
        Assert.Equal("/healthz", Text(Map(Map(gateway, "startupProbe"), "httpGet"), "path"));
        Assert.All(new[] { "livenessProbe", "readinessProbe", "startupProbe" }, probe => Assert.Equal("admin", Text(Map(Map(gateway, probe), "httpGet"), "port")));

        // Drained before it is killed: the grace period covers the shutdown delay and timeout.
        var delay = Seconds(args, "--shutdown-delay=");
        var timeout = Seconds(args, "--shutdown-timeout=");
        Assert.True(int.Parse(Text(pod, "terminationGracePeriodSeconds"), System.Globalization.CultureInfo.InvariantCulture) > delay + timeout);

        // Resources and an unprivileged, read-only container.
        var resources = Map(gateway, "resources");
        Assert.NotNull(Text(Map(resources, "requests"), "cpu"));
        Assert.NotNull(Text(Map(resources, "requests"), "memory"));
        Assert.NotNull(Text(Map(resources, "limits"), "memory"));
        var security = Map(gateway, "securityContext");
        Assert.Equal("true", Text(security, "readOnlyRootFilesystem"));
        Assert.Equal("false", Text(security, "allowPrivilegeEscalation"));
        Assert.Equal("ALL", ((YamlScalarNode)Seq(Map(security, "capabilities"), "drop").Single()).Value);
        Assert.Equal("true", Text(Map(pod, "securityContext"), "runAsNonRoot"));

        // The public Service carries the proxy port only; the admin port is on an internal ClusterIP Service.
        var service = Single(documents, "Service", "floodgate");
        Assert.Equal(["http"], Seq(Map(service, "spec"), "ports").Cast<YamlMappingNode>().Select(p => Text(p, "targetPort")));
        var admin = Single(documents, "Service", "floodgate-admin");
        Assert.Equal("ClusterIP", Text(Map(admin, "spec"), "type"));
        Assert.Equal(["admin"], Seq(Map(admin, "spec"), "ports").Cast<YamlMappingNode>().Select(p => Text(p, "targetPort")));
        Assert.DoesNotContain(documents, d => Text(d, "kind") == "Ingress");

        // The autoscaler and the disruption budget aim at the gateway.
        var hpa = Single(documents, "HorizontalPodAutoscaler", "floodgate");
        Assert.Equal("floodgate", Text(Map(Map(hpa, "spec"), "scaleTargetRef"), "name"));
        Assert.Equal("Deployment", Text(Map(Map(hpa, "spec"), "scaleTargetRef"), "kind"));
        Assert.True(int.Parse(Text(Map(hpa, "spec"), "minReplicas"), System.Globalization.CultureInfo.InvariantCulture) >= 2);
        var selector = Map(Map(deployment, "spec"), "selector");
        var pdb = Single(documents, "PodDisruptionBudget", "floodgate");
        Assert.Equal(Map(selector, "matchLabels").Children.Count, Map(Map(Map(pdb, "spec"), "selector"), "matchLabels").Children.Count);
    }

    [Fact]
    public void The_compose_file_agrees_with_the_gateway_and_the_monitoring_files()
    {
        var root = PolicyTests.RepositoryRoot();
        var compose = (YamlMappingNode)Load(File.ReadAllText(Path.Combine(root, "docker-compose.yml")));
        var services = Map(compose, "services");
        Assert.Equal(["gateway", "lb", "upstream", "redis", "prometheus", "grafana"], services.Children.Keys.Select(k => ((YamlScalarNode)k).Value));

        var gateway = Map(services, "gateway");
        Assert.Equal("3", Text(Map(gateway, "deploy"), "replicas"));
        Assert.Equal("true", Text(gateway, "read_only"));
        Assert.Equal([Defaults.Listen.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), Defaults.Admin!.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)], Seq(gateway, "expose").Select(p => ((YamlScalarNode)p).Value));
        Assert.DoesNotContain(gateway.Children.Keys, k => ((YamlScalarNode)k).Value == "ports");

        // Every file a service mounts is in the repository, and the gateway's policy is valid.
        foreach (var (_, node) in services.Children)
        {
            foreach (var volume in ((YamlMappingNode)node).Children.TryGetValue(new YamlScalarNode("volumes"), out var v) ? ((YamlSequenceNode)v).Select(x => ((YamlScalarNode)x).Value!) : [])
            {
                var source = volume.Split(':')[0];
                Assert.True(File.Exists(Path.Combine(root, source)) || Directory.Exists(Path.Combine(root, source)), $"{source} is missing");
            }
        }

        var policyMount = Seq(gateway, "volumes").Select(x => ((YamlScalarNode)x).Value!).Single();
        Assert.EndsWith(":/etc/floodgate/policy.yaml:ro", policyMount, StringComparison.Ordinal);
        var policy = PolicyLoader.Load(Path.Combine(root, policyMount.Split(':')[0]));
        Assert.Equal(3, policy.RedisStore!.Replicas);

        // nginx forwards to the gateway's proxy port; Prometheus scrapes its admin port and loads the shipped rules.
        Assert.Contains($"server gateway:{Defaults.Listen.Port};", File.ReadAllText(Path.Combine(root, "deploy", "compose", "nginx.conf")), StringComparison.Ordinal);
        var prometheus = (YamlMappingNode)Load(File.ReadAllText(Path.Combine(root, "deploy", "compose", "prometheus.yml")));
        var scrape = (YamlMappingNode)Seq(prometheus, "scrape_configs").Single();
        Assert.Equal(Defaults.Admin.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), Text((YamlMappingNode)Seq(scrape, "dns_sd_configs").Single(), "port"));
        Assert.Equal("/etc/prometheus/floodgate-alerts.yaml", ((YamlScalarNode)Seq(prometheus, "rule_files").Single()).Value);
    }

    [Fact]
    public void The_Dockerfile_runs_unprivileged_on_the_chiseled_runtime_with_a_health_check_on_healthz()
    {
        var lines = File.ReadAllLines(Path.Combine(PolicyTests.RepositoryRoot(), "Dockerfile"));
        var from = lines.Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)).ToList();
        Assert.StartsWith("FROM mcr.microsoft.com/dotnet/aspnet:10.0-", from[^1], StringComparison.Ordinal);
        Assert.Contains("chiseled", from[^1], StringComparison.Ordinal);
        Assert.Contains(lines, l => l.Trim() == "USER 1654");
        var text = string.Join('\n', lines);
        Assert.Contains($"\"probe\", \"http://127.0.0.1:{Defaults.Admin!.Port}/healthz\"", text, StringComparison.Ordinal);
        Assert.Contains($"\"--listen\", \"http://0.0.0.0:{Defaults.Listen.Port}\"", text, StringComparison.Ordinal);
        Assert.Contains($"EXPOSE {Defaults.Listen.Port} {Defaults.Admin.Port}", text, StringComparison.Ordinal);
    }

    private static int Seconds(List<string> args, string option)
    {
        var text = args.Single(a => a.StartsWith(option, StringComparison.Ordinal))[option.Length..];
        Assert.True(YamlReader.TryParseDuration(text, out var value), text);
        return (int)value.TotalSeconds;
    }

    private static List<YamlMappingNode> Documents(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return [.. stream.Documents.Select(d => (YamlMappingNode)d.RootNode)];
    }

    private static YamlNode Load(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents.Single().RootNode;
    }

    private static YamlMappingNode Single(List<YamlMappingNode> documents, string kind, string name) =>
        documents.Single(d => Text(d, "kind") == kind && Text(Map(d, "metadata"), "name") == name);

    private static YamlMappingNode Map(YamlMappingNode node, params string[] path)
    {
        foreach (var key in path)
        {
            node = (YamlMappingNode)node.Children[new YamlScalarNode(key)];
        }

        return node;
    }

    private static YamlSequenceNode Seq(YamlMappingNode node, string key) => (YamlSequenceNode)node.Children[new YamlScalarNode(key)];

    private static string Text(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var value) ? ((YamlScalarNode)value).Value! : null!;
}

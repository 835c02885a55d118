using Microsoft.AspNetCore.Routing.Patterns;
using Yarp.ReverseProxy.Configuration;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>The proxy's part of a policy: <c>upstream</c>, <c>routes</c> and <c>clusters</c>, as the proxy's own configuration types.</summary>
internal static class ProxySection
{
    public static (List<RouteConfig> Routes, List<ClusterConfig> Clusters) Read(YamlReader reader, YamlMappingNode root)
    {
        var routes = new List<RouteConfig>();
        var clusters = new List<ClusterConfig>();

        // The proxy refuses a configuration with two routes or two clusters of one id (ids are case-insensitive), and it
        // would do so after the rules were in force: every id is checked here, generated ones included.
        var routeIds = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var clusterIds = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var traffic = TrafficSection.Read(reader, root);
        var clusterNames = ReadClusters(reader, root, traffic, clusters, clusterIds);
        ReadRoutes(reader, root, traffic, routes, clusters, clusterNames, routeIds, clusterIds);

        var upstream = reader.StringList(root, "upstream", string.Empty);
        if (upstream.Count > 0)
        {
            var destinations = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
            foreach (var (address, node) in upstream)
            {
                if (CheckAddress(reader, node, "upstream", address))
                {
                    destinations[$"upstream{destinations.Count}"] = new DestinationConfig { Address = address };
                }
            }

            if (clusterIds.TryGetValue("upstream", out var clusterOwner) || routeIds.TryGetValue("upstream", out clusterOwner))
            {
                reader.Error(YamlReader.Get(root, "upstream"), "upstream", $"the upstream shortcut makes a route and a cluster named 'upstream', and that is also {clusterOwner}; rename it, or list the upstream as a route.");
            }

            clusters.Add(traffic.Cluster(new ClusterConfig { ClusterId = "upstream", Destinations = destinations, LoadBalancingPolicy = "PowerOfTwoChoices" }, null, "upstream"));
            routes.Add(traffic.Route(new RouteConfig { RouteId = "upstream", ClusterId = "upstream", Order = 100_000, Match = new RouteMatch { Path = "/{**catch-all}" } }, null, "upstream"));
        }

        if (routes.Count == 0 && reader.Errors.Count == 0)
        {
            reader.Error(root, "upstream", "the policy proxies nothing: give 'upstream: http://host:port' or a list of 'routes'.");
        }

        return (routes, clusters);
    }

    private static HashSet<string> ReadClusters(YamlReader reader, YamlMappingNode root, TrafficSection traffic, List<ClusterConfig> clusters, Dictionary<string, string> clusterIds)
    {
        var clusterNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var clustersNode = reader.Map(YamlReader.Get(root, "clusters"), "clusters");
        if (clustersNode is null)
        {
            return clusterNames;
        }

        foreach (var (key, value) in clustersNode.Children)
        {
            if (reader.KeyName(key, "clusters") is not { } name)
            {
                continue;
            }

            var field = $"clusters.{name}";
            var cluster = reader.Map(value, field, ["destinations", "load_balancing", .. TrafficSection.ClusterFields]);
            var destinations = ReadDestinations(reader, cluster, field);
            var balancing = reader.Name(
                cluster,
                "load_balancing",
                field,
                ("round_robin", "RoundRobin"),
                ("random", "Random"),
                ("least_requests", "LeastRequests"),
                ("power_of_two_choices", "PowerOfTwoChoices"),
                ("first", "FirstAlphabetical"));
            if (destinations.Count == 0)
            {
                reader.Error(value, field, "a cluster needs at least one destination.");
                continue;
            }

            clusterNames.Add(name);
            clusterIds[name] = field;
            clusters.Add(traffic.Cluster(new ClusterConfig { ClusterId = name, Destinations = destinations, LoadBalancingPolicy = balancing ?? "PowerOfTwoChoices" }, cluster, field));
        }

        return clusterNames;
    }

    private static void ReadRoutes(
        YamlReader reader,
        YamlMappingNode root,
        TrafficSection traffic,
        List<RouteConfig> routes,
        List<ClusterConfig> clusters,
        HashSet<string> clusterNames,
        Dictionary<string, string> routeIds,
        Dictionary<string, string> clusterIds)
    {
        var routesNode = YamlReader.Get(root, "routes");
        if (routesNode is null || YamlReader.IsNull(routesNode))
        {
            return;
        }

        if (routesNode is not YamlSequenceNode list)
        {
            reader.Error(routesNode, "routes", "expected a list of routes.");
            return;
        }

        for (var i = 0; i < list.Children.Count; i++)
        {
            var field = $"routes[{i}]";
            var route = reader.Map(list.Children[i], field, ["id", "path", "methods", "method", "hosts", "host", "cluster", "destinations", "order", "credentials", .. TrafficSection.RouteFields, .. TrafficSection.ClusterFields]);
            if (route is null)
            {
                reader.Error(list.Children[i], field, "expected a route: id, path, methods, hosts, and cluster or destinations.");
                continue;
            }

            var id = reader.String(route, "id", field) ?? $"route{i}";
            if (!routeIds.TryAdd(id, field))
            {
                reader.Error(YamlReader.Get(route, "id") ?? list.Children[i], $"{field}.id", $"'{id}' is also the id of {routeIds[id]}; route ids must be unique (case-insensitive).");
                continue;
            }

            var path = reader.String(route, "path", field);
            if (path is not null)
            {
                try
                {
                    RoutePatternFactory.Parse(path);
                }
                catch (RoutePatternException e)
                {
                    reader.Error(YamlReader.Get(route, "path"), $"{field}.path", $"'{path}' is not a route template: {e.Message}");
                }
            }

            var methods = reader.StringList(route, "methods", field).Concat(reader.StringList(route, "method", field)).Select(m => m.Value.ToUpperInvariant()).ToList();
            var hosts = reader.StringList(route, "hosts", field).Concat(reader.StringList(route, "host", field)).Select(h => h.Value).ToList();
            if (path is null && hosts.Count == 0)
            {
                reader.Error(list.Children[i], field, "a route needs a path or hosts.");
            }

            var clusterId = reader.String(route, "cluster", field);
            var inline = ReadDestinations(reader, route, field);
            if (clusterId is null && inline.Count == 0)
            {
                reader.Error(list.Children[i], field, "a route needs a cluster or destinations.");
                continue;
            }

            if (clusterId is not null && inline.Count > 0)
            {
                reader.Error(list.Children[i], field, "give a cluster or destinations, not both.");
                continue;
            }

            if (clusterId is null)
            {
                clusterId = $"{id}-cluster";
                if (!clusterIds.TryAdd(clusterId, $"{field}.destinations"))
                {
                    reader.Error(list.Children[i], $"{field}.destinations", $"a route's destinations make a cluster named '{clusterId}', and that is also {clusterIds[clusterId]}; rename one.");
                    continue;
                }

                clusters.Add(traffic.Cluster(new ClusterConfig { ClusterId = clusterId, Destinations = inline, LoadBalancingPolicy = "PowerOfTwoChoices" }, route, field));
            }
            else if (!clusterNames.Contains(clusterId))
            {
                reader.Error(YamlReader.Get(route, "cluster"), $"{field}.cluster", $"'{clusterId}' is not a cluster; the clusters are: {string.Join(", ", clusterNames)}.");
                continue;
            }
            else
            {
                traffic.RefuseClusterFields(route, field, clusterId);
            }

            routes.Add(ApiKeysSection.Route(reader, traffic.Route(new RouteConfig
            {
                RouteId = id,
                ClusterId = clusterId,
                Order = (int?)reader.Integer(route, "order", field, -10000, 10000),
                Match = new RouteMatch
                {
                    Path = path,
                    Methods = methods.Count > 0 ? methods : null,
                    Hosts = hosts.Count > 0 ? hosts : null,
                },
            }, route, field), route, field));
        }
    }

    private static Dictionary<string, DestinationConfig> ReadDestinations(YamlReader reader, YamlMappingNode? map, string field)
    {
        var result = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
        var node = YamlReader.Get(map, "destinations");
        if (node is YamlMappingNode named)
        {
            foreach (var (key, value) in named.Children)
            {
                if (reader.KeyName(key, $"{field}.destinations") is not { } name)
                {
                    continue;
                }

                if (value is YamlScalarNode { Value: { } address } && CheckAddress(reader, value, $"{field}.destinations.{name}", address))
                {
                    result[name] = new DestinationConfig { Address = address };
                }
                else if (value is not YamlScalarNode)
                {
                    reader.Error(value, $"{field}.destinations.{name}", "expected an address such as http://127.0.0.1:5000.");
                }
            }

            return result;
        }

        foreach (var (address, value) in reader.StringList(map, "destinations", field))
        {
            if (CheckAddress(reader, value, $"{field}.destinations", address))
            {
                result[$"d{result.Count}"] = new DestinationConfig { Address = address };
            }
        }

        return result;
    }

    private static bool CheckAddress(YamlReader reader, YamlNode node, string field, string address)
    {
        if (Uri.TryCreate(address, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) && !string.IsNullOrEmpty(uri.Host))
        {
            return true;
        }

        reader.Error(node, field, $"'{address}' is not an http:// or https:// address such as http://127.0.0.1:5000.");
        return false;
    }
}

using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Http;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Routing.Patterns;
using Yarp.ReverseProxy.Configuration;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy;

/// <summary>
/// Reads and validates a policy file. Every problem is reported at once, each with file, line and field, so one run
/// of <c>floodgate check</c> shows everything to fix.
/// </summary>
public static class PolicyLoader
{
    private static readonly string[] TopLevel =
    [
        "upstream", "routes", "clusters", "store", "identity", "anonymous", "plans", "default_plan",
        "edge", "user", "service", "global", "trusted_proxies", "forwarded_header", "headers", "shadow", "ipv6_prefix",
    ];

    private static readonly string[] RuleFields =
    [
        "name", "match", "key", "limit", "burst", "algorithm", "cost", "mode", "ban", "concurrency",
        "lease_timeout", "calendar", "time_zone", "leased_slice", "on_failure",
    ];

    /// <summary>
    /// The key files <c>identity.jwt.keys</c> names in the file at <paramref name="path"/>, read as far as it can be, valid
    /// or not; none when it cannot be read. The watcher watches these too, so that a key file a refused policy named is
    /// picked up when it appears.
    /// </summary>
    internal static IReadOnlyList<string> KeyFilesNamedIn(string path)
    {
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(File.ReadAllText(path)));
            var identity = stream.Documents.Count > 0 ? YamlReader.Get(stream.Documents[0].RootNode as YamlMappingNode, "identity") : null;
            return YamlReader.Get(YamlReader.Get(identity as YamlMappingNode, "jwt") as YamlMappingNode, "keys") switch
            {
                YamlScalarNode { Value: { } one } => [one],
                YamlSequenceNode list => [.. list.Children.OfType<YamlScalarNode>().Select(k => k.Value).OfType<string>()],
                _ => [],
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or YamlException or InvalidOperationException)
        {
            return [];
        }
    }

    /// <summary>Reads and validates the policy file at <paramref name="path"/>.</summary>
    /// <exception cref="PolicyException">The file is missing, unreadable or invalid; the errors say where and why.</exception>
    public static GatewayPolicy Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new PolicyException([new PolicyError(path, 0, 0, "(file)", $"cannot be read: {e.Message}")]);
        }

        return Parse(text, path);
    }

    /// <summary>Validates the policy in <paramref name="text"/>, naming it <paramref name="file"/> in errors.</summary>
    /// <exception cref="PolicyException">The policy is invalid.</exception>
    public static GatewayPolicy Parse(string text, string file)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(file);
        var reader = new YamlReader(file);
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new PolicyException([new PolicyError(file, (int)e.Start.Line, (int)e.Start.Column, "(syntax)", e.InnerException?.Message ?? e.Message)]);
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet's scanner throws this on some truncated documents, without a position.
            throw new PolicyException([new PolicyError(file, 0, 0, "(syntax)", $"the YAML is malformed or truncated ({e.Message})")]);
        }

        if (stream.Documents.Count == 0)
        {
            throw new PolicyException([new PolicyError(file, 0, 0, "(file)", "is empty; a policy needs at least 'upstream' or 'routes'.")]);
        }

        if (stream.Documents.Count > 1)
        {
            // Everything after a '---' would otherwise be dropped without a word, and its rules with it.
            var second = stream.Documents[1].RootNode.Start;
            throw new PolicyException([new PolicyError(file, (int)second.Line, (int)second.Column, "(file)", "holds more than one YAML document ('---'); a policy is one document.")]);
        }

        var root = reader.Map(stream.Documents[0].RootNode, string.Empty, TopLevel);
        if (root is null)
        {
            throw new PolicyException(reader.Errors.Count > 0 ? reader.Errors : [new PolicyError(file, 1, 1, "(file)", "expected a mapping of policy fields.")]);
        }

        var (routes, clusters) = ReadProxy(reader, root);
        var store = ReadStore(reader, root);
        var identity = reader.Map(YamlReader.Get(root, "identity"), "identity", "jwt", "anonymous");
        var jwt = ReadJwt(reader, identity);
        var anonymous = reader.Enum(identity, "anonymous", "identity", ("allow", AnonymousPolicy.Allow), ("reject", AnonymousPolicy.Reject))
            ?? reader.Enum(root, "anonymous", string.Empty, ("allow", AnonymousPolicy.Allow), ("reject", AnonymousPolicy.Reject))
            ?? AnonymousPolicy.Allow;
        var defaultPlan = reader.String(root, "default_plan", string.Empty) ?? jwt?.DefaultPlan;
        if (jwt is not null && jwt.DefaultPlan is null && defaultPlan is not null)
        {
            jwt = jwt with { DefaultPlan = defaultPlan };
        }

        var plans = ReadPlans(reader, root);
        if (plans.Count > 0)
        {
            // Both places a default plan may be named are checked, each at its own line.
            var jwtNode = YamlReader.Get(identity, "jwt") as YamlMappingNode;
            foreach (var (node, field) in new[] { (YamlReader.Get(root, "default_plan"), "default_plan"), (YamlReader.Get(jwtNode, "default_plan"), "identity.jwt.default_plan") })
            {
                if (node is YamlScalarNode { Value: { } named } && !plans.ContainsKey(named))
                {
                    reader.Error(node, field, $"'{named}' is not a plan; the plans are: {string.Join(", ", plans.Keys)}.");
                }
            }
        }

        var rules = new List<RateLimitRule>();
        var bans = new Dictionary<string, TimeSpan>(StringComparer.OrdinalIgnoreCase);
        var names = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (tierName, tier) in new[] { ("edge", RateLimitTier.Edge), ("user", RateLimitTier.User), ("service", RateLimitTier.Service), ("global", RateLimitTier.Global) })
        {
            var node = YamlReader.Get(root, tierName);
            if (node is null || YamlReader.IsNull(node))
            {
                continue;
            }

            if (node is not YamlSequenceNode list)
            {
                reader.Error(node, tierName, "expected a list of rules.");
                continue;
            }

            for (var i = 0; i < list.Children.Count; i++)
            {
                var field = $"{tierName}[{i}]";
                var rule = ReadRule(reader, list.Children[i], field, tier, plans, defaultPlan, bans);
                if (rule is null)
                {
                    continue;
                }

                if (names.TryGetValue(rule.Name, out var other))
                {
                    reader.Error(YamlReader.Get((YamlMappingNode)list.Children[i], "name"), $"{field}.name", $"'{rule.Name}' is also the name of {other}; rule names must be unique.");
                    continue;
                }

                names[rule.Name] = field;
                rules.Add(rule);
            }
        }

        var proxies = new List<string>();
        foreach (var (range, node) in reader.StringList(root, "trusted_proxies", string.Empty))
        {
            try
            {
                TrustedProxies.ParseRange(range);
                proxies.Add(range);
            }
            catch (FormatException e)
            {
                reader.Error(node, "trusted_proxies", e.Message);
            }
        }

        var forwardedHeader = reader.Enum(root, "forwarded_header", string.Empty, ("x-forwarded-for", ForwardedHeader.XForwardedFor), ("forwarded", ForwardedHeader.Forwarded))
            ?? ForwardedHeader.XForwardedFor;
        var headers = reader.Map(YamlReader.Get(root, "headers"), "headers", "ietf", "legacy", "x_ratelimit");
        var ietf = reader.Bool(headers, "ietf", "headers") ?? true;
        var legacy = reader.Bool(headers, "legacy", "headers") ?? reader.Bool(headers, "x_ratelimit", "headers") ?? false;
        var shadow = reader.Bool(root, "shadow", string.Empty) ?? false;
        var ipv6 = (int)(reader.Integer(root, "ipv6_prefix", string.Empty, 8, 128) ?? 64);

        if (reader.Errors.Count > 0)
        {
            throw new PolicyException([.. reader.Errors.OrderBy(e => e.Line).ThenBy(e => e.Column)]);
        }

        return new GatewayPolicy
        {
            Source = file,
            // The key files count too: a rotated key is a new policy, and a reload puts it in force.
            Version = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text + "\n" + jwt?.KeyFilesFingerprint)))[..12],
            Rules = new RateLimitPolicy(rules) { ShadowAll = shadow, Ipv6PrefixLength = ipv6 },
            Bans = bans,
            TrustedProxies = proxies,
            ForwardedHeader = forwardedHeader,
            Anonymous = anonymous,
            IetfHeaders = ietf,
            LegacyHeaders = legacy,
            Routes = routes,
            Clusters = clusters,
            Store = store,
            Jwt = jwt,
        };
    }

    private static (List<RouteConfig> Routes, List<ClusterConfig> Clusters) ReadProxy(YamlReader reader, YamlMappingNode root)
    {
        var routes = new List<RouteConfig>();
        var clusters = new List<ClusterConfig>();
        var clusterNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        // The proxy refuses a configuration with two routes or two clusters of one id (ids are case-insensitive), and it
        // would do so after the rules were in force: every id is checked here, generated ones included.
        var routeIds = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var clusterIds = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var clustersNode = reader.Map(YamlReader.Get(root, "clusters"), "clusters");
        if (clustersNode is not null)
        {
            foreach (var (key, value) in clustersNode.Children)
            {
                if (reader.KeyName(key, "clusters") is not { } name)
                {
                    continue;
                }

                var field = $"clusters.{name}";
                var cluster = reader.Map(value, field, "destinations", "load_balancing");
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
                clusters.Add(new ClusterConfig { ClusterId = name, Destinations = destinations, LoadBalancingPolicy = balancing ?? "PowerOfTwoChoices" });
            }
        }

        var routesNode = YamlReader.Get(root, "routes");
        if (routesNode is not null && !YamlReader.IsNull(routesNode))
        {
            if (routesNode is not YamlSequenceNode list)
            {
                reader.Error(routesNode, "routes", "expected a list of routes.");
            }
            else
            {
                for (var i = 0; i < list.Children.Count; i++)
                {
                    var field = $"routes[{i}]";
                    var route = reader.Map(list.Children[i], field, "id", "path", "methods", "method", "hosts", "host", "cluster", "destinations", "order");
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

                        clusters.Add(new ClusterConfig { ClusterId = clusterId, Destinations = inline, LoadBalancingPolicy = "PowerOfTwoChoices" });
                    }
                    else if (!clusterNames.Contains(clusterId))
                    {
                        reader.Error(YamlReader.Get(route, "cluster"), $"{field}.cluster", $"'{clusterId}' is not a cluster; the clusters are: {string.Join(", ", clusterNames)}.");
                        continue;
                    }

                    routes.Add(new RouteConfig
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
                    });
                }
            }
        }

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

            clusters.Add(new ClusterConfig { ClusterId = "upstream", Destinations = destinations, LoadBalancingPolicy = "PowerOfTwoChoices" });
            routes.Add(new RouteConfig { RouteId = "upstream", ClusterId = "upstream", Order = 100_000, Match = new RouteMatch { Path = "/{**catch-all}" } });
        }

        if (routes.Count == 0 && reader.Errors.Count == 0)
        {
            reader.Error(root, "upstream", "the policy proxies nothing: give 'upstream: http://host:port' or a list of 'routes'.");
        }

        return (routes, clusters);
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

    private static readonly string[] RedisOnlyStoreFields = ["configuration", "on_failure", "replicas", "timeout", "key_prefix", "tls_ca", "tls_client_cert", "tls_client_key"];
    private static readonly string[] MemoryOnlyStoreFields = ["max_entries"];

    private static StorePolicy ReadStore(YamlReader reader, YamlMappingNode root)
    {
        var map = reader.Map(YamlReader.Get(root, "store"), "store", ["kind", .. MemoryOnlyStoreFields, .. RedisOnlyStoreFields]);
        if (map is null)
        {
            return new StorePolicy();
        }

        var namedKind = reader.Enum(map, "kind", "store", ("memory", StoreKind.Memory), ("redis", StoreKind.Redis), ("valkey", StoreKind.Redis));
        var kind = namedKind ?? StoreKind.Memory;
        var store = new StorePolicy
        {
            Kind = kind,
            MaxEntries = (int)(reader.Integer(map, "max_entries", "store", 1, 100_000_000) ?? 1_000_000),
            Configuration = reader.String(map, "configuration", "store"),
            OnFailure = reader.Enum(map, "on_failure", "store", ("open", StoreFailureMode.Open), ("closed", StoreFailureMode.Closed), ("local", StoreFailureMode.Local)) ?? StoreFailureMode.Open,
            Replicas = (int)(reader.Integer(map, "replicas", "store", 1, 10_000) ?? 1),
            Timeout = reader.Duration(map, "timeout", "store", TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(30)),
            KeyPrefix = reader.String(map, "key_prefix", "store"),
            TlsCa = reader.String(map, "tls_ca", "store"),
            TlsClientCertificate = reader.String(map, "tls_client_cert", "store"),
            TlsClientKey = reader.String(map, "tls_client_key", "store"),
        };
        // A field of the other kind of store would be silently ignored; a redis field under the memory store most often
        // means a forgotten kind: redis, and replicas that each count alone. A kind that is itself wrong is reported
        // alone: the fields are not known to be misplaced.
        var kindNode = YamlReader.Get(map, "kind");
        var kindValid = kindNode is null || namedKind is not null;
        foreach (var field in !kindValid ? [] : kind == StoreKind.Memory ? RedisOnlyStoreFields : MemoryOnlyStoreFields)
        {
            if (YamlReader.Get(map, field) is { } node && node is not YamlScalarNode { Value: null or "" })
            {
                var other = kind == StoreKind.Memory ? "redis" : "memory";
                var current = kind == StoreKind.Redis ? "redis" : kindNode is null ? "memory (the default kind)" : "memory";
                reader.Error(node, $"store.{field}", $"applies to the {other} store only, and this store is {current}: set kind: {other}, or remove it.");
            }
        }

        if (kind == StoreKind.Redis && string.IsNullOrWhiteSpace(store.Configuration))
        {
            reader.Error(map, "store.configuration", "a redis store needs a configuration such as 'localhost:6379'.");
        }
        else if (kind == StoreKind.Redis)
        {
            // Parsed now, as the store will parse it: a misspelt option is refused with its line, by `floodgate check`
            // too, not when the store opens (at start, or at a reload that changes the store).
            try
            {
                _ = StackExchange.Redis.ConfigurationOptions.Parse(store.Configuration!);
            }
            catch (Exception e) when (e is ArgumentException or FormatException or NotSupportedException)
            {
                reader.Error(YamlReader.Get(map, "configuration"), "store.configuration", $"is not a Redis configuration: {e.Message}");
            }
        }

        if (kind == StoreKind.Redis && store.KeyPrefix is { } prefix)
        {
            try
            {
                new Floodgate.Redis.RedisStoreOptions { KeyPrefix = prefix }.Validate(requireConfiguration: false);
            }
            catch (ArgumentException e)
            {
                reader.Error(YamlReader.Get(map, "key_prefix"), "store.key_prefix", MessageOf(e));
            }
        }

        ReadStoreTls(reader, map, store);
        return store;
    }

    /// <summary>Checks the store's TLS files now, so that a missing or wrong file is refused at load with its line.</summary>
    private static void ReadStoreTls(YamlReader reader, YamlMappingNode map, StorePolicy store)
    {
        // The store's own readers, so that what the loader accepts the store can use; the loader adds file and line.
        if (store.TlsCa is { } ca && ReadableFile(reader, map, "tls_ca", ca, "CA certificate file"))
        {
            var authorities = Floodgate.Redis.RedisTls.ReadAuthorities(ExpandHome(ca), out var problem);
            if (authorities is null)
            {
                reader.Error(YamlReader.Get(map, "tls_ca"), "store.tls_ca", $"'{ca}' {problem}");
            }
            else
            {
                foreach (var authority in authorities)
                {
                    authority.Dispose();
                }
            }
        }

        if (store.TlsClientKey is not null && store.TlsClientCertificate is null)
        {
            reader.Error(YamlReader.Get(map, "tls_client_key"), "store.tls_client_key", "a client key needs its certificate: set tls_client_cert too.");
        }

        if (store.TlsClientCertificate is { } certificate && ReadableFile(reader, map, "tls_client_cert", certificate, "client certificate file")
            && (store.TlsClientKey is not { } key || ReadableFile(reader, map, "tls_client_key", key, "client key file")))
        {
            using var client = Floodgate.Redis.RedisTls.ReadClientCertificate(ExpandHome(certificate), store.TlsClientKey is { } keyFile ? ExpandHome(keyFile) : null, out var problem);
            if (client is null)
            {
                var pair = store.TlsClientKey is null ? $"'{certificate}' (with its key in the same file)" : $"'{certificate}' with the key '{store.TlsClientKey}'";
                reader.Error(YamlReader.Get(map, "tls_client_cert"), "store.tls_client_cert", $"{pair} {problem}");
            }
        }
    }

    private static bool ReadableFile(YamlReader reader, YamlMappingNode map, string key, string file, string what)
    {
        var node = YamlReader.Get(map, key);
        if (!File.Exists(ExpandHome(file)))
        {
            reader.Error(node, $"store.{key}", $"the {what} '{file}' does not exist.");
            return false;
        }

        try
        {
            using var stream = File.OpenRead(ExpandHome(file));
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            reader.Error(node, $"store.{key}", $"the {what} '{file}' cannot be read: {e.Message}");
            return false;
        }
    }

    private static JwtPolicy? ReadJwt(YamlReader reader, YamlMappingNode? identity)
    {
        var map = reader.Map(
            YamlReader.Get(identity, "jwt"),
            "identity.jwt",
            "authority", "jwks_url", "keys", "secret", "issuer", "issuers", "audience", "audiences", "subject", "plan", "default_plan", "clock_skew", "algorithms", "require_https");
        if (map is null)
        {
            return null;
        }

        const string Field = "identity.jwt";
        var errorsBefore = reader.Errors.Count;
        var jwt = new JwtPolicy
        {
            Authority = reader.String(map, "authority", Field),
            JwksUrl = reader.String(map, "jwks_url", Field),
            KeyFiles = [.. reader.StringList(map, "keys", Field).Select(k => k.Value)],
            Secret = reader.String(map, "secret", Field),
            Issuers = [.. reader.StringList(map, "issuer", Field).Concat(reader.StringList(map, "issuers", Field)).Select(k => k.Value)],
            Audiences = [.. reader.StringList(map, "audience", Field).Concat(reader.StringList(map, "audiences", Field)).Select(k => k.Value)],
            SubjectClaims = reader.StringList(map, "subject", Field) is { Count: > 0 } subject ? [.. subject.Select(s => s.Value)] : ["sub"],
            PlanClaim = reader.String(map, "plan", Field) ?? "plan",
            DefaultPlan = reader.String(map, "default_plan", Field),
            ClockSkew = reader.Duration(map, "clock_skew", Field, TimeSpan.Zero, TimeSpan.FromMinutes(5)) ?? TimeSpan.FromSeconds(30),
            Algorithms = [.. reader.StringList(map, "algorithms", Field).Select(k => k.Value)],
            RequireHttps = reader.Bool(map, "require_https", Field) ?? true,
        };
        var sources = (jwt.Authority is null ? 0 : 1) + (jwt.JwksUrl is null ? 0 : 1) + (jwt.KeyFiles.Count > 0 ? 1 : 0) + (jwt.Secret is null ? 0 : 1);
        if (sources == 0)
        {
            reader.Error(map, Field, "name where keys come from: authority (OIDC discovery), jwks_url, keys (files) or secret (HS*).");
        }

        foreach (var (name, url) in new[] { ("authority", jwt.Authority), ("jwks_url", jwt.JwksUrl) })
        {
            if (url is not null && !(Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || (uri.Scheme == Uri.UriSchemeHttp && !jwt.RequireHttps))))
            {
                reader.Error(YamlReader.Get(map, name), $"{Field}.{name}", $"'{url}' must be an https:// URL (http:// only with require_https: false).");
            }
        }

        using (var fingerprint = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            foreach (var (file, node) in reader.StringList(map, "keys", Field))
            {
                try
                {
                    fingerprint.AppendData(SHA256.HashData(File.ReadAllBytes(ExpandHome(file))));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    reader.Error(node, $"{Field}.keys", File.Exists(ExpandHome(file)) ? $"the key file '{file}' cannot be read: {e.Message}" : $"the key file '{file}' does not exist.");
                }
            }

            jwt = jwt with { KeyFilesFingerprint = Convert.ToHexStringLower(fingerprint.GetHashAndReset()) };
        }

        if (jwt.Audiences.Count == 0)
        {
            reader.Error(map, $"{Field}.audiences", "name at least one accepted audience; a token for another API must not pass.");
        }

        if (jwt.Secret is { Length: < 32 })
        {
            reader.Error(YamlReader.Get(map, "secret"), $"{Field}.secret", "an HS* secret must be at least 32 characters.");
        }

        foreach (var (algorithm, node) in reader.StringList(map, "algorithms", Field))
        {
            if (algorithm is not ("RS256" or "RS384" or "RS512" or "PS256" or "PS384" or "PS512" or "ES256" or "ES384" or "ES512" or "HS256" or "HS384" or "HS512"))
            {
                reader.Error(node, $"{Field}.algorithms", $"'{algorithm}' is not accepted: use RS256/384/512, PS256/384/512, ES256/384/512, or HS256/384/512 with a secret.");
            }
            else if (algorithm.StartsWith("HS", StringComparison.Ordinal) && jwt.Secret is null)
            {
                reader.Error(node, $"{Field}.algorithms", $"'{algorithm}' needs a secret.");
            }
        }

        if (reader.Errors.Count == errorsBefore)
        {
            // The resolver's own checks, so that `floodgate check` finds what starting the gateway would refuse.
            try
            {
                foreach (var problem in Identity.IdentityFactory.ToOptions(jwt).Validate())
                {
                    reader.Error(map, Field, problem);
                }
            }
            catch (PolicyException e)
            {
                foreach (var problem in e.Errors)
                {
                    reader.Error(map, problem.Field, problem.Message);
                }
            }
        }

        return jwt;
    }

    private static Dictionary<string, (Dictionary<string, Rate> Fields, long? Burst)> ReadPlans(YamlReader reader, YamlMappingNode root)
    {
        var plans = new Dictionary<string, (Dictionary<string, Rate>, long?)>(StringComparer.Ordinal);
        var map = reader.Map(YamlReader.Get(root, "plans"), "plans");
        if (map is null)
        {
            return plans;
        }

        foreach (var (key, value) in map.Children)
        {
            if (reader.KeyName(key, "plans") is not { } name)
            {
                continue;
            }

            var field = $"plans.{name}";
            var plan = reader.Map(value, field);
            if (plan is null)
            {
                reader.Error(value, field, "expected a mapping of limits such as { per_user: 300/min, burst: 50 }.");
                continue;
            }

            var fields = new Dictionary<string, Rate>(StringComparer.Ordinal);
            long? burst = null;
            foreach (var (k, v) in plan.Children)
            {
                if (reader.KeyName(k, field) is not { } fieldName)
                {
                    continue;
                }

                if (fieldName == "burst")
                {
                    burst = reader.Integer(plan, "burst", field, 1, long.MaxValue / 2);
                    continue;
                }

                var text = (v as YamlScalarNode)?.Value;
                if (Rate.TryParse(text, out var rate, out var error))
                {
                    fields[fieldName] = rate;
                }
                else
                {
                    reader.Error(v, $"{field}.{fieldName}", error);
                }
            }

            plans[name] = (fields, burst);
        }

        return plans;
    }

    private static RateLimitRule? ReadRule(
        YamlReader reader,
        YamlNode node,
        string field,
        RateLimitTier tier,
        Dictionary<string, (Dictionary<string, Rate> Fields, long? Burst)> plans,
        string? defaultPlan,
        Dictionary<string, TimeSpan> bans)
    {
        var map = reader.Map(node, field, RuleFields);
        if (map is null)
        {
            reader.Error(node, field, "expected a rule: name, match, key, and limit or concurrency.");
            return null;
        }

        var errorsBefore = reader.Errors.Count;
        var name = reader.String(map, "name", field);
        if (string.IsNullOrWhiteSpace(name))
        {
            reader.Error(node, $"{field}.name", "every rule needs a name; it names the rule in headers, logs and metrics.");
            return null;
        }

        if (!FloodgateOptions.IsValidRuleName(name))
        {
            reader.Error(YamlReader.Get(map, "name"), $"{field}.name", $"'{name}' is sent in the RateLimit and RateLimit-Policy headers: use printable ASCII (0x20 to 0x7E) without '\"' or '\\'.");
            return null;
        }

        var match = ReadMatch(reader, map, field);
        var key = new List<KeyPart>();
        foreach (var (part, partNode) in reader.StringList(map, "key", field))
        {
            try
            {
                key.Add(KeyPart.Parse(part));
            }
            catch (FormatException e)
            {
                reader.Error(partNode, $"{field}.key", e.Message);
                continue;
            }

            if (tier == RateLimitTier.Edge && key[^1].Kind is KeyPartKind.Subject or KeyPartKind.Claim or KeyPartKind.Plan)
            {
                reader.Error(partNode, $"{field}.key", $"an edge rule cannot key on '{part}': the edge runs before identity is resolved, so the rule would never fire. Move the rule to the user tier, or key on client_ip or a header.");
            }
        }

        var cost = reader.Integer(map, "cost", field, 0, 1_000_000_000) ?? 1;
        var mode = reader.Enum(map, "mode", field, ("enforce", RuleMode.Enforce), ("shadow", RuleMode.Shadow)) ?? RuleMode.Enforce;
        var onFailure = reader.Enum(map, "on_failure", field, ("open", StoreFailureMode.Open), ("closed", StoreFailureMode.Closed), ("local", StoreFailureMode.Local)) ?? StoreFailureMode.Default;
        var burst = reader.Integer(map, "burst", field, 1, long.MaxValue / 2);
        var algorithm = reader.Enum(
            map,
            "algorithm",
            field,
            ("gcra", LimitAlgorithm.Gcra),
            ("token_bucket", LimitAlgorithm.Gcra),
            ("sliding_window", LimitAlgorithm.SlidingWindow),
            ("fixed_window", LimitAlgorithm.FixedWindow),
            ("quota", LimitAlgorithm.Quota),
            ("concurrency", LimitAlgorithm.Concurrency));
        var concurrency = reader.Integer(map, "concurrency", field, 1, 100_000_000);
        var leaseTimeout = reader.Duration(map, "lease_timeout", field, TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(24));
        var calendar = reader.Bool(map, "calendar", field);
        var timeZone = reader.String(map, "time_zone", field);
        var limitText = reader.String(map, "limit", field);
        var slice = reader.Integer(map, "leased_slice", field, 1, long.MaxValue / 2);
        var ban = reader.Duration(map, "ban", field, TimeSpan.FromSeconds(1), TimeSpan.FromDays(365));
        if (ban is not null && tier != RateLimitTier.Edge)
        {
            reader.Error(YamlReader.Get(map, "ban"), $"{field}.ban", "only edge rules can ban a client IP.");
        }

        QuotaCalendar? quotaCalendar = null;
        if (algorithm == LimitAlgorithm.Quota && calendar != false)
        {
            try
            {
                quotaCalendar = timeZone is null ? QuotaCalendar.Utc : QuotaCalendar.ForTimeZone(timeZone);
            }
            catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException or ArgumentException)
            {
                reader.Error(YamlReader.Get(map, "time_zone"), $"{field}.time_zone", $"'{timeZone}' is not a time zone: use an IANA name such as Europe/Paris or UTC.");
            }
        }
        else if ((calendar is not null || timeZone is not null) && algorithm != LimitAlgorithm.Quota)
        {
            reader.Error(map, $"{field}.calendar", "calendar and time_zone apply only to algorithm: quota.");
        }

        Limit Build(Rate rate, long? planBurst, YamlNode? at)
        {
            var limit = BuildStrict(rate, planBurst, at);
            return slice is { } leased ? limit.WithLeasedSlice(leased) : limit;
        }

        Limit BuildStrict(Rate rate, long? planBurst, YamlNode? at)
        {
            switch (algorithm ?? LimitAlgorithm.Gcra)
            {
                case LimitAlgorithm.Gcra:
                    return Limit.Gcra(rate, burst ?? planBurst);
                case LimitAlgorithm.Quota:
                    return Limit.Quota(rate, quotaCalendar);
                case LimitAlgorithm.Concurrency:
                    throw new ArgumentException("algorithm: concurrency takes 'concurrency: <permits>', not a rate.");
                default:
                    if (burst is not null)
                    {
                        reader.Error(at, $"{field}.burst", "burst applies only to gcra (token bucket) limits.");
                    }

                    return algorithm == LimitAlgorithm.FixedWindow ? Limit.FixedWindow(rate) : Limit.SlidingWindow(rate);
            }
        }

        Limit? fixedLimit = null;
        Dictionary<string, Limit>? planLimits = null;
        try
        {
            if (concurrency is { } permits)
            {
                if (limitText is not null)
                {
                    reader.Error(YamlReader.Get(map, "limit"), $"{field}.limit", "give limit or concurrency, not both.");
                }
                else if (algorithm is not null and not LimitAlgorithm.Concurrency)
                {
                    reader.Error(YamlReader.Get(map, "algorithm"), $"{field}.algorithm", "a concurrency rule takes no other algorithm.");
                }
                else if (slice is not null)
                {
                    reader.Error(YamlReader.Get(map, "leased_slice"), $"{field}.leased_slice", "a concurrency limit cannot be leased: its permits are held, not spent.");
                }
                else
                {
                    fixedLimit = Limit.Concurrency(permits, leaseTimeout);
                }
            }
            else if (limitText is null)
            {
                reader.Error(map, $"{field}.limit", "every rule needs a limit (such as 300/min or plan.per_user) or concurrency.");
            }
            else if (limitText.StartsWith("plan.", StringComparison.Ordinal) && tier == RateLimitTier.Edge)
            {
                reader.Error(YamlReader.Get(map, "limit"), $"{field}.limit", $"an edge rule cannot take its limit from a plan ('{limitText}'): the edge runs before identity is resolved, so the plan is unknown. Move the rule to the user tier, or give a rate.");
            }
            else if (limitText.StartsWith("plan.", StringComparison.Ordinal))
            {
                var planField = limitText[5..];
                var limits = new Dictionary<string, Limit>(StringComparer.Ordinal);
                foreach (var (planName, plan) in plans)
                {
                    if (plan.Fields.TryGetValue(planField, out var rate))
                    {
                        limits[planName] = Build(rate, plan.Burst, YamlReader.Get(map, "limit"));
                    }
                }

                if (limits.Count == 0)
                {
                    reader.Error(YamlReader.Get(map, "limit"), $"{field}.limit", plans.Count == 0
                        ? $"'{limitText}' names a plan field, but the policy has no plans."
                        : $"no plan has the field '{planField}'; the plans are: {string.Join(", ", plans.Keys)}.");
                }
                else
                {
                    planLimits = limits;
                }
            }
            else if (Rate.TryParse(limitText, out var rate, out var error))
            {
                fixedLimit = Build(rate, null, YamlReader.Get(map, "limit"));
            }
            else
            {
                reader.Error(YamlReader.Get(map, "limit"), $"{field}.limit", error);
            }
        }
        catch (InvalidOperationException e)
        {
            reader.Error(YamlReader.Get(map, "leased_slice") ?? map, $"{field}.leased_slice", e.Message);
        }
        catch (ArgumentException e) when (e.ParamName == "slice" && YamlReader.Get(map, "leased_slice") is { } sliceNode)
        {
            reader.Error(sliceNode, $"{field}.leased_slice", MessageOf(e));
        }
        catch (ArgumentException e)
        {
            reader.Error(YamlReader.Get(map, "limit") ?? YamlReader.Get(map, "concurrency") ?? map, $"{field}.limit", MessageOf(e));
        }

        if ((fixedLimit is null && planLimits is null) || reader.Errors.Count > errorsBefore)
        {
            return null;
        }

        if (ban is { } b)
        {
            bans[name] = b;
        }

        return (fixedLimit, key.Count > 0) switch
        {
            (not null, true) => new RateLimitRule(name, tier, fixedLimit) { Match = match, Key = key, Cost = cost, Mode = mode, OnStoreFailure = onFailure },
            (not null, false) => new RateLimitRule(name, tier, fixedLimit) { Match = match, Cost = cost, Mode = mode, OnStoreFailure = onFailure },
            (null, true) => new RateLimitRule(name, tier, planLimits!, defaultPlan) { Match = match, Key = key, Cost = cost, Mode = mode, OnStoreFailure = onFailure },
            (null, false) => new RateLimitRule(name, tier, planLimits!, defaultPlan) { Match = match, Cost = cost, Mode = mode, OnStoreFailure = onFailure },
        };
    }

    private static RuleMatch ReadMatch(YamlReader reader, YamlMappingNode rule, string parent)
    {
        var field = $"{parent}.match";
        var map = reader.Map(YamlReader.Get(rule, "match"), field, "path", "paths", "route", "method", "methods", "host", "hosts", "headers");
        if (map is null)
        {
            return RuleMatch.Any;
        }

        var paths = new List<PathGlob>();
        foreach (var (path, node) in reader.StringList(map, "path", field).Concat(reader.StringList(map, "paths", field)))
        {
            try
            {
                paths.Add(new PathGlob(path));
            }
            catch (FormatException e)
            {
                reader.Error(node, $"{field}.path", e.Message);
            }
        }

        RouteTemplate? route = null;
        if (reader.String(map, "route", field) is { } template)
        {
            try
            {
                route = new RouteTemplate(template);
            }
            catch (FormatException e)
            {
                reader.Error(YamlReader.Get(map, "route"), $"{field}.route", e.Message);
            }
        }

        var methods = reader.StringList(map, "method", field).Concat(reader.StringList(map, "methods", field)).Select(m => m.Value.ToUpperInvariant()).ToList();
        var hosts = reader.StringList(map, "host", field).Concat(reader.StringList(map, "hosts", field)).Select(h => h.Value).ToList();
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var headerMap = reader.Map(YamlReader.Get(map, "headers"), $"{field}.headers");
        if (headerMap is not null)
        {
            foreach (var (k, v) in headerMap.Children)
            {
                if (reader.KeyName(k, $"{field}.headers") is not { } name)
                {
                    continue;
                }

                if (v is YamlScalarNode { Value: { } value })
                {
                    headers[name] = value;
                }
                else
                {
                    reader.Error(v, $"{field}.headers.{name}", "expected a value to equal, or * for any value.");
                }
            }
        }

        return new RuleMatch { Paths = paths, Route = route, Methods = methods, Hosts = hosts, Headers = headers };
    }

    /// <summary>
    /// A library's argument error as a policy error reads: its first line, without the " (Parameter 'x')" that names a C#
    /// parameter rather than a field, or the "Actual value was" line an out-of-range error adds.
    /// </summary>
    private static string MessageOf(ArgumentException e)
    {
        var message = e.Message;
        var newline = message.IndexOfAny(['\r', '\n']);
        if (newline >= 0)
        {
            message = message[..newline];
        }

        return e.ParamName is null ? message : message.Replace($" (Parameter '{e.ParamName}')", string.Empty, StringComparison.Ordinal);
    }

    internal static string ExpandHome(string path) =>
        path.StartsWith("~/", StringComparison.Ordinal)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path[2..])
            : path;
}

using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Floodgate.Redis;
using Floodgate.Stores;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>The <c>store</c> section, read into the options of the store it names: <see cref="MemoryStoreOptions"/> or <see cref="RedisStoreOptions"/>.</summary>
internal static class StoreSection
{
    private static readonly string[] RedisOnlyFields = ["configuration", "on_failure", "replicas", "timeout", "key_prefix", "tls_ca", "tls_client_cert", "tls_client_key"];
    private static readonly string[] MemoryOnlyFields = ["max_entries"];

    // Where the store's own validation names a property, the field that sets it.
    private static readonly Dictionary<string, string> RedisFieldOf = new(StringComparer.Ordinal)
    {
        [nameof(RedisStoreOptions.Configuration)] = "configuration",
        [nameof(RedisStoreOptions.KeyPrefix)] = "key_prefix",
        [nameof(RedisStoreOptions.Timeout)] = "timeout",
        [nameof(RedisStoreOptions.FailureMode)] = "on_failure",
        [nameof(RedisStoreOptions.Replicas)] = "replicas",
        [nameof(RedisStoreOptions.TrustedCertificateAuthority)] = "tls_ca",
        [nameof(RedisStoreOptions.ClientCertificate)] = "tls_client_cert",
        [nameof(RedisStoreOptions.ClientCertificateKey)] = "tls_client_key",
    };

    public static StoreRead Read(YamlReader reader, YamlMappingNode root)
    {
        var map = reader.Map(YamlReader.Get(root, "store"), "store", ["kind", .. MemoryOnlyFields, .. RedisOnlyFields]);
        if (map is null)
        {
            return new StoreRead(StoreKind.Memory, KindNamed: false, KindKnown: true, new MemoryStoreOptions(), null);
        }

        var kindNode = YamlReader.Get(map, "kind");
        var namedKind = reader.Enum(map, "kind", "store", ("memory", StoreKind.Memory), ("redis", StoreKind.Redis), ("valkey", StoreKind.Redis));
        var kind = namedKind ?? StoreKind.Memory;

        // A kind that is itself wrong is reported alone: the other fields are not known to be misplaced.
        var store = new StoreRead(kind, KindNamed: kindNode is not null, KindKnown: kindNode is null || namedKind is not null, null, null);

        // A field of the other kind of store would be silently ignored; a redis field under the memory store most often
        // means a forgotten kind: redis, and replicas that each count alone.
        var other = kind == StoreKind.Memory ? "redis" : "memory";
        foreach (var field in !store.KindKnown ? [] : kind == StoreKind.Memory ? RedisOnlyFields : MemoryOnlyFields)
        {
            if (StoreRead.Says(YamlReader.Get(map, field)) is { } node)
            {
                reader.Error(node, $"store.{field}", $"applies to the {other} store only, and this store is {store.KindText}: set kind: {other}, or remove it.");
            }
        }

        return kind == StoreKind.Redis ? store with { Redis = ReadRedis(reader, map) } : store with { Memory = ReadMemory(reader, map) };
    }

    /// <summary>
    /// A fingerprint of the store's options: a reload reopens the store only when it changes. Taken from the options
    /// themselves, all of them, so that a setting written another way (valkey for redis, a default written out) is the
    /// same store.
    /// </summary>
    public static string Fingerprint(MemoryStoreOptions? memory, RedisStoreOptions? redis)
    {
        var text = redis is not null
            ? "redis:" + JsonSerializer.Serialize(redis, StoreOptionsJson.Default.RedisStoreOptions)
            : "memory:" + JsonSerializer.Serialize(memory ?? new MemoryStoreOptions(), StoreOptionsJson.Default.MemoryStoreOptions);

        // Hashed: the configuration string may hold a password.
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    private static MemoryStoreOptions ReadMemory(YamlReader reader, YamlMappingNode map)
    {
        var options = new MemoryStoreOptions { MaxEntries = (int)(reader.Integer(map, "max_entries", "store", 1, 100_000_000) ?? 1_000_000) };
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            reader.Error(YamlReader.Get(map, "max_entries") ?? map, "store.max_entries", PolicyLoader.MessageOf(e));
        }

        return options;
    }

    private static RedisStoreOptions ReadRedis(YamlReader reader, YamlMappingNode map)
    {
        var errorsBefore = reader.Errors.Count;
        var options = new RedisStoreOptions
        {
            Configuration = reader.String(map, "configuration", "store"),
            FailureMode = reader.Enum(map, "on_failure", "store", ("open", StoreFailureMode.Open), ("closed", StoreFailureMode.Closed), ("local", StoreFailureMode.Local)) ?? StoreFailureMode.Open,
            Replicas = (int)(reader.Integer(map, "replicas", "store", 1, 10_000) ?? 1),
        };
        if (reader.Duration(map, "timeout", "store", TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(30)) is { } timeout)
        {
            options.Timeout = timeout;
        }

        if (reader.String(map, "key_prefix", "store") is { } prefix)
        {
            options.KeyPrefix = prefix;
        }

        if (string.IsNullOrWhiteSpace(options.Configuration))
        {
            reader.Error(map, "store.configuration", "a redis store needs a configuration such as 'localhost:6379'.");
        }
        else
        {
            // Parsed now, as the store will parse it: a misspelt option is refused with its line, by `floodgate check`
            // too, not when the store opens (at start, or at a reload that changes the store).
            try
            {
                _ = StackExchange.Redis.ConfigurationOptions.Parse(options.Configuration);
            }
            catch (Exception e) when (e is ArgumentException or FormatException or NotSupportedException)
            {
                reader.Error(YamlReader.Get(map, "configuration"), "store.configuration", $"is not a Redis configuration: {e.Message}");
            }
        }

        ReadTls(reader, map, options);

        // The store's own checks, so that what the loader accepts the store opens with. The TLS files were read just now,
        // with messages that name them; a field refused already is not refused twice.
        try
        {
            options.Validate(requireConfiguration: false, checkTlsFiles: false);
        }
        catch (ArgumentException e)
        {
            var key = e.ParamName is { } name && RedisFieldOf.TryGetValue(name, out var known) ? known : null;
            var field = key is null ? "store" : $"store.{key}";
            if (!reader.Errors.Skip(errorsBefore).Any(error => error.Field == field))
            {
                reader.Error((key is null ? null : YamlReader.Get(map, key)) ?? map, field, PolicyLoader.MessageOf(e));
            }
        }

        return options;
    }

    /// <summary>
    /// Reads the TLS files' names into <paramref name="options"/>, and checks the files now, so that a missing or wrong file
    /// is refused at load with its line.
    /// </summary>
    private static void ReadTls(YamlReader reader, YamlMappingNode map, RedisStoreOptions options)
    {
        var ca = reader.String(map, "tls_ca", "store");
        var certificate = reader.String(map, "tls_client_cert", "store");
        var key = reader.String(map, "tls_client_key", "store");
        options.TrustedCertificateAuthority = ca is null ? null : PolicyLoader.ExpandHome(ca);
        options.ClientCertificate = certificate is null ? null : PolicyLoader.ExpandHome(certificate);
        options.ClientCertificateKey = key is null ? null : PolicyLoader.ExpandHome(key);

        // The store's own readers, so that what the loader accepts the store can use; the loader adds file and line.
        if (ca is not null && ReadableFile(reader, map, "tls_ca", ca, "CA certificate file"))
        {
            if (RedisStoreOptions.CheckTrustedCertificateAuthority(PolicyLoader.ExpandHome(ca)) is { } problem)
            {
                reader.Error(YamlReader.Get(map, "tls_ca"), "store.tls_ca", $"'{ca}' {problem}");
            }
        }

        if (key is not null && certificate is null)
        {
            reader.Error(YamlReader.Get(map, "tls_client_key"), "store.tls_client_key", "a client key needs its certificate: set tls_client_cert too.");
        }

        if (certificate is not null && ReadableFile(reader, map, "tls_client_cert", certificate, "client certificate file")
            && (key is null || ReadableFile(reader, map, "tls_client_key", key, "client key file")))
        {
            if (RedisStoreOptions.CheckClientCertificate(options.ClientCertificate!, options.ClientCertificateKey) is { } problem)
            {
                var pair = key is null ? $"'{certificate}' (with its key in the same file)" : $"'{certificate}' with the key '{key}'";
                reader.Error(YamlReader.Get(map, "tls_client_cert"), "store.tls_client_cert", $"{pair} {problem}");
            }
        }
    }

    private static bool ReadableFile(YamlReader reader, YamlMappingNode map, string key, string file, string what)
    {
        var node = YamlReader.Get(map, key);
        if (!File.Exists(PolicyLoader.ExpandHome(file)))
        {
            reader.Error(node, $"store.{key}", $"the {what} '{file}' does not exist.");
            return false;
        }

        try
        {
            using var stream = File.OpenRead(PolicyLoader.ExpandHome(file));
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            reader.Error(node, $"store.{key}", $"the {what} '{file}' cannot be read: {e.Message}");
            return false;
        }
    }
}

/// <summary>What the <c>store</c> section says: the store's kind and its one options object.</summary>
/// <param name="Kind">The kind; memory when the section names none, or names one that is not a kind.</param>
/// <param name="KindNamed">Whether the section names a kind.</param>
/// <param name="KindKnown">Whether the kind is known: no kind named, or a valid one.</param>
/// <param name="Memory">The memory store's options, when the kind is memory.</param>
/// <param name="Redis">The Redis store's options, when the kind is redis.</param>
internal sealed record StoreRead(StoreKind Kind, bool KindNamed, bool KindKnown, MemoryStoreOptions? Memory, RedisStoreOptions? Redis)
{
    /// <summary>The kind in a message: <c>redis</c>, <c>memory</c>, or <c>memory (the default kind)</c>.</summary>
    public string KindText => Kind == StoreKind.Redis ? "redis" : KindNamed ? "memory" : "memory (the default kind)";

    /// <summary>Whether a field that applies to the Redis store only is refused: the store is known to be memory.</summary>
    public bool RefusesRedisFields => KindKnown && Kind == StoreKind.Memory;

    /// <summary><paramref name="node"/>, unless it is absent or empty: an empty field says nothing, so it is not refused.</summary>
    public static YamlNode? Says(YamlNode? node) => node is null or YamlScalarNode { Value: null or "" } ? null : node;

    /// <summary>Refuses <paramref name="node"/>, a field of a rule that applies to the Redis store only, when the store is memory.</summary>
    public void RefuseRedisOnly(YamlReader reader, YamlNode? node, string field, string why)
    {
        if (RefusesRedisFields && Says(node) is { } given)
        {
            reader.Error(given, field, $"applies to the redis store only ({why}), and the store is {KindText}: set kind: redis in the store section, or remove it.");
        }
    }
}

/// <summary>The store options as JSON, for <see cref="StoreSection.Fingerprint"/>.</summary>
[JsonSerializable(typeof(MemoryStoreOptions))]
[JsonSerializable(typeof(RedisStoreOptions))]
internal sealed partial class StoreOptionsJson : JsonSerializerContext;

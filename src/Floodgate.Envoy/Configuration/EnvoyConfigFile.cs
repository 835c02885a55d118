namespace Floodgate.Envoy.Configuration;

/// <summary>One configuration file's name and YAML text.</summary>
/// <param name="Name">The name errors quote, usually the file name.</param>
/// <param name="Yaml">The YAML text.</param>
public readonly record struct EnvoyConfigFile(string Name, string Yaml);

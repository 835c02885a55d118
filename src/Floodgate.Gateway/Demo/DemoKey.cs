using Floodgate.AspNetCore.Identity;

namespace Floodgate.Gateway.Demo;

/// <summary>
/// The demo's signing key, kept in <c>~/.floodgate/demo-signing-key.pem</c> (or <c>$FLOODGATE_DEMO_KEY</c>) and
/// created on first use. <c>floodgate run --demo</c> publishes its public half as a JWKS on the admin port;
/// <c>floodgate token</c> signs with it. For trying Floodgate only: no production policy should trust it.
/// </summary>
internal static class DemoKey
{
    /// <summary>The issuer of demo tokens.</summary>
    public const string Issuer = "floodgate-demo";

    /// <summary>The audience of demo tokens.</summary>
    public const string Audience = "floodgate-demo";

    /// <summary>The path on the admin port where the demo publishes its JWKS.</summary>
    public const string JwksPath = "/demo/jwks.json";

    /// <summary>The default location: <c>$FLOODGATE_DEMO_KEY</c>, else <c>~/.floodgate/demo-signing-key.pem</c>.</summary>
    public static string DefaultPath =>
        Environment.GetEnvironmentVariable("FLOODGATE_DEMO_KEY") is { Length: > 0 } path
            ? path
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".floodgate", "demo-signing-key.pem");

    /// <summary>Loads the key at <paramref name="path"/>, creating it first when it does not exist.</summary>
    /// <exception cref="InvalidOperationException">The file exists but holds no usable private key.</exception>
    public static DemoTokenIssuer LoadOrCreate(string? path = null)
    {
        path ??= DefaultPath;
        if (File.Exists(path))
        {
            try
            {
                return DemoTokenIssuer.FromPem(File.ReadAllText(path), Issuer, Audience);
            }
            catch (ArgumentException e)
            {
                throw new InvalidOperationException($"The demo key file '{path}' holds no EC P-256 or RSA private key in PEM; delete it to create a new one.", e);
            }
        }

        var issuer = DemoTokenIssuer.CreateEcdsa(Issuer, Audience);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            var temporary = $"{path}.{Environment.ProcessId}.tmp";
            File.WriteAllText(temporary, issuer.ExportPrivateKeyPem());
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            File.Move(temporary, path, overwrite: true);
            return issuer;
        }
        catch
        {
            issuer.Dispose();
            throw;
        }
    }
}

namespace Floodgate.AspNetCore.Authentication;

/// <summary>The Floodgate JWT authentication scheme's defaults.</summary>
public static class FloodgateJwtDefaults
{
    /// <summary>The scheme's default name, <c>FloodgateJwt</c>.</summary>
    public const string AuthenticationScheme = "FloodgateJwt";
}

/// <summary>Registered with the Floodgate authentication scheme: tells the middleware that ASP.NET authentication judges other schemes.</summary>
internal sealed class FloodgateAuthenticationMarker;

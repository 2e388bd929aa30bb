using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net.Mime;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Json.Serialization;
using Jellyfin.Plugin.Lockstep.Configuration;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Net.Http.Headers;

namespace Jellyfin.Plugin.Lockstep.Api;

/// <summary>
/// The plugin's HTTP endpoints, under Jellyfin's base URL:
/// <c>GET /Lockstep/overlay.js</c> (anonymous) and <c>POST /Lockstep/Token</c> (signed-in users).
/// </summary>
[ApiController]
[Route("Lockstep")]
public class LockstepController : ControllerBase
{
    /// <summary>
    /// The claim Jellyfin's authentication handler puts the user id in (Guid "N" format). Jellyfin's
    /// own <c>ClaimsPrincipal.GetUserId()</c> lives in <c>Jellyfin.Api</c>, which is not published
    /// as a package, so the claim is read directly, as other plugins do.
    /// </summary>
    private const string UserIdClaim = "Jellyfin-UserId";

    /// <summary>Set to <c>True</c> when the request authenticated with an API key, not a user.</summary>
    private const string IsApiKeyClaim = "Jellyfin-IsApiKey";

    /// <summary>The role Jellyfin gives administrators.</summary>
    private const string AdministratorRole = "Administrator";

    private static readonly Lazy<Overlay?> EmbeddedOverlay = new(LoadOverlay);

    /// <summary>
    /// The overlay script, for jellyfin-web's <c>index.html</c> (see <see cref="ScriptInjector"/>).
    /// Browsers revalidate it on every page load (an ETag of its content), so a new plugin version
    /// takes effect without clearing caches.
    /// </summary>
    /// <response code="200">The script.</response>
    /// <response code="304">The browser's copy is current.</response>
    /// <response code="404">The plugin was built without the overlay.</response>
    /// <returns>The script.</returns>
    [HttpGet("overlay.js")]
    [AllowAnonymous]
    [ProducesResponseType(StatusCodes.Status200OK)]
    [ProducesResponseType(StatusCodes.Status404NotFound)]
    public ActionResult GetOverlay()
    {
        var overlay = EmbeddedOverlay.Value;
        if (overlay is null)
        {
            return new ContentResult
            {
                StatusCode = StatusCodes.Status404NotFound,
                ContentType = "application/javascript; charset=utf-8",
                Content = "/* lockstep: this build of the plugin has no overlay script */",
            };
        }

        Response.Headers[HeaderNames.CacheControl] = "no-cache";
        return File(overlay.Bytes, "application/javascript; charset=utf-8", lastModified: null, entityTag: overlay.ETag);
    }

    /// <summary>
    /// Issues a short-lived relay token for the signed-in user (docs/AUTH.md), with where to find
    /// the relay. The overlay calls this with the user's Jellyfin access token.
    /// </summary>
    /// <response code="200">The token.</response>
    /// <response code="401">Not signed in.</response>
    /// <response code="403">Authenticated with an API key rather than as a user.</response>
    /// <response code="503">The plugin is not configured (relay URL or secret missing).</response>
    /// <returns>The token, the relay URL and the expiry.</returns>
    [HttpPost("Token")]
    [Authorize]
    [Produces(MediaTypeNames.Application.Json)]
    [ProducesResponseType(StatusCodes.Status200OK)]
    [ProducesResponseType(StatusCodes.Status401Unauthorized)]
    [ProducesResponseType(StatusCodes.Status403Forbidden)]
    [ProducesResponseType(StatusCodes.Status503ServiceUnavailable)]
    public ActionResult<TokenResponse> PostToken()
    {
        var config = Plugin.Instance?.Configuration;
        var relayUrl = config?.RelayUrl?.Trim().TrimEnd('/') ?? string.Empty;
        var secret = config?.JwtSecret ?? string.Empty;
        if (config is null || relayUrl.Length == 0 || secret.Length == 0)
        {
            return StatusCode(
                StatusCodes.Status503ServiceUnavailable,
                new ErrorResponse(
                    "lockstep is not configured: an administrator must set the relay URL and the JWT secret in Dashboard > Plugins > Lockstep."));
        }

        var isApiKey = string.Equals(User.FindFirst(IsApiKeyClaim)?.Value, bool.TrueString, StringComparison.OrdinalIgnoreCase);
        if (isApiKey
            || !Guid.TryParse(User.FindFirst(UserIdClaim)?.Value, out var userId)
            || userId == Guid.Empty)
        {
            return StatusCode(
                StatusCodes.Status403Forbidden,
                new ErrorResponse("lockstep tokens are for Jellyfin users; this request is not signed in as a user."));
        }

        var isAdministrator = User.IsInRole(AdministratorRole);
        var perms = new List<string>(2);
        if (MayCreateRooms(config, userId, isAdministrator))
        {
            perms.Add(JwtIssuer.PermCreateRooms);
        }

        if (isAdministrator && config.AdministratorsModerate)
        {
            perms.Add(JwtIssuer.PermModerate);
        }

        var lifetime = Math.Clamp(config.TokenLifetimeSeconds, 30, 86_400);
        var issuedAt = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var expiresAt = issuedAt + lifetime;
        var token = JwtIssuer.CreateToken(
            secret,
            userId,
            User.FindFirst(ClaimTypes.Name)?.Value ?? string.Empty,
            perms,
            OrDefault(config.Audience, PluginConfiguration.DefaultAudience),
            OrDefault(config.Issuer, PluginConfiguration.DefaultIssuer),
            issuedAt,
            expiresAt);

        // A token is a credential: keep it out of every cache.
        Response.Headers[HeaderNames.CacheControl] = "no-store";
        return new TokenResponse(token, relayUrl, expiresAt);
    }

    private static bool MayCreateRooms(PluginConfiguration config, Guid userId, bool isAdministrator)
    {
        return config.RoomCreators switch
        {
            RoomCreators.Everyone => true,
            RoomCreators.Administrators => isAdministrator,
            RoomCreators.ListedUsers => (config.RoomCreatorUserIds ?? Array.Empty<string>())
                .Any(id => Guid.TryParse(id, out var listed) && listed == userId),
            _ => false,
        };
    }

    private static string OrDefault(string? value, string fallback)
    {
        return string.IsNullOrWhiteSpace(value) ? fallback : value.Trim();
    }

    private static Overlay? LoadOverlay()
    {
        using var stream = typeof(Plugin).Assembly.GetManifestResourceStream(Plugin.OverlayResourceName);
        if (stream is null)
        {
            return null;
        }

        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        var bytes = buffer.ToArray();
        var hash = Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();
        return new Overlay(bytes, new EntityTagHeaderValue("\"" + hash[..32] + "\""));
    }

    private sealed record Overlay(byte[] Bytes, EntityTagHeaderValue ETag);
}

/// <summary>
/// The answer of <c>POST /Lockstep/Token</c>. Property names are fixed (Jellyfin's default JSON
/// naming would otherwise apply).
/// </summary>
/// <param name="Token">The JWT, for <c>hello.token</c>.</param>
/// <param name="RelayUrl">The relay's HTTP base URL, without a trailing slash.</param>
/// <param name="ExpiresAt">When the token expires, UNIX seconds.</param>
public sealed record TokenResponse(
    [property: JsonPropertyName("token")] string Token,
    [property: JsonPropertyName("relayUrl")] string RelayUrl,
    [property: JsonPropertyName("expiresAt")] long ExpiresAt);

/// <summary>
/// An error answer of the plugin's endpoints.
/// </summary>
/// <param name="Error">What went wrong, for people.</param>
public sealed record ErrorResponse([property: JsonPropertyName("error")] string Error);

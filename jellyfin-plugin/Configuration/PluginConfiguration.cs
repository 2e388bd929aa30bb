using System;
using MediaBrowser.Model.Plugins;

namespace Jellyfin.Plugin.Lockstep.Configuration;

/// <summary>
/// Who gets the <c>create_rooms</c> permission in their token.
/// </summary>
public enum RoomCreators
{
    /// <summary>Every Jellyfin user.</summary>
    Everyone,

    /// <summary>Jellyfin administrators only.</summary>
    Administrators,

    /// <summary>The users in <see cref="PluginConfiguration.RoomCreatorUserIds"/>.</summary>
    ListedUsers,
}

/// <summary>
/// The plugin's settings, edited on its configuration page (Dashboard → Plugins → Lockstep) and
/// stored by Jellyfin as XML. Jellyfin 10.9 and later serve them through the API to
/// administrators only; the secret never reaches other users.
/// </summary>
public class PluginConfiguration : BasePluginConfiguration
{
    /// <summary>The audience the relay expects unless configured otherwise.</summary>
    public const string DefaultAudience = "lockstep";

    /// <summary>The issuer this plugin names unless configured otherwise.</summary>
    public const string DefaultIssuer = "jellyfin";

    /// <summary>The token lifetime unless configured otherwise, seconds.</summary>
    public const int DefaultTokenLifetimeSeconds = 600;

    /// <summary>
    /// Gets or sets the relay's HTTP base URL as browsers reach it, e.g.
    /// <c>https://watch.example.org:8080</c> (the overlay fetches <c>/api/config</c> from it).
    /// </summary>
    public string RelayUrl { get; set; } = string.Empty;

    /// <summary>
    /// Gets or sets the HS256 secret shared with the relay (its <c>--jwt-secret</c>). Its UTF-8
    /// bytes are the HMAC key, on both sides: the text is the secret, it is not decoded.
    /// </summary>
    public string JwtSecret { get; set; } = string.Empty;

    /// <summary>Gets or sets the <c>aud</c> claim (the relay's <c>--jwt-audience</c>).</summary>
    public string Audience { get; set; } = DefaultAudience;

    /// <summary>Gets or sets the <c>iss</c> claim (the relay's <c>--jwt-issuer</c>).</summary>
    public string Issuer { get; set; } = DefaultIssuer;

    /// <summary>Gets or sets how long a token is valid, seconds (30 to 86400).</summary>
    public int TokenLifetimeSeconds { get; set; } = DefaultTokenLifetimeSeconds;

    /// <summary>Gets or sets who may create rooms.</summary>
    public RoomCreators RoomCreators { get; set; } = RoomCreators.Everyone;

    /// <summary>
    /// Gets or sets the Jellyfin user ids that may create rooms when <see cref="RoomCreators"/>
    /// is <see cref="RoomCreators.ListedUsers"/>.
    /// </summary>
#pragma warning disable CA1819 // Jellyfin's XML configuration conventionally uses arrays.
    public string[] RoomCreatorUserIds { get; set; } = Array.Empty<string>();
#pragma warning restore CA1819

    /// <summary>
    /// Gets or sets a value indicating whether administrators get the relay-wide
    /// <c>moderate</c> permission.
    /// </summary>
    public bool AdministratorsModerate { get; set; } = true;
}

using System;
using System.Collections.Generic;
using System.Globalization;
using Jellyfin.Plugin.Lockstep.Configuration;
using MediaBrowser.Common.Configuration;
using MediaBrowser.Common.Plugins;
using MediaBrowser.Model.Plugins;
using MediaBrowser.Model.Serialization;
using Microsoft.Extensions.Logging;

namespace Jellyfin.Plugin.Lockstep;

/// <summary>
/// The lockstep plugin: serves the watch-together overlay, injects it into jellyfin-web, and
/// issues relay tokens for signed-in users (see README.md and docs/AUTH.md).
/// </summary>
public class Plugin : BasePlugin<PluginConfiguration>, IHasWebPages
{
    /// <summary>The manifest name of the embedded overlay script (see the .csproj).</summary>
    public const string OverlayResourceName = "Jellyfin.Plugin.Lockstep.Web.lockstep-jellyfin.js";

    private readonly IApplicationPaths _applicationPaths;
    private readonly ILogger<Plugin> _logger;

    /// <summary>
    /// Initializes a new instance of the <see cref="Plugin"/> class.
    /// </summary>
    /// <param name="applicationPaths">The server's paths (for jellyfin-web's index.html).</param>
    /// <param name="xmlSerializer">Stores the configuration.</param>
    /// <param name="logger">The logger.</param>
    public Plugin(IApplicationPaths applicationPaths, IXmlSerializer xmlSerializer, ILogger<Plugin> logger)
        : base(applicationPaths, xmlSerializer)
    {
        _applicationPaths = applicationPaths;
        _logger = logger;
        Instance = this;
    }

    /// <summary>Gets the running instance, once the server has created it.</summary>
    public static Plugin? Instance { get; private set; }

    /// <inheritdoc />
    public override string Name => "Lockstep";

    /// <inheritdoc />
    public override Guid Id => Guid.Parse("83a2b983-40fe-42ad-99ae-fafafdaba6eb");

    /// <inheritdoc />
    public override string Description =>
        "Watch together in sync: a lockstep overlay in jellyfin-web, with relay tokens for Jellyfin users.";

    /// <inheritdoc />
    public IEnumerable<PluginPageInfo> GetPages()
    {
        return new[]
        {
            new PluginPageInfo
            {
                Name = Name,
                EmbeddedResourcePath = string.Format(
                    CultureInfo.InvariantCulture,
                    "{0}.Configuration.configPage.html",
                    GetType().Namespace),
            },
        };
    }

    /// <summary>
    /// Takes the overlay's script tag back out of jellyfin-web's index.html.
    /// </summary>
    public override void OnUninstalling()
    {
        ScriptInjector.Remove(_applicationPaths.WebPath, _logger);
        base.OnUninstalling();
    }
}

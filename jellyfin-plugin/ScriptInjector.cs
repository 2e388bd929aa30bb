using System;
using System.IO;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using MediaBrowser.Common.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Jellyfin.Plugin.Lockstep;

/// <summary>
/// Makes jellyfin-web load the overlay: at server start-up it puts one script tag, between
/// marker comments, before <c>&lt;/head&gt;</c> in jellyfin-web's <c>index.html</c>
/// (<see cref="IApplicationPaths.WebPath"/>), and <see cref="Plugin.OnUninstalling"/> takes it
/// out again.
/// </summary>
/// <remarks>
/// This is what Intro Skipper, Jellyscrub and JavaScript Injector do. It runs at every start
/// because a Jellyfin upgrade replaces <c>index.html</c>; it is idempotent (an up-to-date block is
/// left alone, an older one replaced, a tag the administrator added by hand respected). When the
/// web directory is read-only (the official Docker image, some distribution packages) it logs a
/// warning with the line to add by hand and the plugin works otherwise unchanged.
/// </remarks>
public sealed class ScriptInjector : IHostedService
{
    /// <summary>
    /// The tag jellyfin-web needs. Relative, so it follows Jellyfin's base URL: jellyfin-web is
    /// served under <c>/web/</c>, and the overlay under <c>/Lockstep/overlay.js</c>.
    /// </summary>
    public const string ScriptTag = "<script src=\"../Lockstep/overlay.js\" defer></script>";

    private const string BeginMarker = "<!-- lockstep:begin (Jellyfin plugin Lockstep; removed on uninstall) -->";
    private const string EndMarker = "<!-- lockstep:end -->";
    private const string Block = BeginMarker + ScriptTag + EndMarker;

    private static readonly Regex MarkedBlocks = new(
        Regex.Escape("<!-- lockstep:begin") + ".*?" + Regex.Escape(EndMarker),
        RegexOptions.Singleline | RegexOptions.CultureInvariant);

    private readonly IApplicationPaths _applicationPaths;
    private readonly ILogger<ScriptInjector> _logger;

    /// <summary>
    /// Initializes a new instance of the <see cref="ScriptInjector"/> class.
    /// </summary>
    /// <param name="applicationPaths">The server's paths.</param>
    /// <param name="logger">The logger.</param>
    public ScriptInjector(IApplicationPaths applicationPaths, ILogger<ScriptInjector> logger)
    {
        _applicationPaths = applicationPaths;
        _logger = logger;
    }

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        Inject(_applicationPaths.WebPath, _logger);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Puts the script tag into <c>index.html</c> under <paramref name="webPath"/> unless it is
    /// there already. Never throws: a failure is logged with the manual fallback.
    /// </summary>
    /// <param name="webPath">jellyfin-web's directory.</param>
    /// <param name="logger">Where to report.</param>
    public static void Inject(string webPath, ILogger logger)
    {
        var indexPath = IndexPath(webPath);
        if (indexPath is null)
        {
            logger.LogInformation(
                "Lockstep: no jellyfin-web index.html under {WebPath} (is the web client hosted elsewhere?); to load the overlay, add {ScriptTag} before </head> in the index.html your users load",
                webPath,
                ScriptTag);
            return;
        }

        try
        {
            var original = File.ReadAllText(indexPath);
            // What the file should be: without any marked block (older versions, duplicates),
            // then with one fresh block, unless the tag was added by hand (kept, and enough).
            var stripped = MarkedBlocks.Replace(original, string.Empty);
            var byHand = stripped.Contains(ScriptTag, StringComparison.Ordinal);
            string wanted;
            if (byHand)
            {
                wanted = stripped;
            }
            else
            {
                var head = stripped.IndexOf("</head>", StringComparison.OrdinalIgnoreCase);
                if (head < 0)
                {
                    logger.LogWarning(
                        "Lockstep: {IndexPath} has no </head>; add {ScriptTag} to it by hand to load the overlay",
                        indexPath,
                        ScriptTag);
                    return;
                }

                wanted = stripped.Insert(head, Block);
            }

            if (string.Equals(wanted, original, StringComparison.Ordinal))
            {
                logger.LogDebug("Lockstep: {IndexPath} loads the overlay already", indexPath);
                return;
            }

            File.WriteAllText(indexPath, wanted);
            if (byHand)
            {
                logger.LogInformation("Lockstep: {IndexPath} loads the overlay through a tag added by hand; removed the plugin's own", indexPath);
            }
            else
            {
                logger.LogInformation("Lockstep: added the overlay to {IndexPath}", indexPath);
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            logger.LogWarning(
                "Lockstep: cannot change {IndexPath} ({Error}); the web directory is probably read-only (e.g. the official Docker image). The token endpoint works regardless; to load the overlay, add {ScriptTag} before </head> in that file by hand (see the plugin's README)",
                indexPath,
                e.Message,
                ScriptTag);
        }
    }

    /// <summary>
    /// Takes the marked block back out of <c>index.html</c>. A tag added by hand is left for the
    /// administrator to remove. Never throws.
    /// </summary>
    /// <param name="webPath">jellyfin-web's directory.</param>
    /// <param name="logger">Where to report.</param>
    public static void Remove(string webPath, ILogger logger)
    {
        var indexPath = IndexPath(webPath);
        if (indexPath is null)
        {
            return;
        }

        try
        {
            var original = File.ReadAllText(indexPath);
            var stripped = MarkedBlocks.Replace(original, string.Empty);
            if (!string.Equals(stripped, original, StringComparison.Ordinal))
            {
                File.WriteAllText(indexPath, stripped);
                logger.LogInformation("Lockstep: removed the overlay from {IndexPath}", indexPath);
            }

            if (stripped.Contains(ScriptTag, StringComparison.Ordinal))
            {
                logger.LogWarning(
                    "Lockstep: {IndexPath} still has {ScriptTag}, added by hand; remove it by hand",
                    indexPath,
                    ScriptTag);
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            logger.LogWarning(
                "Lockstep: cannot change {IndexPath} ({Error}); remove {ScriptTag} from it by hand if you added it",
                indexPath,
                e.Message,
                ScriptTag);
        }
    }

    private static string? IndexPath(string? webPath)
    {
        if (string.IsNullOrEmpty(webPath))
        {
            return null;
        }

        var path = Path.Combine(webPath, "index.html");
        return File.Exists(path) ? path : null;
    }
}

using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Jellyfin.Plugin.Lockstep;

/// <summary>
/// Mints lockstep tokens: HS256 JWTs in JWS compact form with exactly the claims of
/// docs/AUTH.md. Hand-written on <see cref="HMACSHA256"/> so the plugin needs no JWT library.
/// </summary>
/// <remarks>
/// The header is <c>{"typ":"JWT","alg":"HS256"}</c> and the payload is compact JSON with the
/// claims in the order <c>sub, name, perms, aud, iss, exp, iat</c>, the order of the example in
/// docs/AUTH.md: with that example's inputs (secret <c>example-secret</c>, user id
/// <c>5f0c2b7e-9a1d-4c3b-8e6f-2a1d0c9b8a7f</c>, name <c>Ada</c>, <c>create_rooms</c>, audience
/// <c>lockstep</c>, issuer <c>jellyfin</c>, issued at 1700000000, lifetime 600) this produces
/// the example token byte for byte. The relay's test
/// <c>crates/relay/tests/independent_token.rs</c> mints the same claim set with PyJWT.
/// </remarks>
public static class JwtIssuer
{
    /// <summary>The <c>perms</c> entry that lets a user create rooms.</summary>
    public const string PermCreateRooms = "create_rooms";

    /// <summary>The <c>perms</c> entry that makes a user a relay-wide moderator.</summary>
    public const string PermModerate = "moderate";

    private const string HeaderJson = "{\"typ\":\"JWT\",\"alg\":\"HS256\"}";

    /// <summary>
    /// Signs a token.
    /// </summary>
    /// <param name="secret">The shared secret; its UTF-8 bytes are the HMAC key. Not empty.</param>
    /// <param name="userId">The Jellyfin user id; <c>sub</c> is its 32 lowercase hex digits.</param>
    /// <param name="name">The display name (<c>name</c>).</param>
    /// <param name="perms">The permissions (<c>perms</c>), possibly none.</param>
    /// <param name="audience">The <c>aud</c> claim.</param>
    /// <param name="issuer">The <c>iss</c> claim.</param>
    /// <param name="issuedAt">The <c>iat</c> claim, UNIX seconds.</param>
    /// <param name="expiresAt">The <c>exp</c> claim, UNIX seconds.</param>
    /// <returns>The token, <c>header.payload.signature</c>.</returns>
    public static string CreateToken(
        string secret,
        Guid userId,
        string name,
        IReadOnlyList<string> perms,
        string audience,
        string issuer,
        long issuedAt,
        long expiresAt)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        ArgumentNullException.ThrowIfNull(perms);

        var signingInput = Base64Url(Encoding.UTF8.GetBytes(HeaderJson))
            + "."
            + Base64Url(PayloadJson(userId, name, perms, audience, issuer, issuedAt, expiresAt));
        var signature = HMACSHA256.HashData(
            Encoding.UTF8.GetBytes(secret),
            Encoding.ASCII.GetBytes(signingInput));
        return signingInput + "." + Base64Url(signature);
    }

    /// <summary>
    /// The payload as compact UTF-8 JSON, claims in the documented order.
    /// </summary>
    private static byte[] PayloadJson(
        Guid userId,
        string name,
        IReadOnlyList<string> perms,
        string audience,
        string issuer,
        long issuedAt,
        long expiresAt)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
        {
            json.WriteStartObject();
            // Guid "N": 32 lowercase hex digits, no dashes, as Jellyfin itself prints user ids.
            json.WriteString("sub", userId.ToString("N", CultureInfo.InvariantCulture));
            json.WriteString("name", name);
            json.WriteStartArray("perms");
            foreach (var perm in perms)
            {
                json.WriteStringValue(perm);
            }

            json.WriteEndArray();
            json.WriteString("aud", audience);
            json.WriteString("iss", issuer);
            json.WriteNumber("exp", expiresAt);
            json.WriteNumber("iat", issuedAt);
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>
    /// Base64url without padding (RFC 7515 §2).
    /// </summary>
    private static string Base64Url(byte[] bytes)
    {
        return Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }
}

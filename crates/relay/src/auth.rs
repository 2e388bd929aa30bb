//! Who a session is: verifies the JWT a client sends in `hello.token` and turns its claims into
//! an [`Identity`]. Owns the claims contract of `docs/AUTH.md`.
//!
//! Sans-IO, like the room core: no clock, no sockets, no files. The current UNIX time is a
//! parameter, so expiry is decided by the caller's clock and tests can stand anywhere in time.
//! It must never take the algorithm or the key from the token itself (the algorithm is pinned by
//! [`VerifyKey`]), and never panic on any input.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lockstep_proto::ErrorCode;
use lockstep_proto::limits::{MAX_ID_BYTES, MAX_NAME_CHARS, MAX_TOKEN_BYTES};
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

/// The audience a relay expects unless configured otherwise; issuers put it in `aud`.
pub const DEFAULT_AUDIENCE: &str = "lockstep";

/// Clock skew tolerated between issuer and relay, in seconds, unless configured otherwise.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;

/// The `perms` entry that lets a user create rooms.
pub const PERM_CREATE_ROOMS: &str = "create_rooms";

/// The `perms` entry that makes a user a moderator.
pub const PERM_MODERATE: &str = "moderate";

/// How the relay verifies tokens; the algorithm is pinned here, never taken from the token.
///
/// Pinning is what defeats algorithm confusion: a relay holding an EdDSA public key never
/// treats it as an HMAC secret, whatever `alg` a token's header claims.
#[derive(Clone, PartialEq, Eq)]
pub enum VerifyKey {
    /// HMAC-SHA256 with a secret shared with the issuer (what the Jellyfin plugin uses).
    Hs256 {
        /// The shared secret; at least 32 random bytes recommended. Must not be empty.
        secret: Vec<u8>,
    },
    /// Ed25519 signatures checked with the issuer's public key.
    EdDsa {
        /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`).
        public_pem: Vec<u8>,
    },
    /// RSASSA-PKCS1-v1_5 with SHA-256, checked with the issuer's public key.
    Rs256 {
        /// The public key as PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`).
        public_pem: Vec<u8>,
    },
}

impl VerifyKey {
    /// The JWS `alg` name tokens must carry for this key.
    pub fn algorithm_name(&self) -> &'static str {
        match self {
            VerifyKey::Hs256 { .. } => "HS256",
            VerifyKey::EdDsa { .. } => "EdDSA",
            VerifyKey::Rs256 { .. } => "RS256",
        }
    }

    /// Parses the key without verifying anything, so a bad key is caught at startup rather
    /// than on the first client's `hello`.
    pub fn check(&self) -> Result<(), AuthError> {
        self.decoding_key().map(|_| ())
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            VerifyKey::Hs256 { .. } => Algorithm::HS256,
            VerifyKey::EdDsa { .. } => Algorithm::EdDSA,
            VerifyKey::Rs256 { .. } => Algorithm::RS256,
        }
    }

    fn decoding_key(&self) -> Result<DecodingKey, AuthError> {
        match self {
            VerifyKey::Hs256 { secret } if secret.is_empty() => Err(AuthError::InvalidKey(
                "the HS256 secret is empty".to_owned(),
            )),
            VerifyKey::Hs256 { secret } => Ok(DecodingKey::from_secret(secret)),
            VerifyKey::EdDsa { public_pem } => {
                DecodingKey::from_ed_pem(public_pem).map_err(key_error)
            }
            VerifyKey::Rs256 { public_pem } => {
                DecodingKey::from_rsa_pem(public_pem).map_err(key_error)
            }
        }
    }
}

/// Hand-written so a secret never reaches a log through `{:?}` of the config.
impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyKey::Hs256 { secret } => f
                .debug_struct("Hs256")
                .field("secret", &format_args!("<{} bytes redacted>", secret.len()))
                .finish(),
            VerifyKey::EdDsa { public_pem } => f
                .debug_struct("EdDsa")
                .field("public_pem", &format_args!("<{} bytes>", public_pem.len()))
                .finish(),
            VerifyKey::Rs256 { public_pem } => f
                .debug_struct("Rs256")
                .field("public_pem", &format_args!("<{} bytes>", public_pem.len()))
                .finish(),
        }
    }
}

/// The relay's authentication policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Whether every client must present a valid token. When false, anonymous clients are
    /// welcome, but a token that is sent is still verified if a key is configured (a bad token
    /// is refused rather than silently downgraded to anonymous).
    pub required: bool,
    /// How tokens are verified; `None` means tokens cannot be checked (and are ignored when
    /// not required).
    pub key: Option<VerifyKey>,
    /// The `aud` tokens must carry; `None` skips the audience check.
    pub audience: Option<String>,
    /// The `iss` tokens must carry; `None` skips the issuer check.
    pub issuer: Option<String>,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Whether anonymous clients may create rooms (authenticated ones need `create_rooms`).
    pub anonymous_may_create_rooms: bool,
}

impl Default for AuthConfig {
    /// Anonymous relay: no token needed, anyone may create rooms.
    fn default() -> Self {
        AuthConfig {
            required: false,
            key: None,
            audience: Some(DEFAULT_AUDIENCE.to_owned()),
            issuer: None,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            anonymous_may_create_rooms: true,
        }
    }
}

/// Who a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`; `None` for anonymous sessions.
    pub user_id: Option<String>,
    /// The token's display name, normalized to the protocol's *name(64)*; it wins over
    /// `hello.name`. `None` when anonymous or when the claim was absent or unusable.
    pub name: Option<String>,
    /// Whether the session may create rooms.
    pub may_create_rooms: bool,
    /// Whether the session has relay-wide moderator rights.
    pub moderator: bool,
    /// Whether the identity comes from a verified token.
    pub authenticated: bool,
}

impl Identity {
    /// A session without a token.
    pub fn anonymous(may_create_rooms: bool) -> Self {
        Identity {
            user_id: None,
            name: None,
            may_create_rooms,
            moderator: false,
            authenticated: false,
        }
    }
}

/// Why a token was refused. Every variant is fatal to the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The relay requires a token and the client sent none.
    #[error("this relay requires a token")]
    Required,
    /// The token is not a well-formed JWT, or a claim has the wrong type or an invalid value.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The signature does not match: forged, tampered with, or signed with another key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// The header's `alg` is not the algorithm this relay is configured for (including `none`).
    #[error("the token's algorithm is not the one this relay accepts")]
    WrongAlgorithm,
    /// `exp` has passed, beyond the leeway.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is still ahead, beyond the leeway.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` is absent or names another audience.
    #[error("the token is for another audience")]
    WrongAudience,
    /// `iss` is absent or names another issuer.
    #[error("the token is from another issuer")]
    WrongIssuer,
    /// A required claim is absent (or, for `sub`, empty).
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(&'static str),
    /// A token was sent to a relay that requires tokens but has no key to check them: a
    /// configuration mistake, reported to the client as a failed token all the same.
    #[error("tokens are required but no verification key is configured")]
    NoKey,
    /// The configured key (or the secret given to [`mint_hs256`]) is unusable: a
    /// configuration mistake.
    #[error("the configured key is unusable: {0}")]
    InvalidKey(String),
}

impl AuthError {
    /// The wire code the relay answers with; the client only learns "missing" or "refused".
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Required => ErrorCode::AuthRequired,
            _ => ErrorCode::AuthFailed,
        }
    }
}

/// The claims of a lockstep token, as an issuer writes them (see `docs/AUTH.md`).
///
/// Verification does not go through this type: it accepts `aud` as an array too and
/// fractional times, which issuers other than [`mint_hs256`] may produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id: non-empty, at most 64 bytes.
    pub sub: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Permissions: [`PERM_CREATE_ROOMS`], [`PERM_MODERATE`]; others are ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perms: Vec<String>,
    /// Audience: the relay's configured audience (default [`DEFAULT_AUDIENCE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Expiry, UNIX seconds.
    pub exp: u64,
    /// Not before, UNIX seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, UNIX seconds (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

impl Claims {
    /// Claims for `sub` expiring at `exp`, addressed to [`DEFAULT_AUDIENCE`].
    pub fn new(sub: impl Into<String>, exp: u64) -> Self {
        Claims {
            sub: sub.into(),
            name: None,
            perms: Vec::new(),
            aud: Some(DEFAULT_AUDIENCE.to_owned()),
            iss: None,
            exp,
            nbf: None,
            iat: None,
        }
    }
}

/// Signs `claims` as an HS256 token, as the Jellyfin plugin does; for `lockstep token` and
/// tests. Signs what it is given: it does not check the claims against the contract.
pub fn mint_hs256(claims: &Claims, secret: &[u8]) -> Result<String, AuthError> {
    if secret.is_empty() {
        return Err(AuthError::InvalidKey(
            "the HS256 secret is empty".to_owned(),
        ));
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(jwt_error)
}

/// Decides who the sender of `token` is at `now_unix` (UNIX seconds).
///
/// No token: anonymous, or [`AuthError::Required`]. A token: verified when a key is
/// configured; ignored (anonymous) when no key is configured and tokens are not required;
/// [`AuthError::NoKey`] when they are.
pub fn authenticate(
    token: Option<&str>,
    config: &AuthConfig,
    now_unix: u64,
) -> Result<Identity, AuthError> {
    let anonymous = Identity::anonymous(config.anonymous_may_create_rooms);
    let Some(token) = token else {
        return if config.required {
            Err(AuthError::Required)
        } else {
            Ok(anonymous)
        };
    };
    let Some(key) = &config.key else {
        return if config.required {
            Err(AuthError::NoKey)
        } else {
            Ok(anonymous)
        };
    };
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed(format!(
            "longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    check_header(token, key)?;
    let decoding_key = key.decoding_key()?;
    let claims =
        jsonwebtoken::decode::<ReceivedClaims>(token, &decoding_key, &validation(config, key))
            .map_err(jwt_error)?
            .claims;
    check_times(&claims, now_unix, config.leeway_secs)?;
    identity(claims)
}

/// The header fields looked at before any verification.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Refuses a token whose header names another algorithm than the configured one, before any
/// cryptography runs, so `none` and confusion attempts get a clear error.
fn check_header(token: &str, key: &VerifyKey) -> Result<(), AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "not three dot-separated parts".to_owned(),
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed("header is not base64url".to_owned()))?;
    // serde refuses a duplicated `alg`, so this check and jsonwebtoken's read the same value.
    let header: RawHeader =
        serde_json::from_slice(&bytes).map_err(|e| AuthError::Malformed(format!("header: {e}")))?;
    if header.alg != key.algorithm_name() {
        return Err(AuthError::WrongAlgorithm);
    }
    // RFC 7515 §4.1.11: a recipient must refuse critical extensions it does not understand,
    // and we understand none.
    if header.crit.is_some() {
        return Err(AuthError::Malformed(
            "critical header extensions are not supported".to_owned(),
        ));
    }
    Ok(())
}

/// jsonwebtoken's checks minus its clock: it would read the system time for `exp` and `nbf`,
/// so those are left to [`check_times`], which uses the caller's `now_unix`.
fn validation(config: &AuthConfig, key: &VerifyKey) -> Validation {
    let mut validation = Validation::new(key.algorithm());
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    let mut required = vec!["exp"];
    match &config.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        // Otherwise jsonwebtoken refuses every token that carries an `aud`.
        None => validation.validate_aud = false,
    }
    if let Some(issuer) = &config.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// The claims the relay reads after jsonwebtoken has checked the signature, `aud` and `iss`.
#[derive(Deserialize)]
struct ReceivedClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    perms: Option<Vec<String>>,
    #[serde(default, deserialize_with = "numeric_date_floor")]
    exp: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date_ceil")]
    nbf: Option<u64>,
}

/// A NumericDate (RFC 7519 §2) may be fractional; `exp` rounds down so a token never lives
/// longer than its issuer said.
fn numeric_date_floor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    numeric_date(d, f64::floor)
}

/// `nbf` rounds up so a token never starts earlier than its issuer said.
fn numeric_date_ceil<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    numeric_date(d, f64::ceil)
}

fn numeric_date<'de, D: Deserializer<'de>>(
    d: D,
    round: fn(f64) -> f64,
) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(whole) = number.as_u64() {
        return Ok(Some(whole));
    }
    match number.as_f64() {
        // `as` saturates above u64::MAX, which is as good as "never expires" deserves.
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(Some(round(seconds) as u64)),
        _ => Err(serde::de::Error::custom(
            "a time must be a non-negative number of seconds",
        )),
    }
}

/// RFC 7519: valid while `now < exp` and from `nbf` on, each widened by the leeway.
fn check_times(claims: &ReceivedClaims, now_unix: u64, leeway: u64) -> Result<(), AuthError> {
    let exp = claims.exp.ok_or(AuthError::MissingClaim("exp"))?;
    if now_unix >= exp.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = claims.nbf
        && now_unix.saturating_add(leeway) < nbf
    {
        return Err(AuthError::NotYetValid);
    }
    Ok(())
}

/// Turns verified claims into an identity, enforcing the contract on `sub` and `name`.
fn identity(claims: ReceivedClaims) -> Result<Identity, AuthError> {
    let sub = claims
        .sub
        .filter(|sub| !sub.is_empty())
        .ok_or(AuthError::MissingClaim("sub"))?;
    if sub.len() > MAX_ID_BYTES {
        return Err(AuthError::Malformed(format!(
            "`sub` is longer than {MAX_ID_BYTES} bytes"
        )));
    }
    // The user id ends up in logs and room state; a control character there is never intended.
    if sub.chars().any(char::is_control) {
        return Err(AuthError::Malformed(
            "`sub` contains control characters".to_owned(),
        ));
    }
    let perms = claims.perms.unwrap_or_default();
    Ok(Identity {
        user_id: Some(sub),
        name: claims.name.as_deref().and_then(display_name),
        may_create_rooms: perms.iter().any(|p| p == PERM_CREATE_ROOMS),
        moderator: perms.iter().any(|p| p == PERM_MODERATE),
        authenticated: true,
    })
}

/// Normalizes the `name` claim to the protocol's *name(64)*, or drops it.
///
/// The name is cosmetic and the token is otherwise sound, so a bad name costs the user their
/// name (the relay falls back to `hello.name`), never their session: trimmed; dropped when
/// empty or containing control characters (which include line feed and tab); cut to 64
/// characters when longer.
fn display_name(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
        return None;
    }
    let cut: String = trimmed.chars().take(MAX_NAME_CHARS).collect();
    Some(cut.trim_end().to_owned())
}

fn key_error(e: jsonwebtoken::errors::Error) -> AuthError {
    AuthError::InvalidKey(e.to_string())
}

fn jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => AuthError::WrongAlgorithm,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "aud" => AuthError::WrongAudience,
            "iss" => AuthError::WrongIssuer,
            "exp" => AuthError::MissingClaim("exp"),
            "sub" => AuthError::MissingClaim("sub"),
            "nbf" => AuthError::MissingClaim("nbf"),
            other => AuthError::Malformed(format!("missing claim `{other}`")),
        },
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => key_error(e),
        // Everything else (bad base64, bad JSON, wrong shape, and kinds added later) is the
        // token's fault; failing closed as malformed is the safe reading.
        _ => AuthError::Malformed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes";
    const NOW: u64 = 1_700_000_000;

    /// Generated with `openssl genpkey -algorithm ed25519`; test use only.
    const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJmQXyYO4yDfVBR+4i5Zft8oQJyi/t6izIJDBC5GOSWv
-----END PRIVATE KEY-----
";
    const ED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA+e7CI/aYYEceE7cJ4vdFV57f/wfW5VUSUcfak8zmDq0=
-----END PUBLIC KEY-----
";
    /// Another Ed25519 key, for signatures the relay must not accept.
    const ED_OTHER_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIB3Rlw4GJldy7l4xAy22U6AxfJAbm9AL2RFZmU44x67d
-----END PRIVATE KEY-----
";

    /// Generated with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`; test
    /// use only.
    const RSA_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCv/BvjP/0iB1tZ
iwXOCYDRcH9gk5YmycyV+jxCOQWCUIbCIevirA/Mqf8E1GmU8V7Q/hT3y5jZlJtm
HcTbB0adSr9GPc/oF37rl6WgzTjtLkLKzwTfTolLr6mrKXcbX1UeDh8IMOHn8vbH
ZOwGnj9N0LSkVXKrRIqO1Gm0T81uz4S4t1+PfFl6Q5T0qUdqrSZKpeEZCjg/W+R9
pSwMfKtNKtrieumGvQjyUVe6Wv+ZsNTdiHrIR3bXFmVkgDldiK1EBlGYIGvwqK33
1U4u/+2Thx/1sbwmVxwyj8b16oF2kKB+Ukr9plQwF22nmzcDW0/WmK03RhKevpic
gfVYMjkxAgMBAAECggEAKPovFC8mJfJIlwUECQG1eQ8U2cwDvmxmstVdip30Zm+R
sUpsvo8J7sH2m41KOGArj8ZZ44kIwkEUHib4W3fKPX3WI+jorEYsS3c4HcUraC7J
ZqflnomO9oykmTJChaEhFKp9F08qivPL+onJW5EldF0QcuNim/aNvMxBALdEQnS0
jMJewtV8vQcxkqwzt1Rg2XnYidYWRRYXGdqdB8vToIg7TG+VFaMbz0gcLCIfhR8v
kmfGDA2YQVVGvFR5q5iVZufpTTIiwfqPiDLA+DY52NU1oeLwlA5K1SB9LiVUGBUm
IJOYy1ATGOtbz/VYyUhl5zrfI7B63S0JLAKPhg7mQQKBgQDh6gHK3m1O4oiKU4Ll
pOvqgRde5ekK7U7xC18fEMIeX3nOvcWA0C4sQi8/DZmhmz3xeUATBwKXeCBFyBMG
i0iqPVNh1DcrCOAaPEiFbytbXY29LtUmN+EjMZIftValUUPoc31r7PzSLHH+ru2J
5a37QprOkKyTRbLSXu78YlAaJQKBgQDHa+JHovZ9GKM+RJWZee0dws0VGD5/3ynN
Zkzp+2D6GZRlpfgEcKIHhu7WpA97Q4Ug91FSjZr2EeafFLB4RbKKcx3DDkV0XzSn
0UDNqk25wCf7QE85aZ1hj5jkaA85zG8J8mB9pid85c+hG/SXmUMNUgQSE4PY5z11
bilb/rNHHQKBgDhACd43b8Qah6DZllgTrmIfbnBEkrgTynoeOLsFczAY2b1uZwTh
0P1YJWdvvXcNrmi3pgqWzkBkurRlUsdoWtl4l5BeRLZEaXhe1jfTLFp9etNGG/B+
LWKT7yxR/JcBGwV/7BS5V2IFiwS9DYwuUhmjxeP1BeNNkW7sEFlrKUK5AoGANWDV
MqOWIqnjmBk3idsu8tZfmpPgts1/HPGTCNY2gPsz03l3R4j2ddlSOLW1RyMtkUNh
yx0IK3FjL5WUHr1ZKuHhR4KcaKfLKlhCZkp9f4jFquTtz8pLS//pxslruebUme78
kOVWkIHa757R+3oUjo4zdLswgXBz7OjNvUgRqKkCgYA/l8gzl+v6xR4htPYX+ubd
pIMOhv06HjtwbiTCyqEhLs2iPluXiNKMNeGc4IxPQf6rYB6RYsBU9iVM+oWlNg5J
2H1L5WjBHl9ikjZOHSVYakultCi1bN748UYB+Splyp7Sf8KTxFsO1mS4HeEVy4pA
EfRqTxWNj0RsuAJvGkkixQ==
-----END PRIVATE KEY-----
";
    const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr/wb4z/9IgdbWYsFzgmA
0XB/YJOWJsnMlfo8QjkFglCGwiHr4qwPzKn/BNRplPFe0P4U98uY2ZSbZh3E2wdG
nUq/Rj3P6Bd+65eloM047S5Cys8E306JS6+pqyl3G19VHg4fCDDh5/L2x2TsBp4/
TdC0pFVyq0SKjtRptE/Nbs+EuLdfj3xZekOU9KlHaq0mSqXhGQo4P1vkfaUsDHyr
TSra4nrphr0I8lFXulr/mbDU3Yh6yEd21xZlZIA5XYitRAZRmCBr8Kit99VOLv/t
k4cf9bG8JlccMo/G9eqBdpCgflJK/aZUMBdtp5s3A1tP1pitN0YSnr6YnIH1WDI5
MQIDAQAB
-----END PUBLIC KEY-----
";

    /// The example of `docs/AUTH.md`, computed there with Python's standard library: an
    /// implementation independent of jsonwebtoken, so this pins the documented contract.
    const DOC_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI1ZjBjMmI3ZTlhMWQ0YzNiOGU2ZjJhMWQwYzliOGE3ZiIsIm5hbWUiOiJBZGEiLCJwZXJtcyI6WyJjcmVhdGVfcm9vbXMiXSwiYXVkIjoibG9ja3N0ZXAiLCJpc3MiOiJqZWxseWZpbiIsImV4cCI6MTcwMDAwMDYwMCwiaWF0IjoxNzAwMDAwMDAwfQ.o0Cak9ZDR5lgUI62RcV73CtvSrzlH3XPpIvqRol5zoc";

    fn hs_config() -> AuthConfig {
        AuthConfig {
            required: true,
            key: Some(VerifyKey::Hs256 {
                secret: SECRET.to_vec(),
            }),
            ..AuthConfig::default()
        }
    }

    fn ed_config() -> AuthConfig {
        AuthConfig {
            required: true,
            key: Some(VerifyKey::EdDsa {
                public_pem: ED_PUBLIC.as_bytes().to_vec(),
            }),
            ..AuthConfig::default()
        }
    }

    fn claims() -> Claims {
        Claims {
            name: Some("Ada".to_owned()),
            iat: Some(NOW),
            ..Claims::new("user-1", NOW + 600)
        }
    }

    fn mint(claims: &Claims) -> String {
        mint_hs256(claims, SECRET).unwrap()
    }

    fn sign(alg: Algorithm, claims: &impl Serialize, key: &EncodingKey) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
    }

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn auth(token: &str, config: &AuthConfig) -> Result<Identity, AuthError> {
        authenticate(Some(token), config, NOW)
    }

    #[test]
    fn a_valid_hs256_token_gives_its_identity() {
        let identity = auth(&mint(&claims()), &hs_config()).unwrap();
        assert_eq!(
            identity,
            Identity {
                user_id: Some("user-1".to_owned()),
                name: Some("Ada".to_owned()),
                may_create_rooms: false,
                moderator: false,
                authenticated: true,
            }
        );
    }

    #[test]
    fn the_documented_example_token_verifies_and_mints_identically() {
        let config = AuthConfig {
            key: Some(VerifyKey::Hs256 {
                secret: b"example-secret".to_vec(),
            }),
            issuer: Some("jellyfin".to_owned()),
            ..hs_config()
        };
        let identity = authenticate(Some(DOC_TOKEN), &config, NOW + 60).unwrap();
        assert_eq!(
            identity.user_id.as_deref(),
            Some("5f0c2b7e9a1d4c3b8e6f2a1d0c9b8a7f")
        );
        assert_eq!(identity.name.as_deref(), Some("Ada"));
        assert!(identity.may_create_rooms && !identity.moderator);

        let example = Claims {
            name: Some("Ada".to_owned()),
            perms: vec![PERM_CREATE_ROOMS.to_owned()],
            iss: Some("jellyfin".to_owned()),
            iat: Some(1_700_000_000),
            ..Claims::new("5f0c2b7e9a1d4c3b8e6f2a1d0c9b8a7f", 1_700_000_600)
        };
        assert_eq!(mint_hs256(&example, b"example-secret").unwrap(), DOC_TOKEN);
    }

    #[test]
    fn expiry_is_decided_by_now_and_leeway() {
        let token = mint(&claims());
        let exp = NOW + 600;
        let at = |now| authenticate(Some(&token), &hs_config(), now);
        assert!(at(exp - 1).is_ok());
        // Within the default 30 s of leeway.
        assert!(at(exp + 29).is_ok());
        assert_eq!(at(exp + 30), Err(AuthError::Expired));
        assert_eq!(at(exp + 10_000), Err(AuthError::Expired));
        let strict = AuthConfig {
            leeway_secs: 0,
            ..hs_config()
        };
        assert_eq!(
            authenticate(Some(&token), &strict, exp),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn a_token_long_expired_by_the_system_clock_is_judged_by_now_unix() {
        // exp in 1970: jsonwebtoken's own clock check would refuse it.
        let old = Claims {
            iat: None,
            ..Claims::new("user-1", 1_000)
        };
        assert!(authenticate(Some(&mint(&old)), &hs_config(), 900).is_ok());
    }

    #[test]
    fn not_before_is_checked_with_leeway() {
        let token = mint(&Claims {
            nbf: Some(NOW + 100),
            ..claims()
        });
        assert_eq!(auth(&token, &hs_config()), Err(AuthError::NotYetValid));
        assert!(authenticate(Some(&token), &hs_config(), NOW + 70).is_ok());
        assert_eq!(
            authenticate(Some(&token), &hs_config(), NOW + 69),
            Err(AuthError::NotYetValid)
        );
    }

    #[test]
    fn audience_must_match_and_be_present() {
        let wrong = mint(&Claims {
            aud: Some("someone-else".to_owned()),
            ..claims()
        });
        assert_eq!(auth(&wrong, &hs_config()), Err(AuthError::WrongAudience));
        let missing = mint(&Claims {
            aud: None,
            ..claims()
        });
        assert_eq!(auth(&missing, &hs_config()), Err(AuthError::WrongAudience));

        // An array containing our audience is fine (RFC 7519 §4.1.3).
        let array = sign(
            Algorithm::HS256,
            &serde_json::json!({"sub": "u", "aud": ["other", "lockstep"], "exp": NOW + 60}),
            &EncodingKey::from_secret(SECRET),
        );
        assert!(auth(&array, &hs_config()).is_ok());

        // No audience configured: any or none is accepted.
        let unchecked = AuthConfig {
            audience: None,
            ..hs_config()
        };
        assert!(auth(&wrong, &unchecked).is_ok());
        assert!(auth(&missing, &unchecked).is_ok());
    }

    #[test]
    fn issuer_is_checked_only_when_configured() {
        let config = AuthConfig {
            issuer: Some("jellyfin".to_owned()),
            ..hs_config()
        };
        let wrong = mint(&Claims {
            iss: Some("mallory".to_owned()),
            ..claims()
        });
        assert_eq!(auth(&wrong, &config), Err(AuthError::WrongIssuer));
        assert_eq!(auth(&mint(&claims()), &config), Err(AuthError::WrongIssuer));
        let right = mint(&Claims {
            iss: Some("jellyfin".to_owned()),
            ..claims()
        });
        assert!(auth(&right, &config).is_ok());
        assert!(auth(&wrong, &hs_config()).is_ok());
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let forged = mint_hs256(&claims(), b"not-the-relay-secret-at-all-32-bytes").unwrap();
        assert_eq!(auth(&forged, &hs_config()), Err(AuthError::BadSignature));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let token = mint(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let payload = b64(&format!(
            r#"{{"sub":"admin","perms":["moderate","create_rooms"],"aud":"lockstep","exp":{}}}"#,
            NOW + 600
        ));
        let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(auth(&tampered, &hs_config()), Err(AuthError::BadSignature));
    }

    #[test]
    fn alg_none_is_refused() {
        let payload = b64(&format!(
            r#"{{"sub":"admin","aud":"lockstep","exp":{}}}"#,
            NOW + 600
        ));
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None","typ":"JWT"}"#,
        ] {
            let token = format!("{}.{}.", b64(header), payload);
            assert_eq!(auth(&token, &hs_config()), Err(AuthError::WrongAlgorithm));
            assert_eq!(auth(&token, &ed_config()), Err(AuthError::WrongAlgorithm));
        }
        // A second `alg` cannot smuggle a different value past the header check.
        let twice = format!("{}.{}.", b64(r#"{"alg":"HS256","alg":"none"}"#), payload);
        assert!(matches!(
            auth(&twice, &hs_config()),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn another_hmac_algorithm_is_refused() {
        let token = sign(
            Algorithm::HS512,
            &claims(),
            &EncodingKey::from_secret(SECRET),
        );
        assert_eq!(auth(&token, &hs_config()), Err(AuthError::WrongAlgorithm));
    }

    #[test]
    fn eddsa_tokens_verify_with_the_public_key() {
        let private = EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap();
        let token = sign(Algorithm::EdDSA, &claims(), &private);
        let identity = auth(&token, &ed_config()).unwrap();
        assert_eq!(identity.user_id.as_deref(), Some("user-1"));
        assert!(identity.authenticated);

        let other = EncodingKey::from_ed_pem(ED_OTHER_PRIVATE.as_bytes()).unwrap();
        let forged = sign(Algorithm::EdDSA, &claims(), &other);
        assert_eq!(auth(&forged, &ed_config()), Err(AuthError::BadSignature));

        // An HS256 relay does not take EdDSA tokens either.
        assert_eq!(auth(&token, &hs_config()), Err(AuthError::WrongAlgorithm));
    }

    #[test]
    fn the_public_key_used_as_an_hmac_secret_is_refused() {
        // The classic confusion attack: the public key is public, so anyone can "sign" HS256
        // with it; a relay that let the header pick the algorithm would accept this.
        for public in [ED_PUBLIC, RSA_PUBLIC] {
            let forged = sign(
                Algorithm::HS256,
                &claims(),
                &EncodingKey::from_secret(public.as_bytes()),
            );
            let config = AuthConfig {
                key: Some(if public == ED_PUBLIC {
                    VerifyKey::EdDsa {
                        public_pem: public.as_bytes().to_vec(),
                    }
                } else {
                    VerifyKey::Rs256 {
                        public_pem: public.as_bytes().to_vec(),
                    }
                }),
                ..hs_config()
            };
            assert_eq!(auth(&forged, &config), Err(AuthError::WrongAlgorithm));
        }
    }

    #[test]
    fn rs256_tokens_verify_with_the_public_key() {
        let config = AuthConfig {
            key: Some(VerifyKey::Rs256 {
                public_pem: RSA_PUBLIC.as_bytes().to_vec(),
            }),
            ..hs_config()
        };
        let private = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
        let token = sign(Algorithm::RS256, &claims(), &private);
        assert!(auth(&token, &config).unwrap().authenticated);
        let ps = sign(Algorithm::PS256, &claims(), &private);
        assert_eq!(auth(&ps, &config), Err(AuthError::WrongAlgorithm));
    }

    #[test]
    fn unusable_keys_are_reported_as_such() {
        let swapped = VerifyKey::Rs256 {
            public_pem: ED_PUBLIC.as_bytes().to_vec(),
        };
        assert!(matches!(swapped.check(), Err(AuthError::InvalidKey(_))));
        let garbage = VerifyKey::EdDsa {
            public_pem: b"not a pem".to_vec(),
        };
        assert!(matches!(garbage.check(), Err(AuthError::InvalidKey(_))));
        let empty = VerifyKey::Hs256 { secret: Vec::new() };
        assert!(matches!(empty.check(), Err(AuthError::InvalidKey(_))));
        assert!(matches!(
            mint_hs256(&claims(), b""),
            Err(AuthError::InvalidKey(_))
        ));
        assert!(ed_config().key.unwrap().check().is_ok());

        let config = AuthConfig {
            key: Some(garbage),
            ..hs_config()
        };
        let token = format!("{}.e30.", b64(r#"{"alg":"EdDSA"}"#));
        assert!(matches!(
            auth(&token, &config),
            Err(AuthError::InvalidKey(_))
        ));
    }

    #[test]
    fn perms_map_to_rights_and_unknown_ones_are_ignored() {
        let with = |perms: &[&str]| {
            let token = mint(&Claims {
                perms: perms.iter().map(|p| (*p).to_owned()).collect(),
                ..claims()
            });
            let identity = auth(&token, &hs_config()).unwrap();
            (identity.may_create_rooms, identity.moderator)
        };
        assert_eq!(with(&[]), (false, false));
        assert_eq!(with(&["create_rooms"]), (true, false));
        assert_eq!(with(&["moderate"]), (false, true));
        assert_eq!(with(&["moderate", "create_rooms"]), (true, true));
        assert_eq!(with(&["fly", "CREATE_ROOMS"]), (false, false));
    }

    #[test]
    fn sub_is_required_and_bounded() {
        let no_sub = sign(
            Algorithm::HS256,
            &serde_json::json!({"aud": "lockstep", "exp": NOW + 60}),
            &EncodingKey::from_secret(SECRET),
        );
        assert_eq!(
            auth(&no_sub, &hs_config()),
            Err(AuthError::MissingClaim("sub"))
        );
        let empty = mint(&Claims::new("", NOW + 60));
        assert_eq!(
            auth(&empty, &hs_config()),
            Err(AuthError::MissingClaim("sub"))
        );
        assert!(auth(&mint(&Claims::new("x".repeat(64), NOW + 60)), &hs_config()).is_ok());
        let long = mint(&Claims::new("x".repeat(65), NOW + 60));
        assert!(matches!(
            auth(&long, &hs_config()),
            Err(AuthError::Malformed(_))
        ));
        let control = mint(&Claims::new("a\u{7}b", NOW + 60));
        assert!(matches!(
            auth(&control, &hs_config()),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn exp_is_required() {
        let no_exp = sign(
            Algorithm::HS256,
            &serde_json::json!({"sub": "u", "aud": "lockstep"}),
            &EncodingKey::from_secret(SECRET),
        );
        assert_eq!(
            auth(&no_exp, &hs_config()),
            Err(AuthError::MissingClaim("exp"))
        );
    }

    #[test]
    fn fractional_times_round_toward_the_safe_side() {
        let token = sign(
            Algorithm::HS256,
            &serde_json::json!({"sub": "u", "aud": "lockstep", "exp": 1000.9, "nbf": 900.1}),
            &EncodingKey::from_secret(SECRET),
        );
        let strict = AuthConfig {
            leeway_secs: 0,
            ..hs_config()
        };
        let at = |now| authenticate(Some(&token), &strict, now);
        assert_eq!(at(900), Err(AuthError::NotYetValid));
        assert!(at(901).is_ok());
        assert!(at(999).is_ok());
        assert_eq!(at(1000), Err(AuthError::Expired));
    }

    #[test]
    fn names_are_normalized_or_dropped() {
        let name_of = |name: &str| {
            let token = mint(&Claims {
                name: Some(name.to_owned()),
                ..claims()
            });
            auth(&token, &hs_config()).unwrap().name
        };
        assert_eq!(name_of("  Ada  ").as_deref(), Some("Ada"));
        assert_eq!(name_of("   "), None);
        assert_eq!(name_of("Ada\nLovelace"), None);
        assert_eq!(name_of("Ada\u{0}"), None);
        let long = "é".repeat(70);
        assert_eq!(name_of(&long).map(|n| n.chars().count()), Some(64));
        assert_eq!(
            name_of(&format!("{}  tail", "a".repeat(63))).as_deref(),
            Some("a".repeat(63).as_str())
        );
    }

    #[test]
    fn anonymous_modes() {
        let open = AuthConfig::default();
        let identity = authenticate(None, &open, NOW).unwrap();
        assert_eq!(identity, Identity::anonymous(true));
        assert!(!identity.authenticated && identity.user_id.is_none() && !identity.moderator);

        let no_rooms = AuthConfig {
            anonymous_may_create_rooms: false,
            ..AuthConfig::default()
        };
        assert!(!authenticate(None, &no_rooms, NOW).unwrap().may_create_rooms);

        // No key: a token cannot be checked, so it is ignored.
        assert_eq!(
            authenticate(Some("garbage"), &open, NOW),
            Ok(Identity::anonymous(true))
        );

        // Optional tokens are still verified when a key is configured.
        let optional = AuthConfig {
            required: false,
            ..hs_config()
        };
        assert_eq!(
            authenticate(None, &optional, NOW),
            Ok(Identity::anonymous(true))
        );
        assert!(auth(&mint(&claims()), &optional).unwrap().authenticated);
        let forged = mint_hs256(&claims(), b"not-the-relay-secret-at-all-32-bytes").unwrap();
        assert_eq!(auth(&forged, &optional), Err(AuthError::BadSignature));
    }

    #[test]
    fn required_mode_without_token_or_key() {
        let err = authenticate(None, &hs_config(), NOW).unwrap_err();
        assert_eq!(err, AuthError::Required);
        assert_eq!(err.code(), ErrorCode::AuthRequired);

        let keyless = AuthConfig {
            key: None,
            ..hs_config()
        };
        let err = auth(&mint(&claims()), &keyless).unwrap_err();
        assert_eq!(err, AuthError::NoKey);
        assert_eq!(err.code(), ErrorCode::AuthFailed);
        assert_eq!(AuthError::Expired.code(), ErrorCode::AuthFailed);
    }

    #[test]
    fn oversize_and_misshapen_tokens_are_malformed() {
        let huge = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"HS256"}"#),
            "a".repeat(MAX_TOKEN_BYTES)
        );
        assert!(matches!(
            auth(&huge, &hs_config()),
            Err(AuthError::Malformed(_))
        ));
        for bad in ["", "a", "a.b", "a.b.c.d", "!!!.e30.", "e30.e30."] {
            assert!(
                matches!(auth(bad, &hs_config()), Err(AuthError::Malformed(_))),
                "{bad:?}"
            );
        }
        let crit = format!("{}.e30.", b64(r#"{"alg":"HS256","crit":["b64"]}"#));
        assert!(matches!(
            auth(&crit, &hs_config()),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let shown = format!("{:?}", hs_config());
        assert!(!shown.contains("a-test-secret"));
        assert!(shown.contains("redacted"));
    }
}

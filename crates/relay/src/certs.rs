//! TLS certificates for the WebTransport endpoint (and for HTTPS/WSS when asked).
//!
//! This module owns three decisions: how the relay's own self-signed certificate is made, how a
//! configured certificate is loaded and checked, and when the self-signed one must be replaced.
//! It also computes the SHA-256 hashes that browsers pin the certificate by.
//!
//! It must not read the clock (the current time is always a parameter), touch files or sockets
//! (the caller reads `--cert`/`--key` and writes generated PEM files to `certs/`), or reload the
//! endpoint (the transport shell hands [`CertBundle::identity`] to `Endpoint::reload_config`,
//! which keeps existing connections alive).
//!
//! # Why the self-signed certificate looks the way it does
//!
//! A browser accepts a certificate that no CA signed only through the WebTransport option
//! `serverCertificateHashes`, and only if the certificate is ECDSA P-256 and its whole validity
//! span (`notAfter - notBefore`) is at most 14 days. So, with no certificate configured, the
//! relay generates one ([`self_signed`]), publishes its hash at `GET /api/config`
//! ([`CertStore::published_hashes`]) and replaces it once 40% of its validity remains
//! ([`rotation_due`]).
//!
//! When a browser is given hashes it verifies *only* by hash, so a CA-issued certificate must not
//! be published: it would fail the 14-day rule. [`CertBundle::pinnable`] records whether a
//! bundle may be published; configured certificates normally are not, and browsers then verify
//! them the ordinary way.
//!
//! # Rotating without failed connects
//!
//! A client pins the hashes it fetched from `/api/config` and then connects. If the endpoint
//! switches certificates in between, that connect fails. [`CertStore`] therefore lets the next
//! bundle be *staged*: its hash is published next to the current one for a while, and only then
//! does the shell switch the endpoint and [`CertStore::promote`] it. The old hash stays published
//! until the old certificate expires, which covers the short window in which the store has been
//! updated but the endpoint has not yet been reloaded.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use wtransport::Identity;
use wtransport::tls::rustls;
use wtransport::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use wtransport::tls::{Certificate, CertificateChain, PrivateKey};

const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY_SECS: u64 = 24 * 60 * 60;

/// The longest validity span browsers accept for a certificate pinned by
/// `serverCertificateHashes` (14 days, counted from `notBefore` to `notAfter`).
pub const MAX_SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(14 * DAY_SECS);

/// How long a generated certificate stays valid from the moment it is made (10 days).
///
/// Below the browsers' 14-day cap so that, with rotation at 40% remaining, a relay that missed
/// a rotation (suspended laptop, stuck task) still has days of valid certificate left.
pub const DEFAULT_SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(10 * DAY_SECS);

/// How far before "now" a generated certificate starts to be valid (1 hour).
///
/// A browser whose clock runs a little behind the relay's would otherwise see a certificate
/// that is not valid yet.
pub const CLOCK_SKEW_ALLOWANCE: Duration = HOUR;

/// Kept between a generated certificate's span and [`MAX_SELF_SIGNED_VALIDITY`] (1 hour).
///
/// Chromium counts the whole `notBefore..notAfter` span, including the backdating, and the
/// exact comparison at the boundary is not something to bet on.
const SPAN_MARGIN: Duration = HOUR;

/// The longest span [`self_signed`] will produce: 14 days minus the margin.
const MAX_GENERATED_SPAN: Duration = MAX_SELF_SIGNED_VALIDITY.saturating_sub(SPAN_MARGIN);

/// Subject alternative names for a relay that is only reached locally.
///
/// Tests should use `127.0.0.1` in WebTransport URLs: Chromium resolves `localhost` to `::1`
/// only.
pub const DEFAULT_SUBJECT_ALT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A self-signed bundle is rotated once this share of its validity span remains: 2/5 = 40%.
const ROTATE_REMAINING_NUMERATOR: u32 = 2;
const ROTATE_REMAINING_DENOMINATOR: u32 = 5;

/// The hash algorithm name `serverCertificateHashes` expects.
const HASH_ALGORITHM: &str = "sha-256";

/// Common name of generated certificates (browsers ignore it; it helps whoever reads the PEM).
const SELF_SIGNED_COMMON_NAME: &str = "lockstep relay (self-signed)";

/// Why a certificate could not be generated or loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Generating a self-signed certificate failed.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    /// A PEM input could not be decoded.
    #[error("cannot read PEM: {0}")]
    Pem(String),
    /// The certificate PEM holds no `CERTIFICATE` section.
    #[error("no certificate found in the certificate PEM")]
    NoCertificate,
    /// The key PEM holds no private key section (PKCS#8, SEC1 or PKCS#1).
    #[error("no private key found in the key PEM")]
    NoKey,
    /// The input decoded but cannot be used (bad parameters, malformed certificate, key that
    /// does not match the certificate, unsupported key type).
    #[error("invalid certificate or key: {0}")]
    Invalid(String),
}

/// A TLS identity for the WebTransport endpoint plus what clients need to pin it.
pub struct CertBundle {
    /// Certificate chain (leaf first) and PKCS#8 private key, ready for
    /// `wtransport::ServerConfig::builder()...with_identity(..)`. Already checked to form a
    /// usable TLS identity, so building the server config does not fail on it.
    pub identity: Identity,
    /// SHA-256 of the leaf certificate's DER: what `serverCertificateHashes` pins.
    pub sha256: [u8; 32],
    /// Start of the leaf's validity.
    pub not_before: SystemTime,
    /// End of the leaf's validity.
    pub not_after: SystemTime,
    /// `true` when this relay generated the certificate ([`self_signed`]); only such bundles
    /// are rotated.
    pub self_signed: bool,
    /// Whether browsers can pin this certificate by hash (ECDSA P-256, validity span at most
    /// [`MAX_SELF_SIGNED_VALIDITY`]). Only pinnable bundles are published: a browser given
    /// hashes verifies by hash alone and would reject any other certificate.
    pub pinnable: bool,
    /// PEM of the certificate chain, leaf first (for a generated bundle, just the leaf): for
    /// writing to disk or serving HTTPS.
    pub cert_pem: String,
    /// PEM (PKCS#8) of the private key, only for self-signed bundles (a configured key is
    /// already on disk; no reason to carry a second copy around).
    pub key_pem: Option<String>,
}

impl Clone for CertBundle {
    fn clone(&self) -> Self {
        Self {
            identity: self.identity.clone_identity(),
            sha256: self.sha256,
            not_before: self.not_before,
            not_after: self.not_after,
            self_signed: self.self_signed,
            pinnable: self.pinnable,
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

// By hand: the derived form would print the private key.
impl fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertBundle")
            .field("sha256", &self.hash().value)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("self_signed", &self.self_signed)
            .field("pinnable", &self.pinnable)
            .finish_non_exhaustive()
    }
}

/// One entry of `serverCertificateHashes` as published at `GET /api/config`.
///
/// The browser wants `{algorithm: "sha-256", value: BufferSource}`; JSON has no bytes, so
/// `value` is the standard base64 of the 32-byte digest and the client decodes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertHash {
    /// Always `"sha-256"`.
    pub algorithm: &'static str,
    /// Standard base64 (with padding) of the SHA-256 of the leaf certificate's DER.
    pub value: String,
}

impl CertBundle {
    /// The hash clients pin this bundle's leaf certificate by.
    pub fn hash(&self) -> CertHash {
        CertHash {
            algorithm: HASH_ALGORITHM,
            value: base64::engine::general_purpose::STANDARD.encode(self.sha256),
        }
    }

    /// When this bundle should be replaced: once 40% of its validity span remains.
    ///
    /// `None` for configured certificates, which the relay never rotates (whoever renews them
    /// restarts or reconfigures the relay). The shell can sleep until this instant.
    pub fn rotate_at(&self) -> Option<SystemTime> {
        if !self.self_signed {
            return None;
        }
        let span = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        let keep = (span / ROTATE_REMAINING_DENOMINATOR).saturating_mul(ROTATE_REMAINING_NUMERATOR);
        Some(self.not_after.checked_sub(keep).unwrap_or(self.not_before))
    }

    /// Whether the leaf certificate is valid at `now`.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// Whether a self-signed bundle should be replaced at `now`: true once no more than 40% of its
/// validity span remains (including after it expired). Never true for configured certificates.
pub fn rotation_due(bundle: &CertBundle, now: SystemTime) -> bool {
    bundle.rotate_at().is_some_and(|at| now >= at)
}

/// Generates an ECDSA P-256 self-signed certificate that browsers can pin by hash.
///
/// `subject_alt_names` are parsed one by one: an IP address (`127.0.0.1`, `::1`, `[::1]`)
/// becomes an IP SAN, anything else a DNS SAN. The relay passes
/// [`DEFAULT_SUBJECT_ALT_NAMES`] plus its public host names. The certificate is valid from
/// `now - 1 hour` ([`CLOCK_SKEW_ALLOWANCE`]) to `now + validity`, with `validity` shortened if
/// needed so the whole span stays under 14 days minus a one-hour margin. Times are whole
/// seconds (X.509 has no finer resolution), rounded down.
pub fn self_signed(
    subject_alt_names: &[String],
    validity: Duration,
    now: SystemTime,
) -> Result<CertBundle, CertError> {
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CertError::Invalid("current time is before 1970".to_owned()))?
        .as_secs();
    let now = UNIX_EPOCH
        .checked_add(Duration::from_secs(now_secs))
        .ok_or_else(|| CertError::Invalid("current time out of range".to_owned()))?;
    let validity = validity.min(MAX_GENERATED_SPAN.saturating_sub(CLOCK_SKEW_ALLOWANCE));
    let validity = Duration::from_secs(validity.as_secs());
    if validity.is_zero() {
        return Err(CertError::Invalid(
            "validity of a self-signed certificate must be at least one second".to_owned(),
        ));
    }
    let not_before = now
        .checked_sub(CLOCK_SKEW_ALLOWANCE)
        .ok_or_else(|| CertError::Invalid("current time out of range".to_owned()))?;
    let not_after = now
        .checked_add(validity)
        .ok_or_else(|| CertError::Invalid("current time out of range".to_owned()))?;

    let mut params = CertificateParams::default();
    params.subject_alt_names = subject_alt_names
        .iter()
        .map(|name| parse_san(name))
        .collect::<Result<_, _>>()?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, SELF_SIGNED_COMMON_NAME);
    params.distinguished_name = name;
    params.not_before = offset_date_time(not_before)?;
    params.not_after = offset_date_time(not_after)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CertError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| CertError::Generate(e.to_string()))?;
    let leaf = Certificate::from_der(cert.der().to_vec())
        .map_err(|e| CertError::Generate(e.to_string()))?;
    let key_pkcs8 = key.serialize_der();
    check_usable(&[cert.der().clone()], &key_pkcs8)?;

    Ok(CertBundle {
        sha256: sha256(leaf.der()),
        identity: Identity::new(
            CertificateChain::single(leaf),
            PrivateKey::from_der_pkcs8(key_pkcs8),
        ),
        not_before,
        not_after,
        self_signed: true,
        pinnable: true,
        cert_pem: cert.pem(),
        key_pem: Some(key.serialize_pem()),
    })
}

/// Loads a configured certificate chain and private key from PEM.
///
/// The first certificate in `cert_pem` is the leaf; the others are passed on as the chain.
/// The key may be PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#1
/// (`RSA PRIVATE KEY`); it is converted to PKCS#8, which is what wtransport takes. The pair is
/// checked the way rustls will use it (key parses, key matches the leaf), so a bad pair is an
/// error here rather than a panic when the endpoint is built. Validity and key type are read
/// from the leaf; a leaf that happens to be pinnable (ECDSA P-256, span of at most 14 days) is
/// marked [`CertBundle::pinnable`] so its hash is published, but it is never rotated.
pub fn load_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertBundle, CertError> {
    let chain_der = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Pem(format!("certificate: {e}")))?;
    let leaf_der = chain_der.first().ok_or(CertError::NoCertificate)?;
    let chain = chain_der
        .iter()
        .enumerate()
        .map(|(index, der)| {
            Certificate::from_der(der.to_vec())
                .map_err(|e| CertError::Invalid(format!("certificate #{index} in the chain: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = der::LeafInfo::parse(leaf_der).ok_or_else(|| {
        CertError::Invalid("cannot read validity and key type of the leaf certificate".to_owned())
    })?;

    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| CertError::Pem(format!("private key: {e}")))?
        .ok_or(CertError::NoKey)?;
    let key_pkcs8 = to_pkcs8(&key, leaf.ec_curve.as_deref())?;
    check_usable(&chain_der, &key_pkcs8)?;

    let span = leaf
        .not_after
        .duration_since(leaf.not_before)
        .unwrap_or_default();
    let pinnable =
        leaf.ec_curve.as_deref() == Some(der::OID_P256) && span <= MAX_SELF_SIGNED_VALIDITY;
    // wtransport writes CRLF; the generated PEM (rcgen) uses LF: keep one style.
    let cert_pem = chain
        .iter()
        .map(|cert| cert.to_pem().replace("\r\n", "\n"))
        .collect();
    Ok(CertBundle {
        sha256: sha256(leaf_der),
        identity: Identity::new(
            CertificateChain::new(chain),
            PrivateKey::from_der_pkcs8(key_pkcs8),
        ),
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        self_signed: false,
        pinnable,
        cert_pem,
        key_pem: None,
    })
}

/// The bundles whose hashes are published, and the one the endpoint serves.
///
/// Keeps the current bundle, optionally a staged next one (published before the endpoint
/// switches to it, so a client that fetches the config and then connects pins correctly
/// across the switch), and the previous one (published until it expires, for the moment
/// between updating the store and reloading the endpoint).
///
/// Intended flow in the shell, all with `now` passed in:
/// 1. [`CertStore::rotation_due`] is true: generate a bundle and [`CertStore::stage`] it.
/// 2. After a grace period (longer than a config fetch plus a connect), build the server config
///    from the staged identity, call `Endpoint::reload_config`, then [`CertStore::promote`].
///
/// [`CertStore::rotate`] does both steps at once when no grace period is wanted.
#[derive(Debug, Clone)]
pub struct CertStore {
    current: CertBundle,
    staged: Option<CertBundle>,
    previous: Option<CertBundle>,
}

impl CertStore {
    /// A store serving `current`, with nothing staged and no previous bundle.
    pub fn new(current: CertBundle) -> Self {
        Self {
            current,
            staged: None,
            previous: None,
        }
    }

    /// The bundle the endpoint serves.
    pub fn current(&self) -> &CertBundle {
        &self.current
    }

    /// The bundle announced as next, if any.
    pub fn staged(&self) -> Option<&CertBundle> {
        self.staged.as_ref()
    }

    /// The bundle served before the last rotation, if any.
    pub fn previous(&self) -> Option<&CertBundle> {
        self.previous.as_ref()
    }

    /// Whether the current bundle is due for rotation and no successor is staged yet.
    pub fn rotation_due(&self, now: SystemTime) -> bool {
        self.staged.is_none() && rotation_due(&self.current, now)
    }

    /// Announces `next`: its hash is published from now on, but the current bundle is still
    /// the one served. Replaces any bundle staged before.
    pub fn stage(&mut self, next: CertBundle) {
        self.staged = Some(next);
    }

    /// Makes the staged bundle current (the old current one becomes previous). Returns
    /// `false`, changing nothing, when nothing is staged.
    pub fn promote(&mut self) -> bool {
        match self.staged.take() {
            Some(next) => {
                self.rotate(next);
                true
            }
            None => false,
        }
    }

    /// Makes `next` current at once; the old current bundle becomes previous (the bundle that
    /// was previous before is dropped) and any staged bundle is discarded.
    pub fn rotate(&mut self, next: CertBundle) {
        self.staged = None;
        let old = std::mem::replace(&mut self.current, next);
        self.previous = Some(old);
    }

    /// The hashes for `serverCertificateHashes` at `now`: current first, then the staged one,
    /// then the previous one while it is still valid.
    ///
    /// Bundles that are not [`CertBundle::pinnable`] are left out, so a relay with a CA-issued
    /// certificate publishes an empty list and browsers verify it the ordinary way. Duplicates
    /// (the same certificate twice) appear once.
    pub fn published_hashes(&self, now: SystemTime) -> Vec<CertHash> {
        let previous = self.previous.as_ref().filter(|b| now < b.not_after);
        let mut seen: Vec<[u8; 32]> = Vec::with_capacity(3);
        let mut hashes = Vec::with_capacity(3);
        for bundle in [Some(&self.current), self.staged.as_ref(), previous]
            .into_iter()
            .flatten()
        {
            if bundle.pinnable && !seen.contains(&bundle.sha256) {
                seen.push(bundle.sha256);
                hashes.push(bundle.hash());
            }
        }
        hashes
    }
}

fn sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// One subject alternative name: an IP address (brackets allowed around IPv6) or a DNS name.
fn parse_san(name: &str) -> Result<SanType, CertError> {
    let name = name.trim();
    let unbracketed = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if name.is_empty() {
        return Err(CertError::Invalid(
            "empty subject alternative name".to_owned(),
        ));
    }
    Ia5String::try_from(name.to_owned())
        .map(SanType::DnsName)
        .map_err(|e| CertError::Invalid(format!("subject alternative name {name:?}: {e}")))
}

fn offset_date_time(t: SystemTime) -> Result<time::OffsetDateTime, CertError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| CertError::Invalid("time before 1970 or too far ahead".to_owned()))?;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| CertError::Invalid(format!("time out of range: {e}")))
}

fn system_time_from_unix(secs: i64) -> Option<SystemTime> {
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH.checked_add(Duration::from_secs(secs)),
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
    }
}

/// Converts any key rustls-pemfile finds into PKCS#8, the only form wtransport's `PrivateKey`
/// takes. A SEC1 key without its curve named inside takes the curve of the leaf certificate.
fn to_pkcs8(key: &PrivateKeyDer<'_>, leaf_curve: Option<&[u8]>) -> Result<Vec<u8>, CertError> {
    match key {
        PrivateKeyDer::Pkcs8(key) => Ok(key.secret_pkcs8_der().to_vec()),
        PrivateKeyDer::Pkcs1(key) => Ok(der::pkcs8_from_pkcs1(key.secret_pkcs1_der())),
        PrivateKeyDer::Sec1(key) => {
            let sec1 = key.secret_sec1_der();
            let curve = der::sec1_curve(sec1)
                .or(leaf_curve)
                .ok_or_else(|| CertError::Invalid("EC private key names no curve".to_owned()))?;
            Ok(der::pkcs8_from_sec1(sec1, curve))
        }
        _ => Err(CertError::Invalid(
            "unsupported private key format".to_owned(),
        )),
    }
}

/// Checks the pair exactly as wtransport will use it (rustls, *ring* provider, TLS 1.3), because
/// wtransport's `with_identity` panics on a pair rustls refuses.
fn check_usable(chain: &[CertificateDer<'static>], key_pkcs8: &[u8]) -> Result<(), CertError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8.to_vec()));
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| CertError::Invalid(format!("TLS 1.3 unavailable: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain.to_vec(), key)
        .map(|_| ())
        .map_err(|e| CertError::Invalid(format!("certificate and key unusable together: {e}")))
}

/// The little DER this module needs: reading a certificate's validity and key type, and
/// wrapping SEC1/PKCS#1 keys into PKCS#8. (No X.509 parser is a direct dependency.)
mod der {
    use std::time::SystemTime;

    const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    const NULL: u8 = 0x05;
    const OID: u8 = 0x06;
    const SEQUENCE: u8 = 0x30;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    const CONTEXT_0: u8 = 0xa0;

    /// 1.2.840.10045.2.1 (id-ecPublicKey), value bytes only.
    const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// 1.2.840.10045.3.1.7 (secp256r1 / P-256), value bytes only.
    pub(super) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// 1.2.840.113549.1.1.1 (rsaEncryption), value bytes only.
    const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

    /// What the module needs from a leaf certificate.
    pub(super) struct LeafInfo {
        pub(super) not_before: SystemTime,
        pub(super) not_after: SystemTime,
        /// The named curve (OID value bytes) when the key is an EC key.
        pub(super) ec_curve: Option<Vec<u8>>,
    }

    impl LeafInfo {
        /// Walks `Certificate -> TBSCertificate` (RFC 5280 4.1) up to the public key.
        pub(super) fn parse(cert: &[u8]) -> Option<Self> {
            let mut input = cert;
            let mut cert = expect(&mut input, SEQUENCE)?;
            let mut tbs = expect(&mut cert, SEQUENCE)?;
            if tbs.first() == Some(&CONTEXT_0) {
                read(&mut tbs)?; // version
            }
            expect(&mut tbs, INTEGER)?; // serialNumber
            expect(&mut tbs, SEQUENCE)?; // signature
            expect(&mut tbs, SEQUENCE)?; // issuer
            let mut validity = expect(&mut tbs, SEQUENCE)?;
            let not_before = read_time(&mut validity)?;
            let not_after = read_time(&mut validity)?;
            expect(&mut tbs, SEQUENCE)?; // subject
            let mut spki = expect(&mut tbs, SEQUENCE)?;
            let mut algorithm = expect(&mut spki, SEQUENCE)?;
            let ec_curve = if expect(&mut algorithm, OID)? == OID_EC_PUBLIC_KEY {
                expect(&mut algorithm, OID).map(<[u8]>::to_vec)
            } else {
                None
            };
            Some(Self {
                not_before,
                not_after,
                ec_curve,
            })
        }
    }

    /// The curve named inside a SEC1 `ECPrivateKey` (RFC 5915), if it names one.
    pub(super) fn sec1_curve(sec1: &[u8]) -> Option<&[u8]> {
        let mut input = sec1;
        let mut key = expect(&mut input, SEQUENCE)?;
        expect(&mut key, INTEGER)?; // version
        expect(&mut key, OCTET_STRING)?; // privateKey
        let mut parameters = expect(&mut key, CONTEXT_0)?;
        expect(&mut parameters, OID)
    }

    /// `PrivateKeyInfo` (RFC 5208) around a PKCS#1 `RSAPrivateKey`.
    pub(super) fn pkcs8_from_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
        let algorithm = tlv(
            SEQUENCE,
            &[tlv(OID, OID_RSA_ENCRYPTION), tlv(NULL, &[])].concat(),
        );
        pkcs8(&algorithm, pkcs1)
    }

    /// `PrivateKeyInfo` (RFC 5208) around a SEC1 `ECPrivateKey` on `curve`.
    pub(super) fn pkcs8_from_sec1(sec1: &[u8], curve: &[u8]) -> Vec<u8> {
        let algorithm = tlv(
            SEQUENCE,
            &[tlv(OID, OID_EC_PUBLIC_KEY), tlv(OID, curve)].concat(),
        );
        pkcs8(&algorithm, sec1)
    }

    fn pkcs8(algorithm: &[u8], private_key: &[u8]) -> Vec<u8> {
        let version = tlv(INTEGER, &[0]);
        let key = tlv(OCTET_STRING, private_key);
        tlv(SEQUENCE, &[version, algorithm.to_vec(), key].concat())
    }

    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(value.len() + 6);
        out.push(tag);
        match u8::try_from(value.len()) {
            Ok(short) if short < 0x80 => out.push(short),
            _ => {
                // Long form: 0x80 | number of length bytes, then the length, big-endian.
                let bytes = value.len().to_be_bytes();
                let skip = bytes.iter().take_while(|b| **b == 0).count();
                let significant = bytes.get(skip..).unwrap_or_default();
                out.push(0x80 | significant.len() as u8);
                out.extend_from_slice(significant);
            }
        }
        out.extend_from_slice(value);
        out
    }

    /// Reads one tag-length-value; `None` on anything malformed or not DER-shaped.
    fn read<'a>(input: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // multi-byte tags never occur in what we read
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return None; // indefinite length, or longer than any certificate
            }
            let (bytes, after) = rest.split_at_checked(count)?;
            rest = after;
            let len = bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            usize::try_from(len).ok()?
        };
        let (value, rest) = rest.split_at_checked(len)?;
        *input = rest;
        Some((tag, value))
    }

    fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Option<&'a [u8]> {
        match read(input)? {
            (found, value) if found == tag => Some(value),
            _ => None,
        }
    }

    /// `Time ::= UTCTime | GeneralizedTime` as RFC 5280 4.1.2.5 restricts them: UTC ("Z"),
    /// seconds present, no fractions.
    fn read_time(input: &mut &[u8]) -> Option<SystemTime> {
        let (tag, value) = read(input)?;
        let digits = value.strip_suffix(b"Z")?;
        let (year, rest) = match (tag, digits.len()) {
            (UTC_TIME, 12) => {
                let yy = number(digits.get(..2)?)?;
                (
                    if yy >= 50 { 1900 + yy } else { 2000 + yy },
                    digits.get(2..)?,
                )
            }
            (GENERALIZED_TIME, 14) => (number(digits.get(..4)?)?, digits.get(4..)?),
            _ => return None,
        };
        let field = |at: usize| -> Option<u8> { u8::try_from(number(rest.get(at..at + 2)?)?).ok() };
        let month = time::Month::try_from(field(0)?).ok()?;
        let date =
            time::Date::from_calendar_date(i32::try_from(year).ok()?, month, field(2)?).ok()?;
        let clock = time::Time::from_hms(field(4)?, field(6)?, field(8)?).ok()?;
        let unix = time::PrimitiveDateTime::new(date, clock)
            .assume_utc()
            .unix_timestamp();
        super::system_time_from_unix(unix)
    }

    fn number(digits: &[u8]) -> Option<u32> {
        digits.iter().try_fold(0u32, |acc, &d| {
            let digit = d.is_ascii_digit().then(|| u32::from(d - b'0'))?;
            acc.checked_mul(10)?.checked_add(digit)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wtransport::tls::client::ServerHashVerification;
    use wtransport::tls::rustls::client::danger::ServerCertVerifier as _;
    use wtransport::tls::rustls::pki_types::{ServerName, UnixTime};

    const DAY: Duration = Duration::from_secs(DAY_SECS);

    /// 2026-01-01T00:00:00Z plus a fraction, to check rounding down to whole seconds.
    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600) + Duration::from_millis(750)
    }

    fn t0_whole() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600)
    }

    fn default_names() -> Vec<String> {
        DEFAULT_SUBJECT_ALT_NAMES
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    fn generate(validity: Duration, now: SystemTime) -> CertBundle {
        self_signed(&default_names(), validity, now).expect("generate")
    }

    fn leaf_der(bundle: &CertBundle) -> &[u8] {
        bundle.identity.certificate_chain().as_slice()[0].der()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    /// What a browser (and wtransport's own client) checks for `serverCertificateHashes`.
    fn browser_accepts(bundle: &CertBundle, at: SystemTime) -> bool {
        let digest = wtransport::tls::Sha256Digest::new(bundle.sha256);
        let verifier = ServerHashVerification::new([digest]);
        let der = CertificateDer::from(leaf_der(bundle).to_vec());
        let at = UnixTime::since_unix_epoch(at.duration_since(UNIX_EPOCH).expect("after 1970"));
        let name = ServerName::try_from("localhost").expect("name");
        verifier
            .verify_server_cert(&der, &[], &name, &[], at)
            .is_ok()
    }

    #[test]
    fn generated_certificate_is_ecdsa_p256() {
        let bundle = generate(DEFAULT_SELF_SIGNED_VALIDITY, t0());
        let der = leaf_der(&bundle);
        // OID 1.2.840.10045.3.1.7 as encoded in the SubjectPublicKeyInfo.
        assert!(contains(
            der,
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
        ));
        let info = der::LeafInfo::parse(der).expect("parse");
        assert_eq!(info.ec_curve.as_deref(), Some(der::OID_P256));
        assert!(bundle.self_signed && bundle.pinnable);
        assert!(bundle.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            bundle
                .key_pem
                .as_deref()
                .is_some_and(|k| k.contains("BEGIN PRIVATE KEY"))
        );
    }

    #[test]
    fn generated_validity_is_backdated_and_matches_the_certificate() {
        let bundle = generate(DEFAULT_SELF_SIGNED_VALIDITY, t0());
        assert!(bundle.not_before < t0());
        assert_eq!(bundle.not_before, t0_whole() - CLOCK_SKEW_ALLOWANCE);
        assert_eq!(bundle.not_after, t0_whole() + DEFAULT_SELF_SIGNED_VALIDITY);
        let info = der::LeafInfo::parse(leaf_der(&bundle)).expect("parse");
        assert_eq!(info.not_before, bundle.not_before);
        assert_eq!(info.not_after, bundle.not_after);
    }

    #[test]
    fn validity_is_capped_below_fourteen_days() {
        for asked in [Duration::from_secs(30 * 86_400), MAX_SELF_SIGNED_VALIDITY] {
            let bundle = generate(asked, t0());
            let span = bundle
                .not_after
                .duration_since(bundle.not_before)
                .expect("span");
            assert!(span <= MAX_SELF_SIGNED_VALIDITY - SPAN_MARGIN, "{span:?}");
            let info = der::LeafInfo::parse(leaf_der(&bundle)).expect("parse");
            assert_eq!(info.not_after, bundle.not_after);
        }
        assert!(matches!(
            self_signed(&default_names(), Duration::from_millis(500), t0()),
            Err(CertError::Invalid(_))
        ));
    }

    #[test]
    fn browsers_rule_accepts_generated_certificates() {
        let bundle = generate(Duration::from_secs(30 * 86_400), t0());
        assert!(browser_accepts(&bundle, t0()));
        assert!(browser_accepts(&bundle, t0() + 13 * DAY));
        assert!(!browser_accepts(
            &bundle,
            bundle.not_after + Duration::from_secs(1)
        ));
    }

    #[test]
    fn subject_alt_names_are_ip_or_dns() {
        assert!(matches!(parse_san("127.0.0.1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(parse_san("::1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(parse_san("[::1]"), Ok(SanType::IpAddress(_))));
        assert!(matches!(
            parse_san("relay.example.org"),
            Ok(SanType::DnsName(_))
        ));
        assert!(matches!(parse_san(""), Err(CertError::Invalid(_))));
        assert!(matches!(
            parse_san("h\u{e9}llo"),
            Err(CertError::Invalid(_))
        ));
        let bundle = generate(DAY, t0());
        let der = leaf_der(&bundle);
        assert!(contains(der, b"localhost"));
        assert!(contains(der, &[0x87, 0x04, 127, 0, 0, 1])); // iPAddress 127.0.0.1
        let mut v6 = vec![0x87, 0x10];
        v6.extend(std::net::Ipv6Addr::LOCALHOST.octets());
        assert!(contains(der, &v6));
    }

    #[test]
    fn hash_is_sha256_of_der_and_matches_wtransport() {
        let bundle = generate(DEFAULT_SELF_SIGNED_VALIDITY, t0());
        let leaf = &bundle.identity.certificate_chain().as_slice()[0];
        let expected: [u8; 32] = Sha256::digest(leaf.der()).into();
        assert_eq!(bundle.sha256, expected);
        assert_eq!(leaf.hash().as_ref(), &bundle.sha256);
    }

    #[test]
    fn published_hash_is_base64_of_the_digest() {
        let mut bundle = generate(DAY, t0());
        bundle.sha256 = [0xab; 32];
        let hash = bundle.hash();
        assert_eq!(hash.algorithm, "sha-256");
        assert_eq!(hash.value, "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&hash.value)
            .expect("base64");
        assert_eq!(decoded, [0xab; 32]);
        let json = serde_json::to_value(&hash).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"algorithm": "sha-256", "value": hash.value})
        );
    }

    #[test]
    fn rotation_is_due_when_forty_percent_remains() {
        let bundle = generate(DEFAULT_SELF_SIGNED_VALIDITY, t0());
        let span = bundle
            .not_after
            .duration_since(bundle.not_before)
            .expect("span");
        let at = bundle.rotate_at().expect("self-signed rotates");
        assert_eq!(
            bundle.not_after.duration_since(at).expect("before end"),
            span * 2 / 5
        );
        assert!(!rotation_due(&bundle, t0()));
        assert!(!rotation_due(&bundle, t0() + 5 * DAY));
        assert!(!rotation_due(&bundle, at - Duration::from_secs(1)));
        assert!(rotation_due(&bundle, at));
        assert!(rotation_due(&bundle, t0() + 7 * DAY));
        assert!(rotation_due(&bundle, bundle.not_after + DAY));
        // Rotation leaves days of validity: the new certificate is in place long before expiry.
        assert!(bundle.not_after.duration_since(at).expect("before end") > 4 * DAY);
    }

    #[test]
    fn configured_certificates_never_rotate() {
        let generated = generate(DEFAULT_SELF_SIGNED_VALIDITY, t0());
        let key = generated.key_pem.clone().expect("key");
        let loaded = load_pem(generated.cert_pem.as_bytes(), key.as_bytes()).expect("load");
        assert_eq!(loaded.rotate_at(), None);
        assert!(!rotation_due(&loaded, loaded.not_after + 100 * DAY));
    }

    #[test]
    fn load_pem_round_trip() {
        let generated = generate(DEFAULT_SELF_SIGNED_VALIDITY, t0());
        let key = generated.key_pem.clone().expect("key");
        let loaded = load_pem(generated.cert_pem.as_bytes(), key.as_bytes()).expect("load");
        assert_eq!(loaded.sha256, generated.sha256);
        assert_eq!(loaded.not_before, generated.not_before);
        assert_eq!(loaded.not_after, generated.not_after);
        assert!(!loaded.self_signed);
        assert!(
            loaded.pinnable,
            "our own certificate loaded back can still be pinned"
        );
        assert_eq!(loaded.key_pem, None);
        assert_eq!(loaded.cert_pem, generated.cert_pem);
        assert_eq!(
            loaded.identity.private_key().secret_der(),
            generated.identity.private_key().secret_der()
        );
        // Both identities build a server config (wtransport would panic otherwise).
        for bundle in [&generated, &loaded] {
            let _config = wtransport::ServerConfig::builder()
                .with_bind_default(0)
                .with_identity(bundle.identity.clone_identity())
                .build();
        }
    }

    #[test]
    fn load_pem_accepts_a_combined_file_and_a_chain() {
        let leaf = generate(DAY, t0());
        let other = generate(DAY, t0());
        let key = leaf.key_pem.clone().expect("key");
        let chain = format!("{}{}", leaf.cert_pem, other.cert_pem);
        let combined = format!("{key}{chain}");
        let loaded = load_pem(combined.as_bytes(), combined.as_bytes()).expect("load");
        assert_eq!(loaded.sha256, leaf.sha256, "first certificate is the leaf");
        assert_eq!(loaded.identity.certificate_chain().as_slice().len(), 2);
        assert_eq!(loaded.cert_pem, chain);
    }

    /// `openssl ecparam -name prime256v1 -genkey -noout` (SEC1 with the curve named).
    const OPENSSL_SEC1_KEY: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEID+6+wIn3LAF69RYdOTEY3UWh/UZtCyb0V/iSwxfiZSRoAoGCCqGSM49
AwEHoUQDQgAES01pKsRUq78F7n40wAFnhKUrxJBJK9mKie4HmClWT4oUSGh3/248
lZmjre2E6cV+nvmq4TfaiMU/wb8ZBqthMQ==
-----END EC PRIVATE KEY-----
";

    /// `openssl req -x509 -key <SEC1 key> -days 7`: 2026-11-21T02:39:51Z .. 2026-11-28T02:39:51Z.
    const OPENSSL_EC_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBpzCCAU2gAwIBAgIUE0WV7SP3tXO7I23KSVtZGGUj2SYwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQbG9ja3N0ZXAtdGVzdC1lYzAeFw0yNjExMjEwMjM5NTFaFw0y
NjExMjgwMjM5NTFaMBsxGTAXBgNVBAMMEGxvY2tzdGVwLXRlc3QtZWMwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAARLTWkqxFSrvwXufjTAAWeEpSvEkEkr2YqJ7geY
KVZPihRIaHf/bjyVmaOt7YTpxX6e+arhN9qIxT/BvxkGq2Exo28wbTAdBgNVHQ4E
FgQU07Hogkz6uRfuwoWR+5eZVq5grPYwHwYDVR0jBBgwFoAU07Hogkz6uRfuwoWR
+5eZVq5grPYwDwYDVR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SH
BH8AAAEwCgYIKoZIzj0EAwIDSAAwRQIgB+2KDXSWVB2TEoLdOieoROoW7ZLfjAou
FkcjWEbwc7MCIQDvjipH3acYxukLG2FcnrPJgsX2s52FQAauUl/8pk4QFQ==
-----END CERTIFICATE-----
";

    /// `openssl genrsa -traditional 2048` (PKCS#1).
    const OPENSSL_RSA_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAkzhl2Q9QK+xLfTbixV/ljXODo7q2xqAbr3tEsieXayzYR3VF
b0i316GWkQgQ2TkhsDM7hZI87xdkEhxKU4QVHLBa0SkDS7oY83dkdQ6s6x9hSDxG
Oq1qoWAGtFJcMBTIV2V8oBJj8ClTvR0lB5iU/mFPoZ2wI6pDDb0e9aeNSHnTKBR1
JPtrQ0OXNTlJRjNjnsSlepqpkHlSoWPjpva8fN5zvHcJ1If30PGbLQRnIGPy3BOT
ZKMx3yZYTYNvDeUg+Nx6hY7WvI5q50cU5ZyG30z8SADyBA1nGUzYuptvQkZmG4gP
7DNll2eD3f+ghMMnXE0nmm4KyyBdBo7Eo6c9fwIDAQABAoIBAA07vZP0V22LUQHR
ZDL/ur+rSYL3LqTOEY8Fkpg9DNRadJp/xR0KuVPNt54TzofoJcoT4N7R1V5ciOdD
2b6GGeu5QoCYoi41bTa9Xa9UAWElMfZvTJTLr9EPs6qT2KuNwrBwc/JjlM4quNc/
/msfYQ04rBLH/ORH0r0yac0FIaMJBWtAmfxzspgKwr/6mC9EBtEaFSDcaYxjQgkl
+wOBdCXQxV6dfNSOvu1MUMnTRJ4BCNAJeJ1GEoXyLBbLoT6cv5VgLfwTXL4XTE57
Mde+I4WOkozpXMYU+c1Jdo9ZnPAwLka9dLksD6k/2WwDIPlX1IdWI/GFlQZ3L9wU
ypOmlsECgYEAzAeNiUsaeGucMVIBp/rudNI9lDG6uNUXerHVfXM9x9NIwdOdQcGl
3W8GyYxBmIFk5tYoz3NqoUVsaxAWbdGw7T2mhv/XHFhmQ/+Xg6KFH6FXBMo5EoxI
rF77hWqQIa9ohcjlwjj/ECxaGF9dRKBy/12SioFtkiOY6G+InFHEul8CgYEAuLhn
wL2D/nTc26o7OtSf+ERMC0pJCvz3RUwS2LAS1okgZhr2OdcE4+4Ynit4bzkbWEkW
f1YNgjc5eApKSBoBFtPcVD6bwBB1ZlEs7JwMAZyEaUgo4XKQiyzmYvcJ2z/RH5ks
xy0Qk5cjYSh68eHB+S+ASIv2wb7bGCWphh9WkOECgYBJ43pYfEBr19zK5739zZxJ
5lGyt4e9pD5KiticA/4dveCdgTt0MuMUnD7DAu5GgqW+C1TgPBYjrXakF0FoKAaB
BFCol0KZ21G90nRWkabQW6ed7nZYx0ESW5uPJ5Zm/JVHzgeXHPkSLF28cdzfG5RJ
8uM9Eb5SrF2V376DjgFG1QKBgAWAeJalDmll0a45Q8pcyub6Icm0TLinEDZgLa+G
jwkUzII+C1dtsBeZ3+HWKaAmc0oN4z2nsn9OZcfNhqjfHWkwpj9cHgd6dgS2JkBl
5XWm08rO+2i7oNKEY9hOw1xkajYmuc606Ol8dvFN41uQ/dYONCP1B0R+CsiNVp9I
D6wBAoGBAKIeY9DD/Cx+FJdFDocb5vwoWYTm2Z27zv/cihrsS0tI1NGxB5QOuLeg
8yWL02RaNXvfPzaFxFdmM00pvVZu9HvAimdpYM2ZLGxTnCvSdTc+gV7ryPRrSFkE
C9DR8U5ZBp/FWH+pM7ThCzlXHuByKXibTlozXGHr/jGOQ2O6g2sa
-----END RSA PRIVATE KEY-----
";

    /// `openssl req -x509 -key <RSA key> -days 90`: 2026-11-21T02:39:51Z .. 2027-02-19T02:39:51Z.
    const OPENSSL_RSA_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIDGTCCAgGgAwIBAgIUeYhvNr+WtayFkWB0x9oPaqe6hwMwDQYJKoZIhvcNAQEL
BQAwHDEaMBgGA1UEAwwRbG9ja3N0ZXAtdGVzdC1yc2EwHhcNMjYxMTIxMDIzOTUx
WhcNMjcwMjE5MDIzOTUxWjAcMRowGAYDVQQDDBFsb2Nrc3RlcC10ZXN0LXJzYTCC
ASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAJM4ZdkPUCvsS3024sVf5Y1z
g6O6tsagG697RLInl2ss2Ed1RW9It9ehlpEIENk5IbAzO4WSPO8XZBIcSlOEFRyw
WtEpA0u6GPN3ZHUOrOsfYUg8RjqtaqFgBrRSXDAUyFdlfKASY/ApU70dJQeYlP5h
T6GdsCOqQw29HvWnjUh50ygUdST7a0NDlzU5SUYzY57EpXqaqZB5UqFj46b2vHze
c7x3CdSH99Dxmy0EZyBj8twTk2SjMd8mWE2Dbw3lIPjceoWO1ryOaudHFOWcht9M
/EgA8gQNZxlM2Lqbb0JGZhuID+wzZZdng93/oITDJ1xNJ5puCssgXQaOxKOnPX8C
AwEAAaNTMFEwHQYDVR0OBBYEFKa7QyN6me76edy82xIFUprPJ7pXMB8GA1UdIwQY
MBaAFKa7QyN6me76edy82xIFUprPJ7pXMA8GA1UdEwEB/wQFMAMBAf8wDQYJKoZI
hvcNAQELBQADggEBAEuvyS1eUDNsf//HFjwlopZBvXSsEDO7rq2s4OUViWfQ3X+u
A7O4QyuKmcTbjPytNksong12lw+ql0GXLaIthNJoucbykcKaD8j9H8SpOP4aRngw
VrJ57sxaad1WYtq/z1iJWX0pm+uSUEPImQqHJZEOyNx2iPz/piCpyFHm6LAfD5vO
2IQEK4XcSyUbhPt5i8DckzjRye7ko8uhThLz5R6SV1AlrWbdoRZi+ffUxWsphNDI
EEWY4jRm5H//dIa12MU6twlhyCq6N9G4qWZ3ev6kwCJGZ2sFbUFhK/GWtlv6l7wn
rlrEK1Cv9wnzQUiAhupxqkzm+KUTjpH3E4lzU/Q=
-----END CERTIFICATE-----
";

    fn unix(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn load_pem_accepts_an_openssl_sec1_key() {
        let loaded =
            load_pem(OPENSSL_EC_CERT.as_bytes(), OPENSSL_SEC1_KEY.as_bytes()).expect("load");
        assert_eq!(loaded.not_before, unix(1_795_228_791));
        assert_eq!(loaded.not_after, unix(1_795_833_591));
        assert!(loaded.pinnable, "P-256 and 7 days");
        assert!(!loaded.self_signed);
    }

    #[test]
    fn load_pem_accepts_a_sec1_key_without_named_curve() {
        // ring's PKCS#8 leaves the curve out of the inner ECPrivateKey; unwrapped, it is SEC1
        // that only the certificate can complete.
        let generated = generate(DAY, t0());
        let pkcs8 = generated.identity.private_key().secret_der();
        let mut input = pkcs8;
        let (_, mut info) = der_read(&mut input);
        der_read(&mut info); // version
        der_read(&mut info); // algorithm
        let (tag, sec1) = der_read(&mut info);
        assert_eq!(tag, 0x04);
        assert!(der::sec1_curve(sec1).is_none());
        let key = pem("EC PRIVATE KEY", sec1);
        let loaded = load_pem(generated.cert_pem.as_bytes(), key.as_bytes()).expect("load");
        assert_eq!(loaded.identity.private_key().secret_der(), pkcs8);
    }

    fn der_read<'a>(input: &mut &'a [u8]) -> (u8, &'a [u8]) {
        let tag = input[0];
        let (len, header) = match input[1] {
            l if l < 0x80 => (usize::from(l), 2),
            0x81 => (usize::from(input[2]), 3),
            0x82 => (usize::from(input[2]) << 8 | usize::from(input[3]), 4),
            other => panic!("unexpected length byte {other:#x}"),
        };
        let value = &input[header..header + len];
        *input = &input[header + len..];
        (tag, value)
    }

    #[test]
    fn load_pem_accepts_an_openssl_pkcs1_key_and_does_not_pin_rsa() {
        let loaded =
            load_pem(OPENSSL_RSA_CERT.as_bytes(), OPENSSL_RSA_KEY.as_bytes()).expect("load");
        assert_eq!(loaded.not_before, unix(1_795_228_791));
        assert_eq!(loaded.not_after, unix(1_803_004_791));
        assert!(!loaded.pinnable);
        let store = CertStore::new(loaded);
        assert!(store.published_hashes(unix(1_795_228_800)).is_empty());
        let _config = wtransport::ServerConfig::builder()
            .with_bind_default(0)
            .with_identity(store.current().identity.clone_identity())
            .build();
    }

    #[test]
    fn long_lived_p256_certificates_are_not_pinned() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2051, 1, 1); // GeneralizedTime from 2050 on
        let cert = params.self_signed(&key).expect("cert");
        let loaded = load_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).expect("load");
        assert_eq!(loaded.not_before, unix(1_767_225_600));
        assert_eq!(loaded.not_after, unix(2_556_144_000));
        assert!(!loaded.pinnable);
    }

    #[test]
    fn bad_pem_gives_errors() {
        let generated = generate(DAY, t0());
        let key = generated.key_pem.clone().expect("key");
        let cert = generated.cert_pem.as_bytes();
        assert_eq!(
            load_pem(b"", key.as_bytes()).err(),
            Some(CertError::NoCertificate)
        );
        assert_eq!(
            load_pem(b"not a pem at all", key.as_bytes()).err(),
            Some(CertError::NoCertificate)
        );
        assert_eq!(load_pem(cert, b"").err(), Some(CertError::NoKey));
        assert_eq!(load_pem(cert, cert).err(), Some(CertError::NoKey));
        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            load_pem(broken.as_bytes(), key.as_bytes()),
            Err(CertError::Pem(_))
        ));
        let garbage = pem("CERTIFICATE", b"definitely not DER");
        assert!(matches!(
            load_pem(garbage.as_bytes(), key.as_bytes()),
            Err(CertError::Invalid(_))
        ));
        let garbage_key = pem("PRIVATE KEY", b"definitely not DER");
        assert!(matches!(
            load_pem(cert, garbage_key.as_bytes()),
            Err(CertError::Invalid(_))
        ));
        // A valid key that belongs to another certificate.
        let other_key = generate(DAY, t0()).key_pem.expect("key");
        assert!(matches!(
            load_pem(cert, other_key.as_bytes()),
            Err(CertError::Invalid(_))
        ));
        assert!(matches!(
            load_pem(OPENSSL_RSA_CERT.as_bytes(), OPENSSL_SEC1_KEY.as_bytes()),
            Err(CertError::Invalid(_))
        ));
    }

    #[test]
    fn der_reader_rejects_truncated_and_odd_input() {
        let generated = generate(DAY, t0());
        let der = leaf_der(&generated);
        for len in 0..der.len() {
            assert!(
                der::LeafInfo::parse(&der[..len]).is_none(),
                "prefix of {len} bytes"
            );
        }
        assert!(der::LeafInfo::parse(&[0x30, 0x80, 0x00, 0x00]).is_none());
        assert!(der::LeafInfo::parse(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(der::LeafInfo::parse(&[0x1f, 0x01, 0x00]).is_none());
    }

    #[test]
    fn store_publishes_current_staged_and_unexpired_previous() {
        let first = generate(DEFAULT_SELF_SIGNED_VALIDITY, t0());
        let mut store = CertStore::new(first.clone());
        assert_eq!(store.published_hashes(t0()), vec![first.hash()]);
        assert!(!store.rotation_due(t0()));

        let later = t0() + 7 * DAY;
        assert!(store.rotation_due(later));
        let second = generate(DEFAULT_SELF_SIGNED_VALIDITY, later);
        store.stage(second.clone());
        assert!(!store.rotation_due(later), "a successor is already staged");
        assert_eq!(
            store.current().sha256,
            first.sha256,
            "staging does not switch"
        );
        assert_eq!(
            store.published_hashes(later),
            vec![first.hash(), second.hash()]
        );

        assert!(store.promote());
        assert!(!store.promote());
        assert_eq!(store.current().sha256, second.sha256);
        assert_eq!(store.previous().map(|b| b.sha256), Some(first.sha256));
        assert_eq!(
            store.published_hashes(later),
            vec![second.hash(), first.hash()]
        );
        // The previous certificate drops out once it expires.
        assert_eq!(store.published_hashes(first.not_after), vec![second.hash()]);

        let third = generate(DEFAULT_SELF_SIGNED_VALIDITY, later + DAY);
        store.stage(generate(DAY, later));
        store.rotate(third.clone());
        assert!(store.staged().is_none(), "rotate discards what was staged");
        assert_eq!(store.previous().map(|b| b.sha256), Some(second.sha256));
        assert_eq!(
            store.published_hashes(later + DAY),
            vec![third.hash(), second.hash()]
        );
    }

    #[test]
    fn store_publishes_each_certificate_once() {
        let bundle = generate(DAY, t0());
        let mut store = CertStore::new(bundle.clone());
        store.rotate(bundle.clone());
        assert_eq!(store.published_hashes(t0()), vec![bundle.hash()]);
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let bundle = generate(DAY, t0());
        let key = bundle.key_pem.clone().expect("key");
        let body = key.lines().nth(1).expect("body");
        let shown = format!("{bundle:?} {:?}", CertStore::new(bundle.clone()));
        assert!(!shown.contains(body));
        assert!(shown.contains(&bundle.hash().value));
    }
}

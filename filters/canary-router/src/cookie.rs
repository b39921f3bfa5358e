//! The assignment cookie: its value format, HMAC-SHA256 signing with key
//! rotation, and the `Set-Cookie` header.
//!
//! A value is four or five dot-separated fields:
//!
//! ```text
//! c1.<bucket>.<subset>.<issued>.<mac>
//! ```
//!
//! - `c1`: the format version.
//! - `<bucket>`: the user's bucket, decimal `0` to `9999`, no leading zeros.
//! - `<subset>`: the subset assigned when the cookie was written.
//! - `<issued>`: when it was written, Unix seconds, decimal, no leading zeros.
//! - `<mac>`: HMAC-SHA256, keyed with the signing key, over the bytes
//!   `<cookie name>=c1.<bucket>.<subset>.<issued>`, in unpadded base64url
//!   (43 characters). Binding the cookie name means a cookie signed for one
//!   router cannot be replayed as another's. Without a signing key the field
//!   and its dot are left out, and any client can choose its bucket.
//!
//! Parsing is strict: anything else (other field counts, signs, spaces,
//! padding, leading zeros, quotes, a bucket out of range) is malformed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::bucket::BUCKETS;

/// The format tag that starts every value.
pub const FORMAT: &str = "c1";

/// Signing keys shorter than this are refused: HMAC-SHA256 wants at least
/// the hash's output size in key material.
pub const MIN_KEY_BYTES: usize = 32;

/// The longest value considered; longer ones are malformed without parsing.
const MAX_VALUE_LEN: usize = 256;

/// Unpadded base64url length of a 32-byte MAC.
const MAC_B64_LEN: usize = 43;

type HmacSha256 = Hmac<Sha256>;

/// Why a cookie value was not accepted. Every rejection is handled the same
/// way (the cookie counts as absent and is replaced); the kinds are for
/// logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("expired")]
    Expired,
}

/// Which key verified a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The current signing key.
    Current,
    /// The previous key, still accepted during a rotation: the cookie is
    /// re-signed with the current one.
    Previous,
    /// Signing is off.
    Unsigned,
}

/// A parsed (not yet checked against the configuration) cookie value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieValue<'a> {
    pub bucket: u16,
    pub subset: &'a str,
    pub issued: u64,
}

/// A keyed HMAC, ready to be cloned per use (the key is hashed once).
#[derive(Clone)]
pub struct SigningKey(HmacSha256);

impl SigningKey {
    /// `None` when the key is shorter than [`MIN_KEY_BYTES`].
    pub fn new(key: &[u8]) -> Option<Self> {
        if key.len() < MIN_KEY_BYTES {
            return None;
        }
        HmacSha256::new_from_slice(key).ok().map(Self)
    }

    fn mac(&self, message: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.0.clone();
        for part in message {
            mac.update(part);
        }
        mac
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// Writes and reads cookie values for one cookie name.
#[derive(Debug, Clone)]
pub struct CookieCodec {
    name: String,
    current: Option<SigningKey>,
    previous: Option<SigningKey>,
}

impl CookieCodec {
    /// A codec for cookie `name`. With no `current` key, values are unsigned
    /// (and `previous` is ignored).
    pub fn new(
        name: impl Into<String>,
        current: Option<SigningKey>,
        previous: Option<SigningKey>,
    ) -> Self {
        let previous = if current.is_some() { previous } else { None };
        Self {
            name: name.into(),
            current,
            previous,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether values are signed.
    pub fn signed(&self) -> bool {
        self.current.is_some()
    }

    /// The value for (`bucket`, `subset`, `issued`), signed with the current key.
    pub fn encode(&self, bucket: u16, subset: &str, issued: u64) -> String {
        let payload = format!("{FORMAT}.{bucket}.{subset}.{issued}");
        match &self.current {
            None => payload,
            Some(key) => {
                let tag = key
                    .mac(&[self.name.as_bytes(), b"=", payload.as_bytes()])
                    .finalize()
                    .into_bytes();
                format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
            }
        }
    }

    /// Parses `value` and checks its signature. The subset and the age are
    /// for the caller to check against the configuration and the clock.
    pub fn decode<'v>(&self, value: &'v str) -> Result<(CookieValue<'v>, Verified), Rejection> {
        if value.len() > MAX_VALUE_LEN {
            return Err(Rejection::Malformed);
        }
        let mut fields = value.split('.');
        let (Some(format), Some(bucket), Some(subset), Some(issued)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(Rejection::Malformed);
        };
        let mac = fields.next();
        if fields.next().is_some() || format != FORMAT {
            return Err(Rejection::Malformed);
        }
        let bucket = canonical_decimal(bucket, 4)
            .and_then(|b| u16::try_from(b).ok())
            .filter(|&b| b < BUCKETS)
            .ok_or(Rejection::Malformed)?;
        if !valid_subset_name(subset) {
            return Err(Rejection::Malformed);
        }
        let issued = canonical_decimal(issued, 20).ok_or(Rejection::Malformed)?;
        let parsed = CookieValue {
            bucket,
            subset,
            issued,
        };
        let Some(current) = &self.current else {
            return match mac {
                None => Ok((parsed, Verified::Unsigned)),
                Some(_) => Err(Rejection::Malformed),
            };
        };
        let Some(mac) = mac else {
            // An unsigned value where signatures are required: as good as forged.
            return Err(Rejection::BadSignature);
        };
        if mac.len() != MAC_B64_LEN {
            return Err(Rejection::Malformed);
        }
        let tag = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| Rejection::Malformed)?;
        let payload_len = value.len() - mac.len() - 1;
        let payload = value.get(..payload_len).ok_or(Rejection::Malformed)?;
        let message: [&[u8]; 3] = [self.name.as_bytes(), b"=", payload.as_bytes()];
        if current.mac(&message).verify_slice(&tag).is_ok() {
            return Ok((parsed, Verified::Current));
        }
        if let Some(previous) = &self.previous
            && previous.mac(&message).verify_slice(&tag).is_ok()
        {
            return Ok((parsed, Verified::Previous));
        }
        Err(Rejection::BadSignature)
    }
}

/// A subset name: 1 to 63 ASCII letters, digits, `-` or `_`. Safe in a
/// cookie value, a header value and a metric name, and free of the `.` that
/// separates cookie fields.
pub fn valid_subset_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A decimal of at most `max_digits` digits with no sign and no leading zero.
fn canonical_decimal(text: &str, max_digits: usize) -> Option<u64> {
    if text.is_empty()
        || text.len() > max_digits
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

/// `SameSite` attribute values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// The attributes after `name=value` in `Set-Cookie`, rendered once.
pub fn render_attributes(
    max_age: u64,
    path: &str,
    domain: Option<&str>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
) -> String {
    let mut out = format!("; Max-Age={max_age}; Path={path}");
    if let Some(domain) = domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    if secure {
        out.push_str("; Secure");
    }
    if http_only {
        out.push_str("; HttpOnly");
    }
    if let Some(same_site) = same_site {
        out.push_str("; SameSite=");
        out.push_str(same_site.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn key(bytes: &[u8]) -> Option<SigningKey> {
        SigningKey::new(bytes)
    }

    fn signed() -> CookieCodec {
        CookieCodec::new("canary", key(KEY), None)
    }

    #[test]
    fn a_signed_value_round_trips() {
        let codec = signed();
        let value = codec.encode(1234, "v2", 1_767_225_600);
        assert!(value.starts_with("c1.1234.v2.1767225600."), "{value}");
        assert_eq!(value.len(), "c1.1234.v2.1767225600.".len() + 43);
        let (parsed, verified) = codec.decode(&value).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            parsed,
            CookieValue {
                bucket: 1234,
                subset: "v2",
                issued: 1_767_225_600
            }
        );
        assert_eq!(verified, Verified::Current);
    }

    #[test]
    fn an_unsigned_value_round_trips() {
        let codec = CookieCodec::new("canary", None, None);
        let value = codec.encode(0, "v1", 5);
        assert_eq!(value, "c1.0.v1.5");
        assert_eq!(codec.decode(&value).map(|(_, v)| v), Ok(Verified::Unsigned));
        assert_eq!(
            codec.decode(&format!("{value}.abc")),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn a_changed_field_breaks_the_signature() {
        let codec = signed();
        let value = codec.encode(1234, "v1", 100);
        let forged = value.replacen(".v1.", ".v2.", 1);
        assert_eq!(codec.decode(&forged), Err(Rejection::BadSignature));
        let forged = value.replacen("1234", "9999", 1);
        assert_eq!(codec.decode(&forged), Err(Rejection::BadSignature));
    }

    #[test]
    fn another_key_or_cookie_name_is_refused() {
        let value = CookieCodec::new("canary", key(OTHER), None).encode(1, "v1", 1);
        assert_eq!(signed().decode(&value), Err(Rejection::BadSignature));
        let value = CookieCodec::new("other-name", key(KEY), None).encode(1, "v1", 1);
        assert_eq!(signed().decode(&value), Err(Rejection::BadSignature));
    }

    #[test]
    fn the_previous_key_is_accepted_during_rotation() {
        let old = CookieCodec::new("canary", key(OTHER), None).encode(1, "v1", 1);
        let rotating = CookieCodec::new("canary", key(KEY), key(OTHER));
        assert_eq!(
            rotating.decode(&old).map(|(_, v)| v),
            Ok(Verified::Previous)
        );
        let new = rotating.encode(1, "v1", 1);
        assert_eq!(rotating.decode(&new).map(|(_, v)| v), Ok(Verified::Current));
    }

    #[test]
    fn an_unsigned_value_is_refused_when_signing() {
        assert_eq!(signed().decode("c1.1.v1.1"), Err(Rejection::BadSignature));
    }

    #[test]
    fn malformed_values() {
        let codec = signed();
        let good = codec.encode(12, "v1", 100);
        let mac = good.rsplit('.').next().unwrap_or_default().to_string();
        for bad in [
            String::new(),
            "garbage".into(),
            format!("c2.12.v1.100.{mac}"),
            format!("c1.012.v1.100.{mac}"),
            format!("c1.10000.v1.100.{mac}"),
            format!("c1.-1.v1.100.{mac}"),
            format!("c1.+12.v1.100.{mac}"),
            format!("c1.12.v 1.100.{mac}"),
            format!("c1.12..100.{mac}"),
            format!("c1.12.v1.0100.{mac}"),
            format!("c1.12.v1.100.{mac}="),
            format!("c1.12.v1.100.{mac}.x"),
            format!("\"c1.12.v1.100.{mac}\""),
            format!("c1.12.v1.100.{}", &mac[1..]),
            format!("c1.12.v1.100.{}*", &mac[1..]),
            format!("c1.12.v1.100.{}", "a".repeat(300)),
        ] {
            assert_eq!(codec.decode(&bad), Err(Rejection::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(SigningKey::new(&KEY[..31]).is_none());
        assert!(SigningKey::new(KEY).is_some());
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let text = format!("{:?}", signed());
        assert!(!text.contains("0123456789"), "{text}");
    }

    #[test]
    fn attributes_render_in_order() {
        assert_eq!(
            render_attributes(
                60,
                "/",
                Some("example.com"),
                true,
                true,
                Some(SameSite::Lax)
            ),
            "; Max-Age=60; Path=/; Domain=example.com; Secure; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            render_attributes(1, "/app", None, false, false, None),
            "; Max-Age=1; Path=/app"
        );
    }
}

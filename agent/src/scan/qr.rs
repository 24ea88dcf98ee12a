//! App QR tokens: how a member's phone app identifies the member at a lane.
//!
//! # Format
//!
//! ```text
//! LE1.<member_id>.<issued_at>.<nonce>.<signature>
//! ```
//!
//! - `LE1`: format and version tag.
//! - `member_id`: 1 to 64 characters of `[A-Za-z0-9_-]`.
//! - `issued_at`: Unix time in seconds, decimal, no sign, no leading zeros.
//! - `nonce`: 16 random bytes, base64url without padding (22 characters).
//! - `signature`: Ed25519 signature, by the member's app key, over the ASCII bytes of everything
//!   before the last `.` (`LE1.<member_id>.<issued_at>.<nonce>`), base64url without padding
//!   (86 characters).
//!
//! The app holds the private key; HQ registers the public key and the agent pulls public keys
//! only. Encodings are canonical (no padding, no stray bits, no leading zeros) so one token has
//! exactly one text, and [`AppQr::verify`] uses strict Ed25519 verification, which refuses
//! malleable signatures and weak keys.
//!
//! [`parse`] checks well-formedness only. Before trusting a token a consumer must
//! [`AppQr::verify`] it against the member's key, check [`AppQr::is_fresh`], and refuse a nonce
//! it has seen before (a screenshot replayed). A token is a credential: log at most its member
//! id; `Debug` leaves the signature out.

use std::fmt;
use std::time::Duration;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use loyalty_protocol::app::dot_fields;

/// What every app token starts with.
pub const PREFIX: &str = "LE1.";

/// The longest member id; ids appear in tokens, URLs and log lines.
pub const MEMBER_ID_MAX: usize = 64;
const NONCE_LEN: usize = 16;

/// Why a token or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The detail is fixed text: token content is never echoed, since errors end up in logs.
    #[error("malformed app QR token: {0}")]
    Malformed(&'static str),
    #[error("app QR signature does not verify")]
    Forged,
    #[error("not a usable Ed25519 public key (expected 32 bytes, base64)")]
    BadKey,
}

impl QrError {
    /// A short snake_case word for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            QrError::Malformed(_) => "malformed",
            QrError::Forged => "forged",
            QrError::BadKey => "bad_key",
        }
    }
}

/// A well-formed app token, not yet verified.
#[derive(Clone, PartialEq, Eq)]
pub struct AppQr {
    pub member_id: String,
    pub issued_at: i64,
    pub nonce: [u8; NONCE_LEN],
    signature: Signature,
}

impl fmt::Debug for AppQr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppQr")
            .field("member_id", &self.member_id)
            .field("issued_at", &self.issued_at)
            .field("nonce", &self.nonce_hex())
            .field("signature", &"<redacted>")
            .finish()
    }
}

impl AppQr {
    /// `Err(QrError::Forged)` unless `key` signed exactly this member id, time and nonce.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), QrError> {
        let signed = signed_part(&self.member_id, self.issued_at, &self.nonce);
        key.verify_strict(signed.as_bytes(), &self.signature)
            .map_err(|_| QrError::Forged)
    }

    /// True when `issued_at` is within `allowed_skew` of `now_unix`, either way: phone clocks run
    /// ahead as well as behind.
    pub fn is_fresh(&self, now_unix: i64, allowed_skew: Duration) -> bool {
        now_unix.abs_diff(self.issued_at) <= allowed_skew.as_secs()
    }

    /// The nonce as 32 lowercase hex digits: the replay-store key.
    pub fn nonce_hex(&self) -> String {
        self.nonce.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Checks that `token` is well formed and splits it; does not verify the signature.
pub fn parse(token: &str) -> Result<AppQr, QrError> {
    let rest = token
        .strip_prefix(PREFIX)
        .ok_or(QrError::Malformed("does not start with LE1."))?;
    let Some([member_id, issued_at, nonce, signature]) = dot_fields::<4>(rest) else {
        return Err(QrError::Malformed("expected 5 dot-separated fields"));
    };

    if !is_member_id(member_id) {
        return Err(QrError::Malformed("bad member id"));
    }
    let issued_at = parse_unix_seconds(issued_at).ok_or(QrError::Malformed("bad issue time"))?;
    let nonce: [u8; NONCE_LEN] = decode_fixed(nonce).ok_or(QrError::Malformed("bad nonce"))?;
    let signature: [u8; 64] =
        decode_fixed(signature).ok_or(QrError::Malformed("bad signature encoding"))?;

    Ok(AppQr {
        member_id: member_id.to_owned(),
        issued_at,
        nonce,
        signature: Signature::from_bytes(&signature),
    })
}

/// Makes a token, for the demo, tests and app developers. It does not validate its inputs:
/// a `member_id` outside `[A-Za-z0-9_-]{1,64}` or a negative `issued_at` gives a token that
/// [`parse`] refuses.
pub fn mint(key: &SigningKey, member_id: &str, issued_at: i64, nonce: [u8; NONCE_LEN]) -> String {
    let signed = signed_part(member_id, issued_at, &nonce);
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// Accepts a 32-byte Ed25519 public key in standard or URL-safe base64, padded or not, since
/// keys are pasted in by hand as often as they arrive from HQ.
pub fn parse_public_key(base64_std_or_url: &str) -> Result<VerifyingKey, QrError> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);

    let text = base64_std_or_url.trim();
    let engine = if text.contains(['-', '_']) {
        &URL
    } else {
        &STD
    };
    let bytes: [u8; 32] = engine
        .decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(QrError::BadKey)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| QrError::BadKey)?;
    // A small-order key verifies forged signatures; strict verification would refuse every
    // token anyway, so say so when the key is loaded.
    if key.is_weak() {
        return Err(QrError::BadKey);
    }
    Ok(key)
}

fn signed_part(member_id: &str, issued_at: i64, nonce: &[u8; NONCE_LEN]) -> String {
    format!(
        "{PREFIX}{member_id}.{issued_at}.{}",
        URL_SAFE_NO_PAD.encode(nonce)
    )
}

/// The member-id rule shared by tokens, member files and the ledger: 1 to [`MEMBER_ID_MAX`]
/// letters, digits, `-` or `_`.
pub fn is_member_id(id: &str) -> bool {
    (1..=MEMBER_ID_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Canonical decimal only, so the text [`AppQr::verify`] rebuilds is the text that was signed.
fn parse_unix_seconds(text: &str) -> Option<i64> {
    let canonical = !text.is_empty()
        && text.len() <= 19
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// Strict base64url without padding; `URL_SAFE_NO_PAD` also refuses non-zero trailing bits, so
/// the encoding is canonical.
fn decode_fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Checked before decoding so a huge field costs nothing.
    if text.len() > (N * 4).div_ceil(3) {
        return None;
    }
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_700_000_000;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn token() -> String {
        mint(&key(), "member_42-x", T0, [0xab; 16])
    }

    #[test]
    fn mint_parse_verify_round_trip() {
        let text = token();
        assert!(text.starts_with("LE1.member_42-x.1700000000."));
        let qr = parse(&text).unwrap();
        assert_eq!(qr.member_id, "member_42-x");
        assert_eq!(qr.issued_at, T0);
        assert_eq!(qr.nonce, [0xab; 16]);
        assert_eq!(qr.nonce_hex(), "ab".repeat(16));
        qr.verify(&key().verifying_key()).unwrap();
        // Field lengths as documented.
        let fields: Vec<&str> = text.split('.').collect();
        assert_eq!(fields[3].len(), 22);
        assert_eq!(fields[4].len(), 86);
    }

    #[test]
    fn tampering_is_forged() {
        let text = token();
        let vk = key().verifying_key();
        let member = text.replacen("member_42-x", "member_43-x", 1);
        assert_eq!(parse(&member).unwrap().verify(&vk), Err(QrError::Forged));
        let time = text.replacen("1700000000", "1700000999", 1);
        assert_eq!(parse(&time).unwrap().verify(&vk), Err(QrError::Forged));
        let mut qr = parse(&text).unwrap();
        qr.nonce[0] ^= 1;
        assert_eq!(qr.verify(&vk), Err(QrError::Forged));
    }

    #[test]
    fn wrong_key_is_forged() {
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        let err = parse(&token()).unwrap().verify(&other).unwrap_err();
        assert_eq!(err, QrError::Forged);
        assert_eq!(err.reason(), "forged");
    }

    #[test]
    fn garbage_is_malformed() {
        let good = token();
        let sig = good.rsplit('.').next().unwrap().to_owned();
        let nonce = URL_SAFE_NO_PAD.encode([0xab; 16]);
        let cases = [
            String::new(),
            "LE1".into(),
            "LE1.".into(),
            "LE2.m.1.n.s".into(),
            "le1.member.1700000000.x.y".into(),
            format!("{good}.extra"),
            good.replacen("member_42-x", "", 1),
            good.replacen("member_42-x", "bad id", 1),
            good.replacen("member_42-x", "bad.id", 1),
            good.replacen("member_42-x", &"m".repeat(65), 1),
            good.replacen("member_42-x", "mémbre", 1),
            good.replacen("1700000000", "", 1),
            good.replacen("1700000000", "01700000000", 1),
            good.replacen("1700000000", "-1", 1),
            good.replacen("1700000000", "+1700000000", 1),
            good.replacen("1700000000", "99999999999999999999", 1),
            good.replacen("1700000000", "9223372036854775808", 1),
            format!("LE1.m.{T0}.{}.{sig}", URL_SAFE_NO_PAD.encode([1u8; 15])),
            format!("LE1.m.{T0}.{nonce}=.{sig}"),
            format!("LE1.m.{T0}.{}.{sig}", "q".repeat(22)),
            format!("LE1.m.{T0}.{nonce}.{}", &sig[1..]),
            format!("LE1.m.{T0}.{nonce}.{sig}A"),
            format!("LE1.m.{T0}.{nonce}.{}", "+".repeat(86)),
        ];
        for case in &cases {
            let err = parse(case).unwrap_err();
            assert_eq!(err.reason(), "malformed", "{case:?}");
        }
        // 22 characters of 'q' carry non-zero trailing bits: non-canonical.
        assert!(decode_fixed::<16>(&"q".repeat(22)).is_none());
    }

    #[test]
    fn members_ids_at_the_limits() {
        let id = "A".repeat(64);
        let qr = parse(&mint(&key(), &id, 0, [0; 16])).unwrap();
        assert_eq!(qr.member_id, id);
        assert_eq!(qr.issued_at, 0);
        qr.verify(&key().verifying_key()).unwrap();
    }

    #[test]
    fn freshness() {
        let qr = parse(&token()).unwrap();
        let skew = Duration::from_secs(300);
        assert!(qr.is_fresh(T0, skew));
        assert!(qr.is_fresh(T0 + 300, skew));
        assert!(qr.is_fresh(T0 - 300, skew));
        assert!(!qr.is_fresh(T0 + 301, skew));
        assert!(!qr.is_fresh(T0 - 301, skew));
        assert!(!qr.is_fresh(i64::MIN, skew));
        assert!(qr.is_fresh(i64::MAX, Duration::MAX));
    }

    #[test]
    fn debug_hides_signature() {
        let text = token();
        let debug = format!("{:?}", parse(&text).unwrap());
        let sig = text.rsplit('.').next().unwrap();
        assert!(!debug.contains(sig));
        assert!(debug.contains("member_42-x"));
    }

    #[test]
    fn public_key_in_any_base64() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        // Find a key whose encodings differ between the alphabets, to exercise both.
        let vk = (0u8..=255)
            .map(|i| SigningKey::from_bytes(&[i; 32]).verifying_key())
            .find(|k| {
                let s = STANDARD.encode(k.as_bytes());
                s.contains('+') || s.contains('/')
            })
            .unwrap();
        let bytes = vk.as_bytes();
        for text in [
            STANDARD.encode(bytes),
            STANDARD.encode(bytes).trim_end_matches('=').to_owned(),
            URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            format!("  {}\n", STANDARD.encode(bytes)),
        ] {
            assert_eq!(parse_public_key(&text).unwrap(), vk, "{text}");
        }
    }

    #[test]
    fn bad_public_keys() {
        use base64::engine::general_purpose::STANDARD;
        let identity = {
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        };
        for text in [
            String::new(),
            "not base64!".into(),
            STANDARD.encode([1u8; 31]),
            STANDARD.encode([1u8; 33]),
            // The identity point has small order.
            STANDARD.encode(identity),
        ] {
            assert_eq!(parse_public_key(&text), Err(QrError::BadKey), "{text}");
        }
        assert_eq!(QrError::BadKey.reason(), "bad_key");
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text);
            let _ = parse(&format!("LE1.{text}"));
            let _ = parse_public_key(&text);
        }

        #[test]
        fn structured_garbage_never_panics(
            member in "[A-Za-z0-9_.-]{0,70}",
            time in "[0-9+-]{0,21}",
            nonce in "[A-Za-z0-9_=+/-]{0,30}",
            sig in "[A-Za-z0-9_=+/-]{0,90}",
        ) {
            let _ = parse(&format!("LE1.{member}.{time}.{nonce}.{sig}"));
        }

    }

    proptest! {
        // Signing is slow in debug builds; a few dozen cases cover the encodings.
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn round_trip(member in "[A-Za-z0-9_-]{1,64}", t in 0i64..=i64::MAX, nonce in any::<[u8; 16]>()) {
            let qr = parse(&mint(&key(), &member, t, nonce)).unwrap();
            prop_assert_eq!(&qr.member_id, &member);
            prop_assert_eq!(qr.issued_at, t);
            prop_assert_eq!(qr.nonce, nonce);
            prop_assert!(qr.verify(&key().verifying_key()).is_ok());
        }
    }
}

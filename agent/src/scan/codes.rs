//! What a scanned text is: a loyalty card number or an app QR token.
//!
//! Rules, by AIM symbology (see [`classify`]):
//!
//! | symbology | accepted |
//! | --- | --- |
//! | any, text starting `LE1.` | app QR token ([`super::qr::parse`]) |
//! | `]E0` | EAN-13, or UPC-A as 12 digits (stored as 13 with a leading 0); check digit verified |
//! | `]E4` | EAN-8; check digit verified |
//! | `]C0`..`]C4` | Code 128 card text: 4..=32 of `[A-Za-z0-9-]`, uppercased; 8, 12 or 13 digits are read as EAN-8, UPC-A, EAN-13 (check digit verified), as HQ reads the same number typed in, so one card is one key everywhere |
//! | none | 13 digits: EAN-13, 12: UPC-A, 8: EAN-8 (check digit verified); otherwise the Code 128 rule |
//! | anything else | refused (`unsupported_symbology`) |

use super::aim::AimId;
use super::qr::{self, QrError};
use super::{CardNumber, ScannedCode};

/// Why a scanned text is not a card number or app token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    #[error("{kind} check digit does not match")]
    BadCheckDigit { kind: &'static str },
    /// The detail is fixed text: scanned text is never echoed into errors, which end up in logs.
    #[error("not a card number: {0}")]
    Malformed(&'static str),
    #[error("symbology {0} is not used for loyalty cards")]
    UnsupportedSymbology(AimId),
    #[error(transparent)]
    Qr(#[from] QrError),
    #[error("an app QR token is not a card number")]
    NotACard,
}

impl CodeError {
    /// A short snake_case word for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CodeError::BadCheckDigit { .. } => "bad_check_digit",
            CodeError::Malformed(_) => "malformed",
            CodeError::UnsupportedSymbology(_) => "unsupported_symbology",
            CodeError::Qr(e) => e.reason(),
            CodeError::NotACard => "not_a_card",
        }
    }
}

/// Decides what `text` (AIM identifier already split off) is.
pub fn classify(symbology: Option<AimId>, text: &str) -> Result<ScannedCode, CodeError> {
    if text.starts_with(qr::PREFIX) {
        return Ok(ScannedCode::AppQr(qr::parse(text)?));
    }
    let card = match symbology {
        None => match digit_count(text) {
            Some(13) => ean(text, "EAN-13")?,
            Some(12) => upc_a(text)?,
            Some(8) => ean(text, "EAN-8")?,
            _ => code128(text)?,
        },
        Some(id) => match (id.code, id.modifier) {
            ('E', '0') => match digit_count(text) {
                Some(13) => ean(text, "EAN-13")?,
                Some(12) => upc_a(text)?,
                _ => return Err(CodeError::Malformed("EAN-13 needs 13 digits")),
            },
            ('E', '4') => match digit_count(text) {
                Some(8) => ean(text, "EAN-8")?,
                _ => return Err(CodeError::Malformed("EAN-8 needs 8 digits")),
            },
            // HQ and the member import know only the text: `loyalty_protocol::canonical_card`
            // is the one reading of it, whatever symbology carried it.
            ('C', '0'..='4') => CardNumber::new_unchecked(loyalty_protocol::canonical_card(text)?),
            ('Q', _) => return Err(CodeError::Malformed("QR code is not an app token")),
            _ => return Err(CodeError::UnsupportedSymbology(id)),
        },
    };
    Ok(ScannedCode::Card(card))
}

pub use loyalty_protocol::card::ean_check_digit_ok;
use loyalty_protocol::card::{self, digit_count, CardError};

impl From<CardError> for CodeError {
    fn from(e: CardError) -> Self {
        match e {
            CardError::BadCheckDigit { kind } => CodeError::BadCheckDigit { kind },
            CardError::Malformed(why) => CodeError::Malformed(why),
            // CardError is non-exhaustive: a new refusal is still a refusal.
            _ => CodeError::Malformed("not a card number"),
        }
    }
}

// The card rules themselves live in `loyalty_protocol::card`, shared with HQ's admin API and
// the member import, so one card is one key everywhere.
fn ean(digits: &str, kind: &'static str) -> Result<CardNumber, CodeError> {
    Ok(CardNumber::new_unchecked(card::ean(digits, kind)?))
}

fn upc_a(digits: &str) -> Result<CardNumber, CodeError> {
    Ok(CardNumber::new_unchecked(card::upc_a(digits)?))
}

fn code128(text: &str) -> Result<CardNumber, CodeError> {
    Ok(CardNumber::new_unchecked(card::code128(text)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn aim(s: &str) -> Option<AimId> {
        super::super::aim::split_aim(s).0
    }

    fn card(symbology: Option<AimId>, text: &str) -> String {
        match classify(symbology, text) {
            Ok(ScannedCode::Card(c)) => c.as_str().to_owned(),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn reason(symbology: Option<AimId>, text: &str) -> &'static str {
        match classify(symbology, text) {
            Err(e) => e.reason(),
            Ok(code) => panic!("{text:?} accepted as {code:?}"),
        }
    }

    #[test]
    fn real_check_digits() {
        for good in [
            "4006381333931",
            "5901234123457",
            "036000291452",
            "96385074",
            "00012345600012",
        ] {
            assert!(ean_check_digit_ok(good), "{good}");
        }
        for bad in [
            "4006381333932",
            "5901234123450",
            "036000291453",
            "96385075",
            "",
            "1",
            "400638133393",
            "40063813339310",
            "400638133393X",
            "400638133393١",
            "123456789",
        ] {
            assert!(!ean_check_digit_ok(bad), "{bad}");
        }
    }

    #[test]
    fn classify_without_aim() {
        assert_eq!(card(None, "4006381333931"), "4006381333931");
        assert_eq!(card(None, "036000291452"), "0036000291452");
        assert_eq!(card(None, "96385074"), "96385074");
        assert_eq!(card(None, "abc-0042"), "ABC-0042");
        // Digit-only text of another length is a Code 128 style number.
        assert_eq!(card(None, "1234567890"), "1234567890");
        assert_eq!(reason(None, "4006381333932"), "bad_check_digit");
        assert_eq!(reason(None, "036000291453"), "bad_check_digit");
        assert_eq!(reason(None, "96385075"), "bad_check_digit");
        assert_eq!(reason(None, "abc"), "malformed");
        assert_eq!(reason(None, ""), "malformed");
        assert_eq!(reason(None, "ABC 123"), "malformed");
        assert_eq!(reason(None, "ABC_123"), "malformed");
        assert_eq!(reason(None, &"A".repeat(33)), "malformed");
        assert_eq!(card(None, &"a".repeat(32)), "A".repeat(32));
    }

    #[test]
    fn classify_with_aim() {
        assert_eq!(card(aim("]E0"), "4006381333931"), "4006381333931");
        assert_eq!(card(aim("]E0"), "036000291452"), "0036000291452");
        assert_eq!(reason(aim("]E0"), "4006381333932"), "bad_check_digit");
        assert_eq!(reason(aim("]E0"), "96385074"), "malformed");
        assert_eq!(reason(aim("]E0"), "ABC-1234"), "malformed");
        assert_eq!(card(aim("]E4"), "96385074"), "96385074");
        assert_eq!(reason(aim("]E4"), "96385075"), "bad_check_digit");
        assert_eq!(reason(aim("]E4"), "4006381333931"), "malformed");
        // Digits in Code 128 are the GS1 number HQ would read from the same text: one key.
        assert_eq!(reason(aim("]C0"), "4006381333932"), "bad_check_digit");
        assert_eq!(card(aim("]C0"), "036000291452"), "0036000291452");
        assert_eq!(card(aim("]C0"), "4006381333931"), "4006381333931");
        assert_eq!(card(aim("]C4"), "ab-1"), "AB-1");
        assert_eq!(reason(aim("]C0"), "ab"), "malformed");
        assert_eq!(reason(aim("]C5"), "ABCD"), "unsupported_symbology");
        assert_eq!(reason(aim("]A0"), "ABCD"), "unsupported_symbology");
        assert_eq!(
            reason(aim("]E3"), "400638133393112"),
            "unsupported_symbology"
        );
        assert_eq!(reason(aim("]Q1"), "https://example.com"), "malformed");
    }

    #[test]
    fn app_qr_under_any_symbology() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let token = qr::mint(&key, "m-1", 1_700_000_000, [9; 16]);
        for symbology in [None, aim("]Q1"), aim("]C0"), aim("]E0")] {
            match classify(symbology, &token) {
                Ok(ScannedCode::AppQr(q)) => assert_eq!(q.member_id, "m-1"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(reason(aim("]Q1"), "LE1.m-1.x"), "malformed");
    }

    proptest! {
        #[test]
        fn classify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), aim_sel in 0usize..6) {
            let text = String::from_utf8_lossy(&bytes);
            let symbology = [None, aim("]E0"), aim("]E4"), aim("]C0"), aim("]Q1"), aim("]d2")][aim_sel];
            let _ = classify(symbology, &text);
            let mut with_prefix = String::from("LE1.");
            with_prefix.push_str(&text);
            let _ = classify(symbology, &with_prefix);
        }

        #[test]
        fn digits_accepted_iff_check_digit(digits in "[0-9]{8}|[0-9]{12,13}") {
            let accepted = classify(None, &digits).is_ok();
            prop_assert_eq!(accepted, ean_check_digit_ok(&digits));
        }
    }
}

//! The one canonical text of a printed loyalty card number.
//!
//! The scanner, the agent's member import and HQ's admin API all go through [`canonical_card`],
//! so a card typed at HQ as `ab-12` or `036000291452` is the same key as the one a lane scans
//! (`AB-12`, `0036000291452`) and its points reach the member.
//!
//! | text | canonical |
//! | --- | --- |
//! | 13 digits | EAN-13, check digit verified |
//! | 12 digits | UPC-A, check digit verified, stored as EAN-13 with a leading 0 |
//! | 8 digits | EAN-8, check digit verified |
//! | otherwise | Code 128 card text: 4..=32 of `[A-Za-z0-9-]`, uppercased |

/// Why a text is not a card number. The detail is fixed text: card numbers are never echoed
/// into errors, which end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    #[error("{kind} check digit does not match")]
    BadCheckDigit { kind: &'static str },
    #[error("not a card number: {0}")]
    Malformed(&'static str),
}

const CODE128_LEN: std::ops::RangeInclusive<usize> = 4..=32;

/// The canonical form of a card number typed by a person or sent by a POS or an admin
/// (surrounding whitespace ignored).
pub fn canonical_card(text: &str) -> Result<String, CardError> {
    let text = text.trim();
    match digit_count(text) {
        Some(13) => ean(text, "EAN-13"),
        Some(12) => upc_a(text),
        Some(8) => ean(text, "EAN-8"),
        _ => code128(text),
    }
}

/// EAN-13 or EAN-8 digits, check digit verified.
pub fn ean(digits: &str, kind: &'static str) -> Result<String, CardError> {
    if ean_check_digit_ok(digits) {
        Ok(digits.to_owned())
    } else {
        Err(CardError::BadCheckDigit { kind })
    }
}

/// UPC-A is EAN-13 with a leading 0; storing the 13-digit form makes one card one key whichever
/// way the scanner is set to send it.
pub fn upc_a(digits: &str) -> Result<String, CardError> {
    if ean_check_digit_ok(digits) {
        Ok(format!("0{digits}"))
    } else {
        Err(CardError::BadCheckDigit { kind: "UPC-A" })
    }
}

/// Code 128 card text (the symbol has its own checksum, the text none).
pub fn code128(text: &str) -> Result<String, CardError> {
    if !CODE128_LEN.contains(&text.len()) {
        return Err(CardError::Malformed("card text needs 4 to 32 characters"));
    }
    if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(CardError::Malformed(
            "card text allows only letters, digits and '-'",
        ));
    }
    Ok(text.to_ascii_uppercase())
}

/// True when `digits` is 8, 12, 13 or 14 ASCII digits whose last is the GS1 check digit of the
/// others (EAN-8, UPC-A, EAN-13, GTIN-14 share the algorithm).
pub fn ean_check_digit_ok(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    if !matches!(bytes.len(), 8 | 12 | 13 | 14) || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let Some((check, body)) = bytes.split_last() else {
        return false;
    };
    // Weights run 3, 1, 3, ... from the digit next to the check digit, whatever the length.
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(check - b'0')
}

/// The number of characters when `text` is all ASCII digits.
pub fn digit_count(text: &str) -> Option<usize> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_hq_and_the_scanner_once_disagreed_on_are_one_key() {
        assert_eq!(canonical_card("ab-12").as_deref(), Ok("AB-12"));
        assert_eq!(canonical_card(" AB-12 ").as_deref(), Ok("AB-12"));
        assert_eq!(
            canonical_card("036000291452").as_deref(),
            Ok("0036000291452")
        );
        assert_eq!(
            canonical_card("0036000291452").as_deref(),
            Ok("0036000291452")
        );
        assert_eq!(canonical_card("96385074").as_deref(), Ok("96385074"));
    }

    #[test]
    fn bad_check_digits_and_shapes_are_refused() {
        assert_eq!(
            canonical_card("4006381333932"),
            Err(CardError::BadCheckDigit { kind: "EAN-13" })
        );
        assert_eq!(
            canonical_card("036000291453"),
            Err(CardError::BadCheckDigit { kind: "UPC-A" })
        );
        assert!(matches!(canonical_card("ab"), Err(CardError::Malformed(_))));
        assert!(matches!(
            canonical_card("AB 12"),
            Err(CardError::Malformed(_))
        ));
    }
}

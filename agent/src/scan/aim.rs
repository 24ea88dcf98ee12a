//! AIM symbology identifiers (ISO/IEC 15424): `]` + code character + modifier, sent by the
//! scanner before the data when enabled, e.g. `]E0` (EAN-13/UPC-A), `]C0` (Code 128), `]Q1` (QR).
//! Knowing the symbology lets [`classify`](super::codes::classify) apply the right rule instead of
//! guessing from the length of the text.

use std::fmt;

/// An AIM symbology identifier: `]E0` is `AimId { code: 'E', modifier: '0' }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AimId {
    pub code: char,
    pub modifier: char,
}

impl fmt::Display for AimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "]{}{}", self.code, self.modifier)
    }
}

/// Splits a leading AIM identifier off `text`. Text without one comes back whole with `None`,
/// so scanners with AIM output off still work.
pub fn split_aim(text: &str) -> (Option<AimId>, &str) {
    match text.as_bytes() {
        // Code characters are letters (lowercase ones exist, e.g. `]e0` for GS1 DataBar) and
        // modifiers are digits or letters.
        [b']', code, modifier, ..]
            if code.is_ascii_alphabetic() && modifier.is_ascii_alphanumeric() =>
        {
            let id = AimId {
                code: char::from(*code),
                modifier: char::from(*modifier),
            };
            // The first three bytes are ASCII, so index 3 is a char boundary.
            (Some(id), text.get(3..).unwrap_or(""))
        }
        _ => (None, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_common_identifiers() {
        let (id, rest) = split_aim("]E04006381333931");
        assert_eq!(
            id,
            Some(AimId {
                code: 'E',
                modifier: '0'
            })
        );
        assert_eq!(rest, "4006381333931");

        let (id, rest) = split_aim("]C0ABC-123");
        assert_eq!(id.map(|i| i.to_string()).as_deref(), Some("]C0"));
        assert_eq!(rest, "ABC-123");

        let (id, rest) = split_aim("]Q1LE1.m.1.n.s");
        assert_eq!(
            id,
            Some(AimId {
                code: 'Q',
                modifier: '1'
            })
        );
        assert_eq!(rest, "LE1.m.1.n.s");

        let (id, rest) = split_aim("]e0");
        assert_eq!(
            id,
            Some(AimId {
                code: 'e',
                modifier: '0'
            })
        );
        assert_eq!(rest, "");
    }

    #[test]
    fn leaves_text_without_identifier_alone() {
        for text in [
            "",
            "]",
            "]E",
            "4006381333931",
            "]0E123",
            "]E-123",
            " ]E0123",
            "]É0",
            "]Eé",
        ] {
            assert_eq!(split_aim(text), (None, text), "{text:?}");
        }
    }

    #[test]
    fn display() {
        assert_eq!(
            AimId {
                code: 'd',
                modifier: '2'
            }
            .to_string(),
            "]d2"
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_rejoins(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = String::from_utf8_lossy(&bytes);
            let (id, rest) = split_aim(&text);
            let rejoined = match id {
                Some(id) => format!("{id}{rest}"),
                None => rest.to_owned(),
            };
            prop_assert_eq!(rejoined, text.into_owned());
        }
    }
}

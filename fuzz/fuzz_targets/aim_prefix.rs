//! AIM symbology identifiers: `scan::split_aim` on any text, then `scan::classify` on what it
//! split, as the lane reader does.
//!
//! Invariants: an identifier is `]`, a letter and a letter or digit, and identifier plus rest
//! give back the text exactly; text without one comes back whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loyalty_agent::scan::{classify, split_aim};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (id, rest) = split_aim(text);
    match id {
        Some(id) => {
            assert!(id.code.is_ascii_alphabetic(), "{id:?}");
            assert!(id.modifier.is_ascii_alphanumeric(), "{id:?}");
            assert_eq!(format!("{id}{rest}"), text);
        }
        None => assert_eq!(rest, text),
    }
    let _ = classify(id, rest);
});

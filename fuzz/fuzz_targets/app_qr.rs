//! App QR tokens: `scan::qr::parse` on any text, verified against a fixed key (the tests' key,
//! `[3; 32]`, whose tokens seed the corpus), and `scan::qr::parse_public_key`.
//!
//! Invariants:
//! - a parsed token has a valid member id and a non-negative issue time, and `classify` reads
//!   the same token;
//! - one token has one text: a token that verifies is exactly what `mint` makes of its member
//!   id, time and nonce (no second encoding, no malleable signature);
//! - re-minting the parsed fields with the key gives a token that parses back to them and
//!   verifies, and fails against another key.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use loyalty_agent::scan::qr::{self, is_member_id, QrError};
use loyalty_agent::scan::{classify, ScannedCode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = SigningKey::from_bytes(&[3; 32]);
    let other = SigningKey::from_bytes(&[4; 32]);
    let _ = qr::parse_public_key(text);

    let Ok(token) = qr::parse(text) else {
        return;
    };
    assert!(is_member_id(&token.member_id), "{token:?}");
    assert!(token.issued_at >= 0, "{token:?}");
    match classify(None, text) {
        Ok(ScannedCode::AppQr(q)) => assert_eq!(q, token),
        other => panic!("classify: {other:?}"),
    }

    let minted = qr::mint(&key, &token.member_id, token.issued_at, token.nonce);
    match token.verify(&key.verifying_key()) {
        Ok(()) => assert_eq!(minted, text, "a second text of a valid token"),
        Err(e) => assert_eq!(e, QrError::Forged),
    }
    let again = qr::parse(&minted).expect("a minted token parses");
    assert_eq!(
        (&again.member_id, again.issued_at, again.nonce),
        (&token.member_id, token.issued_at, token.nonce)
    );
    assert_eq!(again.verify(&key.verifying_key()), Ok(()));
    assert_eq!(again.verify(&other.verifying_key()), Err(QrError::Forged));
});

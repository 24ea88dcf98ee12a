//! Bearer tokens at rest: HQ keeps a store token's SHA-256, never the token, so a copy of the
//! database (a backup, a support dump) lets nobody push as a store; and every comparison of a
//! presented token is of hashes, in constant time, so timing tells nothing of a prefix. The
//! admin token is compared the same way, hashed when HQ starts.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// Constant time: hashing first makes even the tokens' lengths irrelevant.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Lowercase hex, as the database holds it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// `None` for text that is not 64 hex digits.
    pub fn from_hex(text: &str) -> Option<TokenHash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(TokenHash(bytes))
    }
}

/// Never the hash itself in a log line or a panic message.
impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_compare_by_token_and_round_trip_through_hex() {
        let a = TokenHash::of("store-1-secret");
        assert!(a.matches(&TokenHash::of("store-1-secret")));
        assert!(!a.matches(&TokenHash::of("store-1-secreT")));
        assert!(!a.matches(&TokenHash::of("store-1-secret ")));
        assert_eq!(
            TokenHash::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(TokenHash::from_hex(&a.to_hex()), Some(a));
        assert_eq!(TokenHash::from_hex("not hex"), None);
        assert_eq!(format!("{:?}", TokenHash::of("x")), "TokenHash(..)");
    }
}

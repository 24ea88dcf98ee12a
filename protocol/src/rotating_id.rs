//! Rotating phone ids: what a member's app advertises, and what the agent precomputes.
//!
//! # For app developers
//! HQ (or the store import) gives each member a **proximity key**: 16 random bytes, written as
//! 32 hex digits (either case on input, lowercase on output), e.g.
//! `000102030405060708090a0b0c0d0e0f`. Keep it like a password: whoever holds it can follow the
//! member's phone.
//!
//! Time is cut into **intervals** of 600 s (10 minutes) since the Unix epoch:
//! `interval = floor(unix_seconds / 600)` ([`interval_number`]).
//!
//! For each interval the app computes its **rotating id** ([`rotating_id`]), as
//! exposure-notification rolling proximity identifiers are computed:
//! 1. build the 16-byte block `"LE-RPI"` (ASCII `4C 45 2D 52 50 49`), two zero bytes, then the
//!    interval number as a big-endian `u64`;
//! 2. encrypt that one block with AES-128 (ECB, no padding: it is exactly one block) under the
//!    proximity key;
//! 3. the id is the first 8 bytes of the ciphertext, read as a big-endian `u64`.
//!
//! The app advertises the id in the phone-token manufacturer data (`loyalty_firmware::token` in the firmware crate:
//! `FF FF 4C 45 01`, the 8 id bytes in the order AES produced them, tx power at 1 m) and switches
//! to the next id at each interval boundary. It should change its BLE address at the same time
//! (the OS usually does so on its own), so that the address never links two ids.
//!
//! With `openssl`, for key `k` (hex) and interval `n`:
//! `printf 'LE-RPI\0\0' > b; printf '%016x' n | xxd -r -p >> b;
//! openssl enc -aes-128-ecb -nopad -K k -in b | head -c 8 | xxd -p`.
//!
//! # Agent side
//! The agent accepts ids of the intervals before, at and after the current one (clock skew of
//! phones, and advertisements straddling a boundary), and nothing older: a replayed id is dead
//! after at most two intervals (the agent's `proximity::resolver`).

use std::fmt;
use std::str::FromStr;

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
// Encryption only: the agent and the app never decrypt, and `aes::Aes128` would also expand the
// decryption keys (a third of a rebuild's time) and carry them around.
use aes::Aes128Enc;

/// The default interval length, seconds (10 minutes).
pub const DEFAULT_INTERVAL_SECS: u64 = 600;
/// The domain-separation prefix of every block.
pub const BLOCK_PREFIX: &[u8; 6] = b"LE-RPI";

/// A member's 16-byte proximity key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProximityKey(pub [u8; 16]);

impl fmt::Debug for ProximityKey {
    // A key can follow a member: never print it in logs by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProximityKey(..)")
    }
}

impl ProximityKey {
    /// The 32 lowercase hex digits of the key (for export to the member's app).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Why text is not a proximity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyParseError {
    /// Not 32 characters.
    #[error("a proximity key is 32 hex digits, got {0} characters")]
    Length(usize),
    /// A character that is not a hex digit.
    #[error("character {position} of the proximity key (`{found}`) is not a hex digit")]
    NotHex {
        /// 0-based position.
        position: usize,
        /// The offending character.
        found: char,
    },
}

impl FromStr for ProximityKey {
    type Err = KeyParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let count = text.chars().count();
        if count != 32 {
            return Err(KeyParseError::Length(count));
        }
        let mut key = [0u8; 16];
        for (position, found) in text.chars().enumerate() {
            let digit = found
                .to_digit(16)
                .ok_or(KeyParseError::NotHex { position, found })? as u8;
            // 32 chars, so position / 2 < 16.
            key[position / 2] |= if position % 2 == 0 { digit << 4 } else { digit };
        }
        Ok(Self(key))
    }
}

/// The interval number of a Unix time: `unix_secs / interval_secs` (an interval of 0 s is
/// taken as 1 s rather than dividing by zero; configuration refuses it anyway).
pub fn interval_number(unix_secs: u64, interval_secs: u64) -> u64 {
    unix_secs / interval_secs.max(1)
}

/// The 16-byte plaintext block for an interval: `"LE-RPI" 00 00 || interval (u64 BE)`.
pub fn block(interval: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(BLOCK_PREFIX);
    b[8..].copy_from_slice(&interval.to_be_bytes());
    b
}

/// The rotating id of `key` in `interval`.
pub fn rotating_id(key: &ProximityKey, interval: u64) -> u64 {
    IdGenerator::new(key).id(interval)
}

/// A key schedule expanded once, for computing several ids of one member (the resolver's
/// rebuild computes three per member).
#[derive(Clone)]
pub struct IdGenerator {
    cipher: Aes128Enc,
}

impl fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdGenerator(..)")
    }
}

impl IdGenerator {
    /// Expands the key schedule.
    pub fn new(key: &ProximityKey) -> Self {
        Self {
            cipher: Aes128Enc::new(GenericArray::from_slice(&key.0)),
        }
    }

    /// The id for one interval.
    pub fn id(&self, interval: u64) -> u64 {
        let mut b = GenericArray::from(block(interval));
        self.cipher.encrypt_block(&mut b);
        truncate(&b)
    }

    /// The ids of `first`, `first + 1` and `first + 2` in one call: AES-NI pipelines
    /// independent blocks, so three at once cost little more than one.
    pub fn three(&self, first: u64) -> [u64; 3] {
        let mut blocks = [
            GenericArray::from(block(first)),
            GenericArray::from(block(first.wrapping_add(1))),
            GenericArray::from(block(first.wrapping_add(2))),
        ];
        self.cipher.encrypt_blocks(&mut blocks);
        [
            truncate(&blocks[0]),
            truncate(&blocks[1]),
            truncate(&blocks[2]),
        ]
    }
}

fn truncate(b: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&b[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hex: &str) -> ProximityKey {
        hex.parse().expect("test key")
    }

    #[test]
    fn aes_is_fips_197() {
        // FIPS-197 appendix C.1: the cipher under the id derivation is plain AES-128.
        let k = Aes128Enc::new(GenericArray::from_slice(
            &key("000102030405060708090a0b0c0d0e0f").0,
        ));
        let mut b = GenericArray::from([
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        k.encrypt_block(&mut b);
        assert_eq!(hex::encode(b), "69c4e0d86a7b0430d8cdb78070b4c55a");
    }

    #[test]
    fn block_layout() {
        assert_eq!(
            block(0x0102_0304_0506_0708),
            [b'L', b'E', b'-', b'R', b'P', b'I', 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn id_is_first_8_bytes_of_aes_of_block() {
        let k = key("2b7e151628aed2a6abf7158809cf4f3c");
        let cipher = Aes128Enc::new(GenericArray::from_slice(&k.0));
        for n in [0u64, 1, 2_900_000, u64::MAX] {
            let mut b = GenericArray::from(block(n));
            cipher.encrypt_block(&mut b);
            let expected = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
            assert_eq!(rotating_id(&k, n), expected);
        }
    }

    #[test]
    fn pinned_vectors_for_app_developers() {
        // Computed with `openssl enc -aes-128-ecb -nopad` as the module docs show: an app that
        // reproduces these derives ids as the agent does. A change here breaks every phone.
        let k = key("000102030405060708090a0b0c0d0e0f");
        assert_eq!(rotating_id(&k, 0), 0x4612_ab36_2ffd_58a5);
        assert_eq!(rotating_id(&k, 2_900_000), 0xad78_5563_496c_0b7e);
        let k = key("2B7E151628AED2A6ABF7158809CF4F3C");
        assert_eq!(
            rotating_id(&k, interval_number(1_740_000_000, 600)),
            0xe36a_05cf_f238_47bf
        );
    }

    #[test]
    fn three_matches_one_by_one_and_ids_rotate() {
        let g = IdGenerator::new(&key("ffeeddccbbaa99887766554433221100"));
        let n = 2_900_000;
        assert_eq!(g.three(n), [g.id(n), g.id(n + 1), g.id(n + 2)]);
        let ids = g.three(n);
        assert!(ids[0] != ids[1] && ids[1] != ids[2]);
        // Another key gives other ids for the same interval.
        let other = IdGenerator::new(&key("ffeeddccbbaa99887766554433221101"));
        assert_ne!(other.id(n), g.id(n));
    }

    #[test]
    fn intervals() {
        assert_eq!(interval_number(0, 600), 0);
        assert_eq!(interval_number(599, 600), 0);
        assert_eq!(interval_number(600, 600), 1);
        assert_eq!(interval_number(1_740_000_000, 600), 2_900_000);
        assert_eq!(interval_number(5, 0), 5);
    }

    #[test]
    fn key_text_form() {
        let k = key("000102030405060708090A0B0C0D0E0F");
        assert_eq!(k.to_hex(), "000102030405060708090a0b0c0d0e0f");
        assert_eq!(k.to_hex().parse::<ProximityKey>(), Ok(k));
        assert_eq!(format!("{k:?}"), "ProximityKey(..)");
        assert_eq!("abc".parse::<ProximityKey>(), Err(KeyParseError::Length(3)));
        assert_eq!(
            "000102030405060708090a0b0c0d0e0z".parse::<ProximityKey>(),
            Err(KeyParseError::NotHex {
                position: 31,
                found: 'z'
            })
        );
        // Multi-byte characters count as characters, not bytes, and never split a digit.
        assert_eq!(
            "é00102030405060708090a0b0c0d0e0f".parse::<ProximityKey>(),
            Err(KeyParseError::NotHex {
                position: 0,
                found: 'é'
            })
        );
    }
}

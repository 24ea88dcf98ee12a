//! The phone token as it travels over the air: parse it (node and agent) and build it
//! (simulator, phone generator).
//!
//! # Bytes
//! The member's app advertises one manufacturer-specific AD structure (AD type `0xFF`). Its data,
//! which is what [`parse_manufacturer_data`] takes, is 14 bytes:
//!
//! | offset | size | value |
//! | --- | --- | --- |
//! | 0 | 2 | company id, little-endian: [`COMPANY_ID`] `0xFFFF` -> `FF FF` |
//! | 2 | 2 | magic `4C 45` (`"LE"`) |
//! | 4 | 1 | format version `01` |
//! | 5 | 8 | rotating id, big-endian (DESIGN.md "Phone token") |
//! | 13 | 1 | tx power at 1 m, `i8` dBm (two's complement) |
//!
//! Example for id `0x0123456789ABCDEF` at -59 dBm:
//! `FF FF 4C 45 01 01 23 45 67 89 AB CD EF C5`.
//!
//! A full advertisement built by [`encode_advertisement`] is the flags structure `02 01 06`
//! followed by `0F FF` and those 14 bytes: 19 of the 31 legacy bytes.
//!
//! The GATT check-in characteristic ([`CHECK_IN_CHARACTERISTIC_UUID`] in service
//! [`CHECK_IN_SERVICE_UUID`]) takes the same 14 bytes (woken iOS apps write what they would have
//! advertised), so [`parse_manufacturer_data`] parses check-ins too.
//!
//! `0xFFFF` is the Bluetooth SIG's id reserved for tests; a store fleet with its own company id
//! uses the `_with` variants, which take it as an argument.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::ad;

/// GATT check-in service UUID (canonical big-endian byte order), offered by every node while it
/// advertises the store iBeacon: `4c450001-8f2a-4b6e-9a51-5d3c2f1e0b7a`.
pub const CHECK_IN_SERVICE_UUID: [u8; 16] = [
    0x4c, 0x45, 0x00, 0x01, 0x8f, 0x2a, 0x4b, 0x6e, 0x9a, 0x51, 0x5d, 0x3c, 0x2f, 0x1e, 0x0b, 0x7a,
];
/// The write-only characteristic the app writes its 14 token bytes to:
/// `4c450002-8f2a-4b6e-9a51-5d3c2f1e0b7a`.
pub const CHECK_IN_CHARACTERISTIC_UUID: [u8; 16] = [
    0x4c, 0x45, 0x00, 0x02, 0x8f, 0x2a, 0x4b, 0x6e, 0x9a, 0x51, 0x5d, 0x3c, 0x2f, 0x1e, 0x0b, 0x7a,
];

/// Company id the token is published under (little-endian on air). `0xFFFF`: SIG test id.
pub const COMPANY_ID: u16 = 0xFFFF;
/// Magic bytes after the company id: `"LE"`.
pub const MAGIC: [u8; 2] = *b"LE";
/// The only format version this parser accepts.
pub const FORMAT_VERSION: u8 = 0x01;
/// Length of the manufacturer data (company id included).
pub const MANUFACTURER_DATA_LEN: usize = 14;

/// A phone token heard over the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PhoneToken {
    /// The rotating 64-bit id.
    pub id: u64,
    /// The phone's declared tx power at 1 m, dBm.
    pub tx_power: i8,
}

/// Why bytes are not a phone token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The manufacturer data is not 14 bytes.
    Length {
        /// Bytes received.
        actual: usize,
    },
    /// Another company's manufacturer data.
    Company(u16),
    /// Our company id but not our magic bytes.
    Magic,
    /// A format version this build does not know.
    Version(u8),
    /// The advertisement's AD list is malformed.
    Ad(ad::AdError),
    /// The advertisement has no manufacturer data under our company id.
    NotFound,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { actual } => write!(
                f,
                "token manufacturer data is {actual} bytes, expected {MANUFACTURER_DATA_LEN}"
            ),
            Self::Company(id) => write!(f, "manufacturer data of company {id:#06x}"),
            Self::Magic => f.write_str("manufacturer data lacks the token magic bytes"),
            Self::Version(v) => write!(f, "unsupported token format version {v}"),
            Self::Ad(e) => write!(f, "malformed advertisement: {e}"),
            Self::NotFound => f.write_str("no phone token in the advertisement"),
        }
    }
}

impl core::error::Error for TokenError {}

/// Parses manufacturer data (company id first) published under [`COMPANY_ID`].
pub fn parse_manufacturer_data(data: &[u8]) -> Result<PhoneToken, TokenError> {
    parse_manufacturer_data_with(COMPANY_ID, data)
}

/// Parses manufacturer data (company id first) published under `company_id`.
pub fn parse_manufacturer_data_with(
    company_id: u16,
    data: &[u8],
) -> Result<PhoneToken, TokenError> {
    // Company first: another company's data of another length is "not ours", not "too short".
    let company = match data {
        [lo, hi, ..] => u16::from_le_bytes([*lo, *hi]),
        _ => return Err(TokenError::Length { actual: data.len() }),
    };
    if company != company_id {
        return Err(TokenError::Company(company));
    }
    let bytes: &[u8; MANUFACTURER_DATA_LEN] = data
        .try_into()
        .map_err(|_| TokenError::Length { actual: data.len() })?;
    let [_, _, m0, m1, version, id @ .., tx] = *bytes;
    if [m0, m1] != MAGIC {
        return Err(TokenError::Magic);
    }
    if version != FORMAT_VERSION {
        return Err(TokenError::Version(version));
    }
    Ok(PhoneToken {
        id: u64::from_be_bytes(id),
        tx_power: tx as i8,
    })
}

/// Finds the phone token in a raw advertisement payload (a list of AD structures).
pub fn find_token(payload: &[u8]) -> Result<PhoneToken, TokenError> {
    find_token_with(COMPANY_ID, payload)
}

/// Finds a phone token published under `company_id` in a raw advertisement payload.
///
/// The first manufacturer structure that parses wins. When none does, the error is the one from
/// the last structure under our company id (so a wrong version is reported as such), else
/// [`TokenError::NotFound`]; a malformed AD list after no match is [`TokenError::Ad`].
pub fn find_token_with(company_id: u16, payload: &[u8]) -> Result<PhoneToken, TokenError> {
    let mut ours: Option<TokenError> = None;
    for structure in ad::structures(payload) {
        let structure = match structure {
            Ok(s) => s,
            Err(e) => return Err(ours.unwrap_or(TokenError::Ad(e))),
        };
        if structure.ad_type != ad::TYPE_MANUFACTURER_DATA {
            continue;
        }
        match parse_manufacturer_data_with(company_id, structure.data) {
            Ok(token) => return Ok(token),
            Err(TokenError::Company(_)) => {}
            Err(TokenError::Length { .. }) if structure.data.len() < 2 => {}
            Err(e) => ours = Some(e),
        }
    }
    Err(ours.unwrap_or(TokenError::NotFound))
}

/// The 14 manufacturer-data bytes for a token under `company_id`.
pub fn encode_manufacturer_data_with(
    company_id: u16,
    token: PhoneToken,
) -> [u8; MANUFACTURER_DATA_LEN] {
    let mut out = [0u8; MANUFACTURER_DATA_LEN];
    out[..2].copy_from_slice(&company_id.to_le_bytes());
    out[2..4].copy_from_slice(&MAGIC);
    out[4] = FORMAT_VERSION;
    out[5..13].copy_from_slice(&token.id.to_be_bytes());
    out[13] = token.tx_power as u8;
    out
}

/// The 14 manufacturer-data bytes under [`COMPANY_ID`] (also the check-in write value).
pub fn encode_manufacturer_data(token: PhoneToken) -> [u8; MANUFACTURER_DATA_LEN] {
    encode_manufacturer_data_with(COMPANY_ID, token)
}

/// A complete legacy advertisement payload: flags, then the token's manufacturer data.
pub fn encode_advertisement(id: u64, tx_power: i8) -> heapless::Vec<u8, 31> {
    encode_advertisement_with(COMPANY_ID, id, tx_power)
}

/// [`encode_advertisement`] under another company id.
pub fn encode_advertisement_with(company_id: u16, id: u64, tx_power: i8) -> heapless::Vec<u8, 31> {
    let mut out = heapless::Vec::new();
    let mfg = encode_manufacturer_data_with(company_id, PhoneToken { id, tx_power });
    // 3 + 16 bytes always fit in 31: the results are ignored on purpose.
    let _ = ad::push_structure(
        &mut out,
        ad::TYPE_FLAGS,
        &[ad::FLAGS_LE_GENERAL_DISCOVERABLE],
    );
    let _ = ad::push_structure(&mut out, ad::TYPE_MANUFACTURER_DATA, &mfg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let bytes = [
            0xFF, 0xFF, 0x4C, 0x45, 0x01, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xC5,
        ];
        let token = parse_manufacturer_data(&bytes).expect("documented bytes");
        assert_eq!(
            token,
            PhoneToken {
                id: 0x0123_4567_89AB_CDEF,
                tx_power: -59
            }
        );
        assert_eq!(encode_manufacturer_data(token), bytes);
    }

    #[test]
    fn advertisement_is_19_bytes_and_found() {
        let adv = encode_advertisement(42, -60);
        assert_eq!(adv.len(), 19);
        assert_eq!(&adv[..5], &[0x02, 0x01, 0x06, 0x0F, 0xFF]);
        assert_eq!(
            find_token(&adv),
            Ok(PhoneToken {
                id: 42,
                tx_power: -60
            })
        );
    }
}

//! Advertisement decoding: bytes a radio heard -> [`Advert`].
//!
//! Two shapes of input reach the agent, and both are handled here:
//! - a raw legacy advertisement payload (a list of AD structures, as a sensor node forwards it or
//!   a trace records it): [`Decoder::decode_payload`] / [`decode_payload`], or [`Decoder::adverts`]
//!   for every recognised structure;
//! - the maps btleplug hands over (`manufacturer_data: HashMap<u16, Vec<u8>>` without the company
//!   id, `service_data: HashMap<Uuid, Vec<u8>>` without the UUID):
//!   [`Decoder::decode_manufacturer`], [`Decoder::decode_service_data`], [`Decoder::decode_maps`].
//!
//! Every parser takes `&[u8]` and returns a typed [`AdvertError`]; none panics, whatever the input
//! (a proptest feeds them arbitrary bytes).
//!
//! # Formats
//! | format | where | bytes after the company id / service UUID |
//! | --- | --- | --- |
//! | phone token | manufacturer data, our company id | `loyalty_firmware::token` (magic `LE`, version, 64-bit id BE, tx power at 1 m) |
//! | iBeacon | manufacturer data, Apple `0x004C` | `02 15`, UUID (16), major (2, BE), minor (2, BE), measured power at 1 m (i8) |
//! | AltBeacon | manufacturer data, any company | `BE AC`, beacon id (20), reference RSSI at 1 m (i8), manufacturer reserved (1) |
//! | Eddystone-UID | service data `0xFEAA` | `00`, tx power at 0 m (i8), namespace (10), instance (6), RFU (2, optional) |
//! | Eddystone-EID | service data `0xFEAA` | `30`, tx power at 0 m (i8), ephemeral id (8) |
//!
//! AltBeacon's code `BE AC` is checked before the company id, so a company that publishes both
//! (Apple's id with `BE AC` is legal) is still read as AltBeacon. Eddystone-URL and -TLM frames
//! are recognised as Eddystone and reported as [`AdvertError::EddystoneFrame`]: they carry no
//! identity.

use std::collections::HashMap;

use loyalty_firmware::ad::{self, AdError};
use loyalty_firmware::heapless;
use loyalty_firmware::ibeacon::IBeacon;
use loyalty_firmware::token::{self, PhoneToken, TokenError};

/// Apple's company id (iBeacon).
pub const APPLE_COMPANY_ID: u16 = 0x004C;
/// iBeacon type and length bytes after Apple's company id.
const IBEACON_PREFIX: [u8; 2] = [0x02, 0x15];
/// iBeacon manufacturer data after the company id: prefix, UUID, major, minor, power.
const IBEACON_LEN: usize = 2 + 16 + 2 + 2 + 1;
/// AltBeacon's beacon code.
const ALTBEACON_CODE: [u8; 2] = [0xBE, 0xAC];
/// AltBeacon manufacturer data after the company id: code, id, ref RSSI, reserved.
const ALTBEACON_LEN: usize = 2 + 20 + 1 + 1;
/// Eddystone's 16-bit service UUID.
pub const EDDYSTONE_UUID16: u16 = 0xFEAA;
/// AD type: service data with a 16-bit UUID.
pub const TYPE_SERVICE_DATA_16: u8 = 0x16;
const EDDYSTONE_UID: u8 = 0x00;
const EDDYSTONE_URL: u8 = 0x10;
const EDDYSTONE_TLM: u8 = 0x20;
const EDDYSTONE_EID: u8 = 0x30;
/// Eddystone-UID frame: type, tx power, namespace, instance (RFU not counted: many beacons omit it).
const EDDYSTONE_UID_LEN: usize = 1 + 1 + 10 + 6;
/// Eddystone-EID frame: type, tx power, ephemeral id.
const EDDYSTONE_EID_LEN: usize = 1 + 1 + 8;
/// The Bluetooth base UUID with the 16/32-bit alias bits zeroed.
const BLUETOOTH_BASE_UUID: u128 = 0x0000_0000_0000_1000_8000_0080_5f9b_34fb;
/// Eddystone's spec: RSSI at 1 m is RSSI at 0 m minus 41 dB.
const EDDYSTONE_0M_TO_1M_DB: i16 = 41;

/// One decoded advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advert {
    /// A member's phone token (DESIGN.md "Phone token").
    PhoneToken(PhoneToken),
    /// An Apple iBeacon (a store beacon, ours or a neighbour's).
    IBeacon(IBeacon),
    /// An AltBeacon.
    AltBeacon {
        /// The publishing company (little-endian on air).
        company: u16,
        /// The 20-byte beacon id (commonly UUID 16 + two 16-bit ids).
        beacon_id: [u8; 20],
        /// RSSI at 1 m, dBm.
        ref_rssi: i8,
        /// The manufacturer's reserved byte.
        mfg_reserved: u8,
    },
    /// An Eddystone-UID frame.
    EddystoneUid {
        /// Namespace (10 bytes).
        namespace: [u8; 10],
        /// Instance (6 bytes).
        instance: [u8; 6],
        /// Calibrated tx power at 0 m, dBm.
        tx_power_0m: i8,
    },
    /// An Eddystone-EID frame.
    EddystoneEid {
        /// The 8-byte ephemeral id.
        ephemeral_id: [u8; 8],
        /// Calibrated tx power at 0 m, dBm.
        tx_power_0m: i8,
    },
}

impl Advert {
    /// The rotating id when this is a member's phone token.
    pub fn token_id(&self) -> Option<u64> {
        match self {
            Self::PhoneToken(t) => Some(t.id),
            _ => None,
        }
    }

    /// The RSSI the sender claims at 1 m, dBm (Eddystone's 0 m figure less 41 dB, per its spec).
    pub fn rssi_at_1m(&self) -> i8 {
        match self {
            Self::PhoneToken(t) => t.tx_power,
            Self::IBeacon(b) => b.measured_power,
            Self::AltBeacon { ref_rssi, .. } => *ref_rssi,
            Self::EddystoneUid { tx_power_0m, .. } | Self::EddystoneEid { tx_power_0m, .. } => {
                // Clamped: -128 - 41 does not fit an i8.
                (i16::from(*tx_power_0m) - EDDYSTONE_0M_TO_1M_DB).clamp(-128, 127) as i8
            }
        }
    }

    /// A legacy advertisement payload carrying this advert (flags, then one structure), using
    /// [`token::COMPANY_ID`] for phone tokens. Every variant fits the 31 bytes.
    pub fn to_payload(&self) -> heapless::Vec<u8, 31> {
        let mut data: heapless::Vec<u8, 29> = heapless::Vec::new();
        let ad_type = match self {
            Self::PhoneToken(t) => {
                let _ = data.extend_from_slice(&token::encode_manufacturer_data(*t));
                ad::TYPE_MANUFACTURER_DATA
            }
            Self::IBeacon(b) => {
                // The firmware builds the store beacon: reuse it rather than restate the layout.
                return loyalty_firmware::ibeacon::encode(b);
            }
            Self::AltBeacon {
                company,
                beacon_id,
                ref_rssi,
                mfg_reserved,
            } => {
                let _ = data.extend_from_slice(&company.to_le_bytes());
                let _ = data.extend_from_slice(&ALTBEACON_CODE);
                let _ = data.extend_from_slice(beacon_id);
                let _ = data.push(*ref_rssi as u8);
                let _ = data.push(*mfg_reserved);
                ad::TYPE_MANUFACTURER_DATA
            }
            Self::EddystoneUid {
                namespace,
                instance,
                tx_power_0m,
            } => {
                let _ = data.extend_from_slice(&EDDYSTONE_UUID16.to_le_bytes());
                let _ = data.extend_from_slice(&[EDDYSTONE_UID, *tx_power_0m as u8]);
                let _ = data.extend_from_slice(namespace);
                let _ = data.extend_from_slice(instance);
                let _ = data.extend_from_slice(&[0, 0]);
                TYPE_SERVICE_DATA_16
            }
            Self::EddystoneEid {
                ephemeral_id,
                tx_power_0m,
            } => {
                let _ = data.extend_from_slice(&EDDYSTONE_UUID16.to_le_bytes());
                let _ = data.extend_from_slice(&[EDDYSTONE_EID, *tx_power_0m as u8]);
                let _ = data.extend_from_slice(ephemeral_id);
                TYPE_SERVICE_DATA_16
            }
        };
        let mut out = heapless::Vec::new();
        // Largest case (AltBeacon) is 3 + 2 + 26 = 31 bytes: these always fit, so the results
        // are ignored on purpose.
        let _ = ad::push_structure(
            &mut out,
            ad::TYPE_FLAGS,
            &[ad::FLAGS_LE_GENERAL_DISCOVERABLE],
        );
        let _ = ad::push_structure(&mut out, ad_type, &data);
        out
    }
}

/// Why bytes are not an advertisement we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdvertError {
    /// The AD structure list is malformed.
    #[error("malformed advertisement: {0}")]
    Ad(AdError),
    /// Our company id, but not a valid phone token.
    #[error("phone token: {0}")]
    Token(TokenError),
    /// A known format's prefix with the wrong length.
    #[error("{format} data is {actual} bytes, expected {expected}")]
    Length {
        /// Which format the prefix announced.
        format: &'static str,
        /// Bytes received.
        actual: usize,
        /// Bytes the format needs.
        expected: usize,
    },
    /// An Eddystone frame without an identity (URL, TLM) or of an unknown type.
    #[error("Eddystone frame type {0:#04x} carries no id")]
    EddystoneFrame(u8),
    /// Nothing in the input is a format this decoder knows.
    #[error("no known advertisement format")]
    Unknown,
}

/// Decodes advertisements; holds the company id our phone tokens are published under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    /// Company id of our phone tokens ([`token::COMPANY_ID`] unless a fleet has its own).
    pub token_company_id: u16,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            token_company_id: token::COMPANY_ID,
        }
    }
}

/// [`Decoder::decode_payload`] with the default decoder.
pub fn decode_payload(payload: &[u8]) -> Result<Advert, AdvertError> {
    Decoder::default().decode_payload(payload)
}

impl Decoder {
    /// The first recognised advert in a raw payload.
    ///
    /// When none is recognised, the error is the last one from a structure that announced a
    /// known format (so a phone token of a future version says so), else a malformed AD list,
    /// else [`AdvertError::Unknown`].
    pub fn decode_payload(&self, payload: &[u8]) -> Result<Advert, AdvertError> {
        let mut last = AdvertError::Unknown;
        for item in self.adverts(payload) {
            match item {
                Ok(advert) => return Ok(advert),
                Err(AdvertError::Ad(e)) if last == AdvertError::Unknown => {
                    last = AdvertError::Ad(e);
                }
                Err(AdvertError::Ad(_)) => {}
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Every structure of a raw payload that announces a known format, decoded; structures of
    /// other kinds are skipped. A malformed list yields one `Err(Ad)` and ends.
    pub fn adverts<'a>(&self, payload: &'a [u8]) -> Adverts<'a> {
        Adverts {
            decoder: *self,
            structures: ad::structures(payload),
        }
    }

    /// Manufacturer data as btleplug gives it: the company id apart, `data` after it.
    pub fn decode_manufacturer(&self, company: u16, data: &[u8]) -> Result<Advert, AdvertError> {
        if let Some(code) = data.get(..2) {
            if code == ALTBEACON_CODE {
                return altbeacon(company, data);
            }
            if company == APPLE_COMPANY_ID && code == IBEACON_PREFIX {
                return ibeacon(data);
            }
        }
        if company == self.token_company_id {
            // The firmware parses the token with its company id in front: rebuild that on the
            // stack. Any other length is reported by the parser itself.
            let mut buf = [0u8; token::MANUFACTURER_DATA_LEN];
            if data.len() + 2 != buf.len() {
                return Err(AdvertError::Token(TokenError::Length {
                    actual: data.len() + 2,
                }));
            }
            buf[..2].copy_from_slice(&company.to_le_bytes());
            buf[2..].copy_from_slice(data);
            return token::parse_manufacturer_data_with(self.token_company_id, &buf)
                .map(Advert::PhoneToken)
                .map_err(AdvertError::Token);
        }
        Err(AdvertError::Unknown)
    }

    /// Manufacturer data with its company id first, as in an AD structure.
    pub fn decode_manufacturer_structure(&self, data: &[u8]) -> Result<Advert, AdvertError> {
        match data {
            [lo, hi, rest @ ..] => self.decode_manufacturer(u16::from_le_bytes([*lo, *hi]), rest),
            _ => Err(AdvertError::Unknown),
        }
    }

    /// Service data as btleplug gives it (the UUID apart). Only Eddystone is known; 16-bit
    /// UUIDs arrive expanded onto the Bluetooth base UUID, which [`uuid16`] undoes.
    pub fn decode_service_data(
        &self,
        uuid: uuid::Uuid,
        data: &[u8],
    ) -> Result<Advert, AdvertError> {
        match uuid16(uuid) {
            Some(EDDYSTONE_UUID16) => eddystone(data),
            _ => Err(AdvertError::Unknown),
        }
    }

    /// Every recognised advert in btleplug's maps (manufacturer entries first). Entries of
    /// unknown formats are left out; entries of a known format that fail are left out too (they
    /// would be counted by the caller through [`Decoder::decode_manufacturer`] if it cares).
    pub fn decode_maps<S: std::hash::BuildHasher>(
        &self,
        manufacturer_data: &HashMap<u16, Vec<u8>, S>,
        service_data: &HashMap<uuid::Uuid, Vec<u8>, S>,
    ) -> Vec<Advert> {
        let mfg = manufacturer_data
            .iter()
            .filter_map(|(company, data)| self.decode_manufacturer(*company, data).ok());
        let svc = service_data
            .iter()
            .filter_map(|(uuid, data)| self.decode_service_data(*uuid, data).ok());
        mfg.chain(svc).collect()
    }
}

/// The 16-bit alias of a UUID on the Bluetooth base UUID (`0000xxxx-0000-1000-8000-00805f9b34fb`).
pub fn uuid16(uuid: uuid::Uuid) -> Option<u16> {
    let v = uuid.as_u128();
    let low_96 = (1u128 << 96) - 1;
    if v & low_96 == BLUETOOTH_BASE_UUID && v >> 112 == 0 {
        Some((v >> 96) as u16)
    } else {
        None
    }
}

/// The full UUID for a 16-bit alias.
pub fn uuid_from_16(alias: u16) -> uuid::Uuid {
    uuid::Uuid::from_u128(BLUETOOTH_BASE_UUID | (u128::from(alias) << 96))
}

/// Iterator returned by [`Decoder::adverts`].
#[derive(Debug, Clone)]
pub struct Adverts<'a> {
    decoder: Decoder,
    structures: ad::AdStructures<'a>,
}

impl Iterator for Adverts<'_> {
    type Item = Result<Advert, AdvertError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let structure = match self.structures.next()? {
                Ok(s) => s,
                Err(e) => return Some(Err(AdvertError::Ad(e))),
            };
            let decoded = match structure.ad_type {
                ad::TYPE_MANUFACTURER_DATA => {
                    self.decoder.decode_manufacturer_structure(structure.data)
                }
                TYPE_SERVICE_DATA_16 => match structure.data {
                    [lo, hi, rest @ ..] if u16::from_le_bytes([*lo, *hi]) == EDDYSTONE_UUID16 => {
                        eddystone(rest)
                    }
                    _ => Err(AdvertError::Unknown),
                },
                _ => Err(AdvertError::Unknown),
            };
            // Structures of other formats are not errors: an advertisement mixes many.
            if decoded != Err(AdvertError::Unknown) {
                return Some(decoded);
            }
        }
    }
}

fn ibeacon(data: &[u8]) -> Result<Advert, AdvertError> {
    let bytes: &[u8; IBEACON_LEN] = data.try_into().map_err(|_| AdvertError::Length {
        format: "iBeacon",
        actual: data.len(),
        expected: IBEACON_LEN,
    })?;
    let [_, _, uuid @ .., ma0, ma1, mi0, mi1, power] = *bytes;
    Ok(Advert::IBeacon(IBeacon {
        uuid,
        major: u16::from_be_bytes([ma0, ma1]),
        minor: u16::from_be_bytes([mi0, mi1]),
        measured_power: power as i8,
    }))
}

fn altbeacon(company: u16, data: &[u8]) -> Result<Advert, AdvertError> {
    let bytes: &[u8; ALTBEACON_LEN] = data.try_into().map_err(|_| AdvertError::Length {
        format: "AltBeacon",
        actual: data.len(),
        expected: ALTBEACON_LEN,
    })?;
    let [_, _, beacon_id @ .., ref_rssi, mfg_reserved] = *bytes;
    Ok(Advert::AltBeacon {
        company,
        beacon_id,
        ref_rssi: ref_rssi as i8,
        mfg_reserved,
    })
}

/// An Eddystone frame (service data after the `FEAA` UUID).
fn eddystone(frame: &[u8]) -> Result<Advert, AdvertError> {
    let Some((&kind, _)) = frame.split_first() else {
        return Err(AdvertError::Length {
            format: "Eddystone",
            actual: 0,
            expected: EDDYSTONE_EID_LEN,
        });
    };
    match kind {
        EDDYSTONE_UID => {
            // 18 bytes, or 20 with the two RFU bytes the spec asks for and many beacons omit.
            let body = match frame.len() {
                EDDYSTONE_UID_LEN => frame,
                n if n == EDDYSTONE_UID_LEN + 2 => &frame[..EDDYSTONE_UID_LEN],
                actual => {
                    return Err(AdvertError::Length {
                        format: "Eddystone-UID",
                        actual,
                        expected: EDDYSTONE_UID_LEN + 2,
                    })
                }
            };
            let bytes: &[u8; EDDYSTONE_UID_LEN] =
                body.try_into().map_err(|_| AdvertError::Length {
                    format: "Eddystone-UID",
                    actual: body.len(),
                    expected: EDDYSTONE_UID_LEN,
                })?;
            let [_, tx, ns @ .., i0, i1, i2, i3, i4, i5] = *bytes;
            let namespace: [u8; 10] = ns;
            Ok(Advert::EddystoneUid {
                namespace,
                instance: [i0, i1, i2, i3, i4, i5],
                tx_power_0m: tx as i8,
            })
        }
        EDDYSTONE_EID => {
            let bytes: &[u8; EDDYSTONE_EID_LEN] =
                frame.try_into().map_err(|_| AdvertError::Length {
                    format: "Eddystone-EID",
                    actual: frame.len(),
                    expected: EDDYSTONE_EID_LEN,
                })?;
            let [_, tx, ephemeral_id @ ..] = *bytes;
            Ok(Advert::EddystoneEid {
                ephemeral_id,
                tx_power_0m: tx as i8,
            })
        }
        EDDYSTONE_URL | EDDYSTONE_TLM => Err(AdvertError::EddystoneFrame(kind)),
        other => Err(AdvertError::EddystoneFrame(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token(id: u64, tx_power: i8) -> Advert {
        Advert::PhoneToken(PhoneToken { id, tx_power })
    }

    #[test]
    fn phone_token_from_firmware_payload() {
        let adv = token::encode_advertisement(0x0123_4567_89AB_CDEF, -59);
        assert_eq!(decode_payload(&adv), Ok(token(0x0123_4567_89AB_CDEF, -59)));
    }

    #[test]
    fn ibeacon_from_firmware_payload() {
        let beacon = IBeacon {
            uuid: [0xAA; 16],
            major: 7,
            minor: 0x0102,
            measured_power: -59,
        };
        let adv = loyalty_firmware::ibeacon::encode(&beacon);
        assert_eq!(decode_payload(&adv), Ok(Advert::IBeacon(beacon)));
    }

    #[test]
    fn altbeacon_spec_example() {
        // AltBeacon spec example: company 0x0118 (Radius Networks), code BEAC, id, -59 (0xC5), 0.
        let mut data = vec![0x1B, 0xFF, 0x18, 0x01, 0xBE, 0xAC];
        data.extend(1..=20u8);
        data.extend([0xC5, 0x00]);
        let expected = Advert::AltBeacon {
            company: 0x0118,
            beacon_id: core::array::from_fn(|i| i as u8 + 1),
            ref_rssi: -59,
            mfg_reserved: 0,
        };
        assert_eq!(decode_payload(&data), Ok(expected));
    }

    #[test]
    fn eddystone_uid_with_and_without_rfu() {
        let mut frame = vec![0x00, 0xEE]; // tx -18 at 0 m
        frame.extend([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        frame.extend([11, 12, 13, 14, 15, 16]);
        let expected = Advert::EddystoneUid {
            namespace: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            instance: [11, 12, 13, 14, 15, 16],
            tx_power_0m: -18,
        };
        let d = Decoder::default();
        let uuid = uuid_from_16(EDDYSTONE_UUID16);
        assert_eq!(d.decode_service_data(uuid, &frame), Ok(expected));
        frame.extend([0, 0]);
        assert_eq!(d.decode_service_data(uuid, &frame), Ok(expected));
        assert_eq!(expected.rssi_at_1m(), -59);
        frame.push(0);
        assert!(matches!(
            d.decode_service_data(uuid, &frame),
            Err(AdvertError::Length { .. })
        ));
    }

    #[test]
    fn eddystone_eid_and_tlm_in_raw_payload() {
        let eid = Advert::EddystoneEid {
            ephemeral_id: [9, 8, 7, 6, 5, 4, 3, 2],
            tx_power_0m: -20,
        };
        assert_eq!(decode_payload(&eid.to_payload()), Ok(eid));
        // TLM: `0F 16 AA FE 20 ...` (version, battery, temperature, counts).
        let tlm = [
            0x02, 0x01, 0x06, 0x0F, 0x16, 0xAA, 0xFE, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            decode_payload(&tlm[..19]),
            Err(AdvertError::EddystoneFrame(0x20))
        );
    }

    #[test]
    fn btleplug_maps() {
        let d = Decoder::default();
        let mut mfg = HashMap::new();
        let data = token::encode_manufacturer_data(PhoneToken {
            id: 77,
            tx_power: -61,
        });
        mfg.insert(token::COMPANY_ID, data[2..].to_vec());
        mfg.insert(0x0059, vec![1, 2, 3]); // Nordic, unknown to us
        let mut svc = HashMap::new();
        svc.insert(
            uuid_from_16(EDDYSTONE_UUID16),
            vec![0x30, 0xEC, 1, 2, 3, 4, 5, 6, 7, 8],
        );
        svc.insert(uuid_from_16(0x180F), vec![99]); // battery service
        let mut got = d.decode_maps(&mfg, &svc);
        got.sort_by_key(|a| a.token_id().is_none());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], token(77, -61));
        assert!(matches!(got[1], Advert::EddystoneEid { .. }));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        // Our company and magic, a future version.
        let mut data = token::encode_manufacturer_data(PhoneToken { id: 1, tx_power: 0 });
        data[4] = 2;
        let d = Decoder::default();
        assert_eq!(
            d.decode_manufacturer_structure(&data),
            Err(AdvertError::Token(TokenError::Version(2)))
        );
        assert_eq!(
            d.decode_manufacturer(token::COMPANY_ID, &[0x4C]),
            Err(AdvertError::Token(TokenError::Length { actual: 3 }))
        );
        assert_eq!(
            d.decode_manufacturer(APPLE_COMPANY_ID, &[0x02, 0x15, 0]),
            Err(AdvertError::Length {
                format: "iBeacon",
                actual: 3,
                expected: 23
            })
        );
        assert_eq!(
            decode_payload(&[0x05, 0xFF, 1]),
            Err(AdvertError::Ad(AdError::Overrun {
                offset: 0,
                claimed: 5
            }))
        );
        assert_eq!(
            decode_payload(&[0x02, 0x01, 0x06]),
            Err(AdvertError::Unknown)
        );
        assert_eq!(decode_payload(&[]), Err(AdvertError::Unknown));
    }

    #[test]
    fn another_fleet_company_id() {
        let d = Decoder {
            token_company_id: 0x1234,
        };
        let adv = token::encode_advertisement_with(0x1234, 5, -50);
        assert_eq!(d.decode_payload(&adv), Ok(token(5, -50)));
        assert_eq!(decode_payload(&adv), Err(AdvertError::Unknown));
    }

    #[test]
    fn uuid16_round_trip_and_rejects_others() {
        assert_eq!(uuid16(uuid_from_16(0xFEAA)), Some(0xFEAA));
        assert_eq!(
            uuid_from_16(0xFEAA).to_string(),
            "0000feaa-0000-1000-8000-00805f9b34fb"
        );
        assert_eq!(
            uuid16(uuid::Uuid::from_u128(
                0x1234_5678 << 96 | BLUETOOTH_BASE_UUID
            )),
            None
        );
        assert_eq!(uuid16(uuid::Uuid::nil()), None);
    }

    fn arb_advert() -> impl Strategy<Value = Advert> {
        prop_oneof![
            (any::<u64>(), any::<i8>()).prop_map(|(id, tx)| token(id, tx)),
            (any::<[u8; 16]>(), any::<u16>(), any::<u16>(), any::<i8>()).prop_map(
                |(uuid, major, minor, measured_power)| Advert::IBeacon(IBeacon {
                    uuid,
                    major,
                    minor,
                    measured_power
                })
            ),
            (any::<u16>(), any::<[u8; 20]>(), any::<i8>(), any::<u8>()).prop_map(
                |(company, beacon_id, ref_rssi, mfg_reserved)| Advert::AltBeacon {
                    company,
                    beacon_id,
                    ref_rssi,
                    mfg_reserved
                }
            ),
            (any::<[u8; 10]>(), any::<[u8; 6]>(), any::<i8>()).prop_map(
                |(namespace, instance, tx_power_0m)| Advert::EddystoneUid {
                    namespace,
                    instance,
                    tx_power_0m
                }
            ),
            (any::<[u8; 8]>(), any::<i8>()).prop_map(|(ephemeral_id, tx_power_0m)| {
                Advert::EddystoneEid {
                    ephemeral_id,
                    tx_power_0m,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                       company in any::<u16>(), alias in any::<u16>()) {
            let d = Decoder::default();
            let _ = d.decode_payload(&bytes);
            let _ = d.adverts(&bytes).count();
            let _ = d.decode_manufacturer(company, &bytes);
            let _ = d.decode_manufacturer_structure(&bytes);
            let _ = d.decode_service_data(uuid_from_16(alias), &bytes);
            let _ = d.decode_service_data(uuid_from_16(EDDYSTONE_UUID16), &bytes);
        }

        #[test]
        fn structured_junk_never_panics(
            structures in proptest::collection::vec(
                (prop_oneof![Just(0xFFu8), Just(0x16u8), any::<u8>()],
                 proptest::collection::vec(any::<u8>(), 0..30)), 0..4)) {
            // Bias toward the AD types we parse, so the format parsers see real attempts.
            let mut payload = Vec::new();
            for (ad_type, data) in structures {
                payload.push((data.len() + 1) as u8);
                payload.push(ad_type);
                payload.extend(data);
            }
            let _ = decode_payload(&payload);
        }

        #[test]
        fn every_format_round_trips(advert in arb_advert()) {
            // Apple's company id with a non-iBeacon AltBeacon is still AltBeacon; our company id
            // with `BE AC` likewise: the round trip holds for every company.
            let payload = advert.to_payload();
            prop_assert!(payload.len() <= 31);
            prop_assert_eq!(decode_payload(&payload), Ok(advert));
        }
    }
}

//! The phone-side generator: what a member's app must advertise (or write to a node's check-in
//! characteristic) right now, for app developers checking their implementation and for tests.

use super::rotating_id::{interval_number, rotating_id, ProximityKey};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PhoneAdvert {
    pub member_id: Option<String>,
    pub interval_secs: u64,
    pub interval: u64,
    /// The rotating id, 16 hex digits.
    pub rotating_id: String,
    /// The manufacturer data (company id first), hex: also the check-in write.
    pub manufacturer_data: String,
    /// The whole legacy advertising payload, hex.
    pub advertisement: String,
    /// Unix seconds at which this id stops being current.
    pub valid_until: u64,
}

pub fn advert_at(
    key: &ProximityKey,
    member_id: Option<String>,
    unix_secs: u64,
    interval_secs: u64,
    tx_power: i8,
) -> PhoneAdvert {
    let interval = interval_number(unix_secs, interval_secs);
    let id = rotating_id(key, interval);
    let mfg =
        loyalty_firmware::token::encode_manufacturer_data(loyalty_firmware::token::PhoneToken {
            id,
            tx_power,
        });
    let adv = loyalty_firmware::token::encode_advertisement(id, tx_power);
    PhoneAdvert {
        member_id,
        interval_secs,
        interval,
        rotating_id: format!("{id:016x}"),
        manufacturer_data: hex::encode(mfg),
        advertisement: hex::encode(&adv),
        valid_until: (interval + 1).saturating_mul(interval_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proximity::Decoder;

    #[test]
    fn the_advertisement_decodes_to_the_members_current_id() {
        let key: ProximityKey = "00112233445566778899aabbccddeeff".parse().unwrap();
        let a = advert_at(&key, Some("m1".into()), 1_800_000_123, 600, -59);
        assert_eq!(a.interval, 3_000_000);
        assert_eq!(a.valid_until, 1_800_000_600);
        let bytes = hex::decode(&a.advertisement).unwrap();
        let decoded = Decoder::default().decode_payload(&bytes).unwrap();
        assert_eq!(
            decoded.token_id(),
            Some(rotating_id(&key, 3_000_000)),
            "what the app advertises is what the agent resolves"
        );
        assert!(a.advertisement.ends_with(&a.manufacturer_data));
    }
}

//! Advertisement decoding: every decode function of the agent's `proximity::adverts` (a raw
//! payload of AD structures, manufacturer data with or without its company id, Eddystone
//! service data, a fleet's own company id), and the firmware's phone-token parsers under them.
//!
//! Invariants: every advert decoded from anything re-encodes (`Advert::to_payload`) into a
//! payload that decodes to the same advert; iterating a payload's adverts ends within its
//! length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loyalty_agent::proximity::adverts::{
    self, decode_payload, uuid16, uuid_from_16, Advert, Decoder, EDDYSTONE_UUID16,
};
use loyalty_firmware::token;

fn round_trip(advert: Advert) {
    let _ = advert.rssi_at_1m();
    let _ = advert.token_id();
    let payload = advert.to_payload();
    assert_eq!(decode_payload(&payload), Ok(advert), "{payload:02x?}");
}

fuzz_target!(|data: &[u8]| {
    let default = Decoder::default();
    let fleet = match data {
        [lo, hi, ..] => Decoder {
            token_company_id: u16::from_le_bytes([*lo, *hi]),
        },
        _ => default,
    };
    let mut decoded = Vec::new();
    for decoder in [default, fleet] {
        decoded.push(decoder.decode_payload(data));
        let mut n = 0;
        for item in decoder.adverts(data) {
            n += 1;
            assert!(n <= data.len(), "more adverts than bytes");
            decoded.push(item);
        }
        decoded.push(decoder.decode_manufacturer_structure(data));
        decoded.push(decoder.decode_service_data(uuid_from_16(EDDYSTONE_UUID16), data));
        if let [lo, hi, rest @ ..] = data {
            decoded.push(decoder.decode_manufacturer(u16::from_le_bytes([*lo, *hi]), rest));
            decoded.push(
                decoder.decode_service_data(uuid_from_16(u16::from_le_bytes([*lo, *hi])), rest),
            );
        }
    }
    for advert in decoded.into_iter().flatten() {
        round_trip(advert);
    }

    if let Ok(t) = token::parse_manufacturer_data(data) {
        assert_eq!(token::encode_manufacturer_data(t).as_slice(), data);
    }
    if let Ok(t) = token::find_token(data) {
        assert_eq!(
            adverts::decode_payload(&token::encode_advertisement(t.id, t.tx_power)),
            Ok(Advert::PhoneToken(t))
        );
    }

    if let Ok(uuid) = <[u8; 16]>::try_from(data.get(..16).unwrap_or(&[])) {
        let uuid = uuid::Uuid::from_bytes(uuid);
        if let Some(alias) = uuid16(uuid) {
            assert_eq!(uuid_from_16(alias), uuid);
        }
    }
});

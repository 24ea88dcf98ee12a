//! Phone-token parsing: round trips, documented errors, and no panic on any input.

use loyalty_firmware::ad;
use loyalty_firmware::token::{
    self, encode_advertisement, encode_manufacturer_data, find_token, find_token_with,
    parse_manufacturer_data, PhoneToken, TokenError,
};
use proptest::prelude::*;

#[test]
fn errors_are_specific() {
    let good = encode_manufacturer_data(PhoneToken {
        id: 1,
        tx_power: -4,
    });
    assert_eq!(
        parse_manufacturer_data(&good[..13]),
        Err(TokenError::Length { actual: 13 })
    );
    assert_eq!(
        parse_manufacturer_data(&[0x4C, 0x00, 0x02, 0x15]),
        Err(TokenError::Company(0x004C))
    );
    let mut bad_magic = good;
    bad_magic[2] = b'X';
    assert_eq!(parse_manufacturer_data(&bad_magic), Err(TokenError::Magic));
    let mut v2 = good;
    v2[4] = 2;
    assert_eq!(parse_manufacturer_data(&v2), Err(TokenError::Version(2)));
    assert_eq!(
        parse_manufacturer_data(&[]),
        Err(TokenError::Length { actual: 0 })
    );
}

#[test]
fn finds_token_among_other_structures() {
    // Flags, a 16-bit service UUID list, Apple's manufacturer data, then ours.
    let mut adv = vec![
        0x02, 0x01, 0x06, 0x03, 0x03, 0x6F, 0xFD, 0x05, 0xFF, 0x4C, 0x00, 0x10, 0x01,
    ];
    adv.push(15);
    adv.push(0xFF);
    adv.extend(encode_manufacturer_data(PhoneToken {
        id: 99,
        tx_power: -8,
    }));
    assert!(adv.len() <= 31);
    assert_eq!(
        find_token(&adv),
        Ok(PhoneToken {
            id: 99,
            tx_power: -8
        })
    );
}

#[test]
fn malformed_ad_list_is_an_error_not_a_panic() {
    assert_eq!(
        find_token(&[0x02, 0x01, 0x06, 0x1F, 0xFF, 0xFF]),
        Err(TokenError::Ad(ad::AdError::Overrun {
            offset: 3,
            claimed: 0x1F
        }))
    );
    assert_eq!(find_token(&[]), Err(TokenError::NotFound));
    // Zero length ends the list: a token after padding is not looked at.
    let mut padded = vec![0x02, 0x01, 0x06, 0x00];
    padded.extend_from_slice(&encode_advertisement(5, 0)[3..]);
    assert_eq!(find_token(&padded), Err(TokenError::NotFound));
}

#[test]
fn wrong_version_inside_an_advertisement_is_reported() {
    let mut adv = encode_advertisement(7, -1);
    adv[9] = 9; // version byte: flags(3) + len + type + company(2) + magic(2)
    assert_eq!(find_token(&adv), Err(TokenError::Version(9)));
}

#[test]
fn company_id_is_configurable() {
    let adv = token::encode_advertisement_with(0x1234, 3, -2);
    assert_eq!(find_token(&adv), Err(TokenError::NotFound));
    assert_eq!(
        find_token_with(0x1234, &adv),
        Ok(PhoneToken {
            id: 3,
            tx_power: -2
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn advertisement_round_trips(id in any::<u64>(), tx in any::<i8>()) {
        let adv = encode_advertisement(id, tx);
        prop_assert_eq!(find_token(&adv), Ok(PhoneToken { id, tx_power: tx }));
    }

    #[test]
    fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_manufacturer_data(&bytes);
        let _ = find_token(&bytes);
        for s in ad::structures(&bytes).flatten() {
            prop_assert!(s.data.len() < bytes.len());
        }
    }

    #[test]
    fn token_survives_random_neighbours(
        before in prop::collection::vec((1u8..0xFF, prop::collection::vec(any::<u8>(), 0..4)), 0..3),
        id in any::<u64>(),
    ) {
        // Random well-formed non-manufacturer structures before the token.
        let mut adv = Vec::new();
        for (ty, data) in &before {
            adv.push(data.len() as u8 + 1);
            adv.push(*ty);
            adv.extend(data);
        }
        adv.extend_from_slice(&encode_advertisement(id, 0)[3..]);
        prop_assert_eq!(find_token(&adv), Ok(PhoneToken { id, tx_power: 0 }));
    }
}

//! The store's iBeacon advertisement, which wakes the member's iOS app through region monitoring
//! so it can connect and write its check-in (DESIGN.md "Phone token", way 2).
//!
//! Layout (30 bytes): flags `02 01 06`, then `1A FF 4C 00 02 15`, the 16-byte proximity UUID,
//! major and minor (big-endian `u16`), and the measured power at 1 m (`i8`).

use serde::{Deserialize, Serialize};

use crate::ad;

/// Apple's company id, under which iBeacon frames are published.
const APPLE_COMPANY_ID: u16 = 0x004C;
/// iBeacon type and remaining-length bytes.
const IBEACON_PREFIX: [u8; 2] = [0x02, 0x15];

/// What the node broadcasts: the store's region and this node's place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IBeacon {
    /// Proximity UUID: one per retailer, the region the app monitors.
    pub uuid: [u8; 16],
    /// Major: the store.
    pub major: u16,
    /// Minor: the node.
    pub minor: u16,
    /// RSSI at 1 m as iOS expects it, dBm.
    pub measured_power: i8,
}

/// Builds the legacy advertisement payload for `beacon`.
pub fn encode(beacon: &IBeacon) -> heapless::Vec<u8, 31> {
    let mut data = [0u8; 25];
    data[..2].copy_from_slice(&APPLE_COMPANY_ID.to_le_bytes());
    data[2..4].copy_from_slice(&IBEACON_PREFIX);
    data[4..20].copy_from_slice(&beacon.uuid);
    data[20..22].copy_from_slice(&beacon.major.to_be_bytes());
    data[22..24].copy_from_slice(&beacon.minor.to_be_bytes());
    data[24] = beacon.measured_power as u8;
    let mut out = heapless::Vec::new();
    // 3 + 27 bytes always fit in 31: the results are ignored on purpose.
    let _ = ad::push_structure(
        &mut out,
        ad::TYPE_FLAGS,
        &[ad::FLAGS_LE_GENERAL_DISCOVERABLE],
    );
    let _ = ad::push_structure(&mut out, ad::TYPE_MANUFACTURER_DATA, &data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let adv = encode(&IBeacon {
            uuid: [0xAA; 16],
            major: 0x0102,
            minor: 0x0304,
            measured_power: -59,
        });
        assert_eq!(adv.len(), 30);
        assert_eq!(
            &adv[..9],
            &[0x02, 0x01, 0x06, 0x1A, 0xFF, 0x4C, 0x00, 0x02, 0x15]
        );
        assert_eq!(&adv[25..], &[0x01, 0x02, 0x03, 0x04, 0xC5]);
    }
}

//! Proptest strategies for every wire message (shared by the wire tests via `#[path]`).

use loyalty_firmware::heapless;
use loyalty_firmware::token::PhoneToken;
use loyalty_firmware::wire::{
    Calibration, CheckIn, Downlink, Heartbeat, Hello, RssiStats, Sighting, SightingBatch, Subject,
    Uplink, BATCH_CAPACITY,
};
use proptest::prelude::*;

pub fn label() -> impl Strategy<Value = heapless::String<16>> {
    "[a-z0-9.-]{0,16}".prop_map(|s| heapless::String::try_from(s.as_str()).expect("<= 16 ASCII"))
}

pub fn calibration() -> impl Strategy<Value = Calibration> {
    (any::<i8>(), any::<u8>()).prop_map(|(rssi_at_1m, path_loss_x10)| Calibration {
        rssi_at_1m,
        path_loss_x10,
    })
}

pub fn token() -> impl Strategy<Value = PhoneToken> {
    (any::<u64>(), any::<i8>()).prop_map(|(id, tx_power)| PhoneToken { id, tx_power })
}

pub fn subject() -> impl Strategy<Value = Subject> {
    prop_oneof![
        token().prop_map(Subject::Token),
        (any::<[u8; 6]>(), prop::collection::vec(any::<u8>(), 0..=31)).prop_map(|(addr, adv)| {
            Subject::Raw {
                addr,
                adv: heapless::Vec::from_slice(&adv).expect("<= 31"),
            }
        }),
    ]
}

pub fn sighting() -> impl Strategy<Value = Sighting> {
    (subject(), any::<(u16, i8, i8, i8)>()).prop_map(|(subject, (count, median, max, min))| {
        Sighting {
            subject,
            rssi: RssiStats {
                count,
                median,
                max,
                min,
            },
        }
    })
}

pub fn uplink() -> impl Strategy<Value = Uplink> {
    prop_oneof![
        (any::<u64>(), label(), label(), calibration(), any::<u32>()).prop_map(
            |(node_id, firmware, board, calibration, report_interval_ms)| Uplink::Hello(Hello {
                node_id,
                firmware,
                board,
                calibration,
                report_interval_ms,
            })
        ),
        (
            any::<u64>(),
            any::<u32>(),
            any::<bool>(),
            prop::collection::vec(sighting(), 0..=BATCH_CAPACITY)
        )
            .prop_map(|(interval_end_ms, interval_ms, more, s)| {
                Uplink::Sightings(SightingBatch {
                    interval_end_ms,
                    interval_ms,
                    more,
                    sightings: heapless::Vec::from_slice(&s).expect("<= capacity"),
                })
            }),
        (token(), any::<i8>(), any::<u64>()).prop_map(|(token, rssi, uptime_ms)| {
            Uplink::CheckIn(CheckIn {
                token,
                rssi,
                uptime_ms,
            })
        }),
        (
            any::<(u64, u32, u32, u16, u16)>(),
            any::<(u32, u32, u32, u32)>()
        )
            .prop_map(
                |((uptime_ms, ds, df, qh, th), (re, ue, rc, bc))| Uplink::Heartbeat(Heartbeat {
                    uptime_ms,
                    dropped_sightings: ds,
                    dropped_frames: df,
                    queue_high_water: qh,
                    table_high_water: th,
                    radio_errors: re,
                    uplink_errors: ue,
                    rejected_commands: rc,
                    bad_check_ins: bc,
                })
            ),
    ]
}

pub fn downlink() -> impl Strategy<Value = Downlink> {
    prop_oneof![
        calibration().prop_map(Downlink::SetCalibration),
        any::<u32>().prop_map(|interval_ms| Downlink::SetReportInterval { interval_ms }),
        Just(Downlink::Reboot),
        Just(Downlink::Identify),
    ]
}

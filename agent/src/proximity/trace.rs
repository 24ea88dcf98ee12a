//! Between the trace format (`loyalty_protocol::trace`, shared with the simulator) and the
//! pipeline's [`Sighting`]s: what a recording writes and what a replay feeds in.

use std::time::{Duration, Instant};

pub use loyalty_protocol::trace::{
    read_trace, records_of, write_trace, TraceError, TraceLineError, TraceRecord, TraceToken,
};

use super::adverts::Decoder;
use super::Sighting;

/// The phone-token id of a record: its `token`, or the phone token decoded from its `adv`.
pub fn token_id(record: &TraceRecord, decoder: &Decoder) -> Option<u64> {
    match &record.token {
        TraceToken::Id(id) => Some(*id),
        TraceToken::Advert(bytes) => decoder.decode_payload(bytes).ok()?.token_id(),
        TraceToken::None => None,
    }
}

/// The sighting a record replays, `start` being the replay's start.
pub fn to_sighting(record: &TraceRecord, start: Instant, decoder: &Decoder) -> Sighting {
    Sighting {
        sensor: record.sensor.clone(),
        token: token_id(record, decoder),
        rssi: record.rssi,
        rssi_max: record.rssi_max,
        count: record.count,
        check_in: record.check_in,
        at: start + Duration::from_millis(record.t_ms),
    }
}

/// The record of a live sighting, `start` being the recording's start.
pub fn from_sighting(s: &Sighting, start: Instant) -> TraceRecord {
    TraceRecord {
        t_ms: u64::try_from(s.at.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX),
        sensor: s.sensor.clone(),
        rssi: s.rssi,
        rssi_max: s.rssi_max,
        count: s.count,
        token: s.token.map_or(TraceToken::None, TraceToken::Id),
        check_in: s.check_in,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_firmware::token::encode_advertisement;

    #[test]
    fn sightings_round_trip() {
        let start = Instant::now();
        let d = Decoder::default();
        let s = Sighting {
            sensor: "coffee".into(),
            token: Some(42),
            rssi: -70,
            rssi_max: -65,
            count: 4,
            check_in: false,
            at: start + Duration::from_millis(2500),
        };
        let r = from_sighting(&s, start);
        assert_eq!(r.t_ms, 2500);
        assert_eq!(to_sighting(&r, start, &d), s);
    }

    #[test]
    fn an_advert_record_decodes_to_its_phone_token() {
        let mut r = from_sighting(
            &Sighting {
                sensor: "door".into(),
                token: None,
                rssi: -60,
                rssi_max: -60,
                count: 1,
                check_in: false,
                at: Instant::now(),
            },
            Instant::now(),
        );
        let d = Decoder::default();
        assert_eq!(token_id(&r, &d), None);
        r.token = TraceToken::Advert(encode_advertisement(0xABCD, -59).to_vec());
        assert_eq!(token_id(&r, &d), Some(0xABCD));
        r.token = TraceToken::Advert(vec![0x02, 0x01]);
        assert_eq!(token_id(&r, &d), None, "a broken advert is no token");
    }
}

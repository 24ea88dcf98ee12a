//! Wire codec: round trips of every frame, and the damage a serial line does (random bytes,
//! truncation, flipped bits, glued frames, frames split across reads). Decoding never panics and
//! never yields a frame that was not sent.

#[path = "common/strategies.rs"]
mod strategies;

use loyalty_firmware::heapless;
use loyalty_firmware::token::PhoneToken;
use loyalty_firmware::wire::{
    self, DecodeError, Downlink, FrameDecoder, Heartbeat, RssiStats, Sighting, SightingBatch,
    Subject, Uplink, BATCH_CAPACITY, MAX_ENCODED,
};
use proptest::prelude::*;
use strategies::{downlink, uplink};

fn frame(msg: &Uplink) -> Vec<u8> {
    wire::encode_to_vec(msg).expect("encodes").to_vec()
}

fn decode_all(bytes: &[u8]) -> Vec<Result<Uplink, DecodeError>> {
    FrameDecoder::<Uplink>::new().feed(bytes).collect()
}

fn largest_batch() -> Uplink {
    let sighting = Sighting {
        subject: Subject::Raw {
            addr: [0xFF; 6],
            adv: heapless::Vec::from_slice(&[0xFF; 31]).expect("31"),
        },
        rssi: RssiStats {
            count: u16::MAX,
            median: -128,
            max: -128,
            min: -128,
        },
    };
    Uplink::Sightings(SightingBatch {
        interval_end_ms: u64::MAX,
        interval_ms: u32::MAX,
        more: true,
        sightings: std::iter::repeat_n(sighting, BATCH_CAPACITY).collect(),
    })
}

#[test]
fn largest_frame_fits_max_encoded() {
    let bytes = frame(&largest_batch());
    assert!(
        bytes.len() <= MAX_ENCODED,
        "{} > {MAX_ENCODED}",
        bytes.len()
    );
    assert_eq!(decode_all(&bytes), vec![Ok(largest_batch())]);
}

#[test]
fn only_the_trailing_byte_is_a_delimiter() {
    let bytes = frame(&Uplink::Heartbeat(Heartbeat::default()));
    assert_eq!(bytes.last(), Some(&0));
    assert!(!bytes[..bytes.len() - 1].contains(&0));
}

#[test]
fn direction_is_checked() {
    let cmd = wire::encode_to_vec(&Downlink::Reboot).expect("encodes");
    assert_eq!(
        wire::decode::<Uplink>(&cmd),
        Err(DecodeError::Kind {
            expected: b'N',
            found: b'A'
        })
    );
    assert_eq!(wire::decode::<Downlink>(&cmd), Ok(Downlink::Reboot));
}

#[test]
fn other_version_is_reported() {
    // Build a version-2 frame by hand: same layout, different first byte, valid CRC.
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    let mut raw = vec![2u8, b'N', 3];
    raw.extend_from_slice(&crc.checksum(&raw).to_le_bytes());
    let mut enc = vec![0u8; 32];
    let n = wire::cobs::encode(&raw, &mut enc).expect("fits");
    assert_eq!(
        wire::decode::<Uplink>(&enc[..n]),
        Err(DecodeError::Version(2))
    );
}

#[test]
fn garbage_then_frame_resyncs() {
    let hb = Uplink::Heartbeat(Heartbeat {
        uptime_ms: 7,
        ..Heartbeat::default()
    });
    let mut bytes = b"\x13\x37garbage without delimiter".to_vec();
    bytes.push(0);
    bytes.extend(frame(&hb));
    let out = decode_all(&bytes);
    assert_eq!(out.len(), 2);
    assert!(out[0].is_err());
    assert_eq!(out[1], Ok(hb));
}

#[test]
fn cut_frame_then_lone_delimiter_loses_only_the_cut_frame() {
    // What the node does after a reset mid-frame: a lone delimiter before the next frame.
    let a = frame(&largest_batch());
    let b = frame(&Uplink::Heartbeat(Heartbeat::default()));
    let mut bytes = a[..a.len() / 2].to_vec();
    bytes.push(0);
    bytes.extend(&b);
    let out = decode_all(&bytes);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].is_err());
    assert_eq!(out[1], Ok(Uplink::Heartbeat(Heartbeat::default())));
}

#[test]
fn cut_frame_glued_to_next_is_one_error_then_stream_continues() {
    let a = frame(&largest_batch());
    let b = frame(&Uplink::Heartbeat(Heartbeat::default()));
    let mut bytes = a[..a.len() / 2].to_vec();
    bytes.extend(&b);
    bytes.extend(&b);
    let out = decode_all(&bytes);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].is_err());
    assert_eq!(out[1], Ok(Uplink::Heartbeat(Heartbeat::default())));
}

#[test]
fn endless_garbage_is_bounded_and_reported() {
    let mut decoder = FrameDecoder::<Uplink>::new();
    let noise = [0x55u8; 1000];
    for _ in 0..10 {
        assert_eq!(decoder.feed(&noise).count(), 0);
    }
    let out: Vec<_> = decoder.feed(&[0]).collect();
    assert_eq!(out, vec![Err(DecodeError::Oversized { len: 10_000 })]);
    let hb = frame(&Uplink::Heartbeat(Heartbeat::default()));
    assert_eq!(decoder.feed(&hb).count(), 1);
    assert_eq!(decoder.pending(), 0);
}

#[test]
fn empty_frames_are_skipped() {
    assert!(decode_all(&[0, 0, 0]).is_empty());
}

#[test]
fn check_in_example() {
    let msg = Uplink::CheckIn(wire::CheckIn {
        token: PhoneToken {
            id: 0x0123_4567_89AB_CDEF,
            tx_power: -59,
        },
        rssi: -70,
        uptime_ms: 1234,
    });
    assert_eq!(decode_all(&frame(&msg)), vec![Ok(msg)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn uplink_round_trips(msg in uplink()) {
        let bytes = frame(&msg);
        prop_assert!(bytes.len() <= MAX_ENCODED);
        prop_assert_eq!(wire::decode::<Uplink>(&bytes), Ok(msg.clone()));
        prop_assert_eq!(decode_all(&bytes), vec![Ok(msg)]);
    }

    #[test]
    fn downlink_round_trips(msg in downlink()) {
        let bytes = wire::encode_to_vec(&msg).expect("encodes");
        prop_assert_eq!(wire::decode::<Downlink>(&bytes), Ok(msg));
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_all(&bytes);
        let _ = wire::decode::<Uplink>(&bytes);
        let _ = wire::decode::<Downlink>(&bytes);
        let mut copy = bytes.clone();
        let _ = wire::decode_in_place::<Uplink>(&mut copy);
    }

    #[test]
    fn truncated_frames_are_errors(msg in uplink(), cut in any::<prop::sample::Index>()) {
        let bytes = frame(&msg);
        let body = &bytes[..bytes.len() - 1];
        let keep = cut.index(body.len()); // strictly shorter than the frame
        let mut decoder = FrameDecoder::<Uplink>::new();
        prop_assert_eq!(decoder.feed(&body[..keep]).count(), 0);
        let out: Vec<_> = decoder.feed(&[0]).collect();
        if keep == 0 {
            prop_assert!(out.is_empty());
        } else {
            prop_assert_eq!(out.len(), 1);
            prop_assert!(out[0].is_err());
        }
    }

    #[test]
    fn flipped_bit_never_yields_another_frame(
        msg in uplink(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut bytes = frame(&msg);
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // A flip may split the frame (a new zero) or corrupt it, but whatever decodes is the
        // message that was sent, never a different one.
        for decoded in decode_all(&bytes).into_iter().flatten() {
            prop_assert_eq!(decoded, msg.clone());
        }
    }

    #[test]
    fn glued_frames_come_out_in_order(msgs in prop::collection::vec(uplink(), 1..6)) {
        let bytes: Vec<u8> = msgs.iter().flat_map(frame).collect();
        let out: Vec<_> = decode_all(&bytes).into_iter().collect::<Result<_, _>>().expect("valid");
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn any_chunking_gives_the_same_frames(
        msgs in prop::collection::vec(uplink(), 1..6),
        cuts in prop::collection::vec(1usize..64, 1..40),
    ) {
        let bytes: Vec<u8> = msgs.iter().flat_map(frame).collect();
        let mut decoder = FrameDecoder::<Uplink>::new();
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        let mut cuts = cuts.into_iter().cycle();
        while !rest.is_empty() {
            let n = cuts.next().unwrap_or(1).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            out.extend(decoder.feed(chunk));
            rest = tail;
        }
        let out: Vec<_> = out.into_iter().collect::<Result<_, _>>().expect("valid");
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn garbage_between_frames_costs_at_most_one_error_each(
        msgs in prop::collection::vec(uplink(), 1..5),
        noise in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..5),
    ) {
        // Garbage followed by a delimiter, then a frame: every frame survives.
        let mut bytes = Vec::new();
        for (msg, junk) in msgs.iter().zip(noise.iter().cycle()) {
            bytes.extend(junk);
            bytes.push(0);
            bytes.extend(frame(msg));
        }
        let good: Vec<Uplink> = decode_all(&bytes).into_iter().filter_map(Result::ok).collect();
        prop_assert_eq!(good, msgs);
    }
}

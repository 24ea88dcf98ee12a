//! Sensor-node frames: the `loyalty-firmware` wire decoder (COBS, CRC-32C, version and kind
//! header, postcard message) the agent reads every node's serial line with.
//!
//! Input: byte 0 picks the mode (bit 0) and seeds the chunking (the other bits).
//! - stream mode (bit 0 clear): the rest is what the serial line delivered, fed to
//!   `FrameDecoder`s for uplinks and downlinks in one piece and in arbitrary pieces;
//! - message mode (bit 0 set): byte 1 picks the kind byte (`N` uplink, `A` downlink, or itself),
//!   the rest is a postcard message, wrapped here in a frame with a valid CRC so the fuzzer
//!   reaches the message decoder past the checksum.
//!
//! Invariants: the chunking does not change what is decoded; the one-frame `decode` agrees
//! with the streaming decoder; every decoded message re-encodes within `MAX_ENCODED` and
//! decodes back to itself; COBS round-trips any bytes.
#![no_main]

use crc::{Crc, CRC_32_ISCSI};
use libfuzzer_sys::fuzz_target;
use loyalty_firmware::wire::{
    self, cobs, DecodeError, Downlink, FrameDecoder, Message, Uplink, MAX_ENCODED, VERSION,
};

const CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

fn decode_stream<M: Message + PartialEq + std::fmt::Debug>(
    line: &[u8],
    seed: u8,
) -> Vec<Result<M, DecodeError>> {
    let whole: Vec<_> = FrameDecoder::<M>::new().feed(line).collect();
    let mut decoder = FrameDecoder::<M>::new();
    let mut pieces = Vec::new();
    let mut state = u32::from(seed) << 8 | 0xa5;
    let mut rest = line;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        // Mostly short reads, now and then one longer than a whole frame.
        let n = if state & 0xf0 == 0 {
            state as usize % (2 * MAX_ENCODED)
        } else {
            state as usize % 24
        };
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        pieces.extend(decoder.feed(chunk));
        rest = tail;
    }
    assert_eq!(pieces, whole, "chunking changed the frames");
    // Each complete frame (ended by a delimiter) on its own, through the one-frame decoder.
    let mut frames: Vec<&[u8]> = line.split(|&b| b == wire::DELIMITER).collect();
    frames.pop(); // After the last delimiter: not a frame yet.
    let single: Vec<Result<M, DecodeError>> = frames
        .into_iter()
        .filter(|f| !f.is_empty())
        .map(wire::decode::<M>)
        .collect();
    assert_eq!(single, whole, "decode and FrameDecoder disagree");
    whole
}

fn round_trip<M: Message + PartialEq + std::fmt::Debug>(msg: &M) {
    let bytes = wire::encode_to_vec(msg).expect("a decoded message re-encodes");
    assert!(bytes.len() <= MAX_ENCODED);
    let again: Vec<_> = FrameDecoder::<M>::new().feed(&bytes).collect();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].as_ref().ok(), Some(msg));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let line: Vec<u8> = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let Some((&kind, message)) = rest.split_first() else {
            return;
        };
        let kind = match kind {
            0 => Uplink::KIND,
            1 => Downlink::KIND,
            other => other,
        };
        let mut raw = vec![VERSION, kind];
        raw.extend_from_slice(message);
        let crc = CRC.checksum(&raw);
        raw.extend_from_slice(&crc.to_le_bytes());
        let mut framed = vec![0u8; cobs::max_encoded_len(raw.len()) + 1];
        let n = cobs::encode(&raw, &mut framed).expect("sized for the worst case");
        assert!(!framed[..n].contains(&0));
        let mut decoded = framed[..n].to_vec();
        let m = cobs::decode_in_place(&mut decoded).expect("COBS round trip");
        assert_eq!(&decoded[..m], raw.as_slice());
        framed.truncate(n);
        framed.push(wire::DELIMITER);
        framed
    };

    for msg in decode_stream::<Uplink>(&line, mode >> 1).iter().flatten() {
        round_trip(msg);
    }
    for msg in decode_stream::<Downlink>(&line, mode >> 1).iter().flatten() {
        round_trip(msg);
    }
    let mut scratch = rest.to_vec();
    let _ = cobs::decode_in_place(&mut scratch);
});

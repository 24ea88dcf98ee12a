//! Frames between a sensor node and the agent, over a serial line (UART or USB CDC).
//!
//! # Layout
//! ```text
//! on the line:  COBS( raw ) 0x00
//! raw:          version:u8  kind:u8  postcard(message)  crc32c(version..message):u32 LE
//! ```
//! - `version` is [`VERSION`]; a frame of another version is [`DecodeError::Version`].
//! - `kind` tells the direction: [`Uplink`] (node -> agent, `'N'`) or [`Downlink`]
//!   (agent -> node, `'A'`), so a command echoed back by a tty that is not in raw mode is
//!   refused instead of being read as a sighting.
//! - The CRC is CRC-32C (Castagnoli, the `CRC_32_ISCSI` of the `crc` crate). Why 32 bits and
//!   not 16: after garbage or a cut frame the decoder sees arbitrary byte strings, and a 16-bit
//!   check lets one in 65,536 through as a "valid" frame; 32 bits make that one in four billion
//!   for 2 more bytes per frame, which a 115200-baud link carrying a few frames a second does not
//!   notice. Castagnoli over the IEEE polynomial: larger Hamming distance at our frame lengths.
//!   Table-driven: a 1 KiB table on the node, slice-by-16 on hosts (see the `wire-bench` binary).
//! - COBS removes every zero from `raw`, so `0x00` only ever delimits; a receiver joining
//!   mid-stream, or after line noise, loses at most the frame in progress.
//!
//! # Use
//! Node side: [`encode`] into a buffer of [`MAX_ENCODED`] bytes and write it. Agent side: feed
//! whatever the port returns to a [`FrameDecoder`] and iterate the frames out:
//!
//! ```
//! use loyalty_firmware::wire::{self, Downlink, FrameDecoder, Uplink, Heartbeat};
//! let mut bytes = wire::encode_to_vec(&Uplink::Heartbeat(Heartbeat::default())).unwrap();
//! let mut decoder = FrameDecoder::<Uplink>::new();
//! // Any chunking works: here the frame arrives in two pieces.
//! let (a, b) = bytes.split_at(3);
//! assert_eq!(decoder.feed(a).count(), 0);
//! let frames: Vec<_> = decoder.feed(b).collect();
//! assert_eq!(frames, vec![Ok(Uplink::Heartbeat(Heartbeat::default()))]);
//! ```

pub mod cobs;
mod decoder;
mod error;
mod frames;

use crc::{Crc, CRC_32_ISCSI};
use serde::{de::DeserializeOwned, Serialize};

pub use decoder::{FrameDecoder, Frames};
pub use error::{DecodeError, EncodeError};
pub use frames::{
    Calibration, CheckIn, Downlink, Heartbeat, Hello, RssiStats, Sighting, SightingBatch, Subject,
    Uplink, BATCH_CAPACITY, LABEL_LEN, MAX_REPORT_INTERVAL_MS, MIN_REPORT_INTERVAL_MS,
};

/// Wire protocol version carried by every frame.
pub const VERSION: u8 = 1;
/// Frame delimiter on the line.
pub const DELIMITER: u8 = 0x00;
/// Largest postcard message, bytes. The largest message is a full [`SightingBatch`] of raw
/// advertisements (about 380 bytes); a test encodes it and checks it fits.
pub const MAX_MESSAGE: usize = 400;
const HEADER_LEN: usize = 2;
const CRC_LEN: usize = 4;
/// Largest frame before COBS: header, message, CRC.
pub const MAX_RAW: usize = HEADER_LEN + MAX_MESSAGE + CRC_LEN;
/// Largest frame on the line, delimiter included: size encode buffers with this.
pub const MAX_ENCODED: usize = cobs::max_encoded_len(MAX_RAW) + 1;

// Same CRC, two speeds: on a microcontroller the 1 KiB byte-wise table (flash is scarce, frames
// are few); on a host (the agent decoding every node of a store) the 16 KiB slice-by-16 table,
// which makes the largest frames decode about 45% faster (see `wire-bench`).
#[cfg(target_os = "none")]
type CrcTable = crc::Table<1>;
#[cfg(not(target_os = "none"))]
type CrcTable = crc::Table<16>;

const CRC: Crc<u32, CrcTable> = Crc::<u32, CrcTable>::new(&CRC_32_ISCSI);

/// A message that travels in frames; `KIND` is its direction byte.
pub trait Message: Serialize + DeserializeOwned {
    /// The header's kind byte.
    const KIND: u8;
}

impl Message for Uplink {
    const KIND: u8 = b'N';
}

impl Message for Downlink {
    const KIND: u8 = b'A';
}

/// Encodes `msg` as one frame, trailing delimiter included, into `out`; returns its length.
pub fn encode<M: Message>(msg: &M, out: &mut [u8]) -> Result<usize, EncodeError> {
    let mut raw = [0u8; MAX_RAW];
    raw[0] = VERSION;
    raw[1] = M::KIND;
    let used = postcard::to_slice(msg, &mut raw[HEADER_LEN..MAX_RAW - CRC_LEN])
        .map_err(|_| EncodeError::BufferFull)?
        .len();
    let body_end = HEADER_LEN + used;
    let crc = CRC.checksum(&raw[..body_end]);
    raw[body_end..body_end + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    let n = cobs::encode(&raw[..body_end + CRC_LEN], out).ok_or(EncodeError::BufferFull)?;
    *out.get_mut(n).ok_or(EncodeError::BufferFull)? = DELIMITER;
    Ok(n + 1)
}

/// [`encode`] into a new bounded vector.
pub fn encode_to_vec<M: Message>(msg: &M) -> Result<heapless::Vec<u8, MAX_ENCODED>, EncodeError> {
    let mut buf = [0u8; MAX_ENCODED];
    let n = encode(msg, &mut buf)?;
    heapless::Vec::from_slice(&buf[..n]).map_err(|_| EncodeError::BufferFull)
}

/// Decodes one frame (delimiter excluded) in place: `frame` is overwritten.
pub fn decode_in_place<M: Message>(frame: &mut [u8]) -> Result<M, DecodeError> {
    let n = cobs::decode_in_place(frame).map_err(|_| DecodeError::Cobs)?;
    let raw = frame.get(..n).ok_or(DecodeError::Cobs)?;
    if n < HEADER_LEN + CRC_LEN {
        return Err(DecodeError::Truncated { len: n });
    }
    let (body, crc) = raw.split_at(n - CRC_LEN);
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = CRC.checksum(body);
    // CRC before version: a flipped version byte is corruption, not a newer peer.
    if expected != computed {
        return Err(DecodeError::Crc { expected, computed });
    }
    if body[0] != VERSION {
        return Err(DecodeError::Version(body[0]));
    }
    if body[1] != M::KIND {
        return Err(DecodeError::Kind {
            expected: M::KIND,
            found: body[1],
        });
    }
    let (msg, rest) =
        postcard::take_from_bytes::<M>(&body[HEADER_LEN..]).map_err(|_| DecodeError::Payload)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { len: rest.len() });
    }
    Ok(msg)
}

/// Decodes one frame (with or without its trailing delimiter) from a borrowed slice.
pub fn decode<M: Message>(frame: &[u8]) -> Result<M, DecodeError> {
    let frame = frame.strip_suffix(&[DELIMITER]).unwrap_or(frame);
    let mut buf = [0u8; MAX_ENCODED];
    let copy = buf
        .get_mut(..frame.len())
        .ok_or(DecodeError::Oversized { len: frame.len() })?;
    copy.copy_from_slice(frame);
    decode_in_place(copy)
}

//! Typed errors of the wire codec.

use core::fmt;

/// Why a frame was not decoded. Every variant means "this frame is lost"; the stream itself
/// carries on at the next delimiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// More than [`super::MAX_ENCODED`] bytes arrived without a delimiter; they were discarded
    /// up to the next delimiter (line noise, or a peer speaking something else).
    Oversized {
        /// Bytes discarded.
        len: usize,
    },
    /// Not valid COBS (corruption, or the tail of a frame cut at the start of the stream).
    Cobs,
    /// Too short to hold the header and CRC.
    Truncated {
        /// Decoded length.
        len: usize,
    },
    /// The CRC does not match: bits flipped on the line, or two frame pieces glued together.
    Crc {
        /// CRC carried by the frame.
        expected: u32,
        /// CRC computed over the received bytes.
        computed: u32,
    },
    /// A protocol version this build does not speak.
    Version(u8),
    /// A frame for the other direction (e.g. a command echoed back by a tty not in raw mode).
    Kind {
        /// Kind this decoder expects.
        expected: u8,
        /// Kind received.
        found: u8,
    },
    /// The CRC matched but postcard could not read the message (an unknown variant from a newer
    /// peer of the same version, or a bug).
    Payload,
    /// The message ended before the frame did.
    TrailingBytes {
        /// Bytes left over.
        len: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Oversized { len } => write!(f, "{len} bytes without a frame delimiter"),
            Self::Cobs => f.write_str("invalid COBS framing"),
            Self::Truncated { len } => write!(f, "frame of {len} bytes is too short"),
            Self::Crc { expected, computed } => write!(
                f,
                "CRC mismatch: frame says {expected:#010x}, bytes give {computed:#010x}"
            ),
            Self::Version(v) => write!(f, "unsupported wire version {v}"),
            Self::Kind { expected, found } => write!(
                f,
                "frame kind {found:#04x} where {expected:#04x} was expected"
            ),
            Self::Payload => f.write_str("malformed message payload"),
            Self::TrailingBytes { len } => write!(f, "{len} bytes after the message"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why a message was not encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small (use [`super::MAX_ENCODED`]).
    BufferFull,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferFull => f.write_str("frame does not fit the output buffer"),
        }
    }
}

impl core::error::Error for EncodeError {}

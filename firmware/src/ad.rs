//! BLE advertising data: the list of AD structures inside a legacy advertisement payload.
//!
//! Each structure is `len` (1 byte, counting the type byte and the data), `type` (1 byte), then
//! `len - 1` data bytes. A `len` of 0 ends the significant part (the rest is padding). The
//! iterator yields `Err` once and stops on a structure that runs past the end, so callers
//! never index out of bounds whatever the radio hands them.

use core::fmt;

/// AD type: flags.
pub const TYPE_FLAGS: u8 = 0x01;
/// AD type: manufacturer-specific data (company id little-endian, then the company's bytes).
pub const TYPE_MANUFACTURER_DATA: u8 = 0xFF;
/// Flags value for a general-discoverable, BR/EDR-not-supported device.
pub const FLAGS_LE_GENERAL_DISCOVERABLE: u8 = 0x06;
/// Maximum legacy advertising payload length.
pub const MAX_LEGACY_PAYLOAD: usize = 31;

/// One AD structure borrowed from a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdStructure<'a> {
    /// The AD type byte.
    pub ad_type: u8,
    /// The data after the type byte.
    pub data: &'a [u8],
}

/// A malformed AD list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdError {
    /// A structure's length byte claims more bytes than remain.
    Overrun {
        /// Offset of the offending length byte.
        offset: usize,
        /// The length it claimed.
        claimed: u8,
    },
}

impl fmt::Display for AdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overrun { offset, claimed } => write!(
                f,
                "AD structure at offset {offset} claims {claimed} bytes past the end of the payload"
            ),
        }
    }
}

impl core::error::Error for AdError {}

/// Iterates the AD structures of an advertisement payload.
pub fn structures(payload: &[u8]) -> AdStructures<'_> {
    AdStructures {
        payload,
        offset: 0,
        done: false,
    }
}

/// Iterator returned by [`structures`].
#[derive(Debug, Clone)]
pub struct AdStructures<'a> {
    payload: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for AdStructures<'a> {
    type Item = Result<AdStructure<'a>, AdError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.payload.get(self.offset..).unwrap_or(&[]);
        let Some((&len, body)) = rest.split_first() else {
            self.done = true;
            return None;
        };
        if len == 0 {
            // Zero length: the rest is padding (Core spec, Vol 3, Part C, 11).
            self.done = true;
            return None;
        }
        let Some(structure) = body.get(..usize::from(len)) else {
            self.done = true;
            return Some(Err(AdError::Overrun {
                offset: self.offset,
                claimed: len,
            }));
        };
        self.offset += 1 + usize::from(len);
        // `len >= 1`, so the type byte exists.
        let (&ad_type, data) = structure.split_first()?;
        Some(Ok(AdStructure { ad_type, data }))
    }
}

/// An AD structure did not fit the payload being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadFull;

impl fmt::Display for PayloadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AD structure does not fit the advertising payload")
    }
}

impl core::error::Error for PayloadFull {}

/// Appends one AD structure to `out`; `Err` when it does not fit (the payload is unchanged).
pub fn push_structure<const N: usize>(
    out: &mut heapless::Vec<u8, N>,
    ad_type: u8,
    data: &[u8],
) -> Result<(), PayloadFull> {
    let len = u8::try_from(data.len() + 1).map_err(|_| PayloadFull)?;
    if out.len() + 1 + usize::from(len) > N {
        return Err(PayloadFull);
    }
    // Capacity was checked above, so none of these can fail.
    out.push(len).map_err(|_| PayloadFull)?;
    out.push(ad_type).map_err(|_| PayloadFull)?;
    out.extend_from_slice(data).map_err(|_| PayloadFull)
}

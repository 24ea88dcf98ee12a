//! Consistent Overhead Byte Stuffing: removes every `0x00` from a frame so `0x00` can delimit
//! frames on the serial line, and a receiver that starts mid-stream (or after a cut frame)
//! resynchronises at the next `0x00`.
//!
//! Hand-written rather than a crate: decoding must work in place on the receive buffer (no second
//! buffer on the node), and both loops are short enough to fuzz exhaustively.

/// Worst-case encoded length (without the delimiter) of `len` input bytes.
pub const fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// Encodes `input` into `out`; returns the encoded length (no delimiter), or `None` when `out`
/// is too small.
pub fn encode(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut code_at = 0; // Where the current block's code byte goes.
    let mut write = 1;
    let mut code: u8 = 1;
    *out.get_mut(code_at)? = 0; // Reserve; fails early on an empty `out`.
    for &byte in input {
        if byte == 0 {
            *out.get_mut(code_at)? = code;
            code_at = write;
            *out.get_mut(code_at)? = 0;
            write += 1;
            code = 1;
        } else {
            *out.get_mut(write)? = byte;
            write += 1;
            code += 1;
            if code == 0xFF {
                // A full block of 254 non-zero bytes: close it without an implied zero.
                *out.get_mut(code_at)? = code;
                code_at = write;
                *out.get_mut(code_at)? = 0;
                write += 1;
                code = 1;
            }
        }
    }
    *out.get_mut(code_at)? = code;
    Some(write)
}

/// Why an encoded frame is not valid COBS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CobsError {
    /// A `0x00` inside the frame (the delimiter never reaches the decoder).
    Zero,
    /// A code byte points past the end of the frame.
    Overrun,
}

/// Decodes the frame in `buf` in place; returns the decoded length.
pub fn decode_in_place(buf: &mut [u8]) -> Result<usize, CobsError> {
    let mut read = 0;
    let mut write = 0;
    while read < buf.len() {
        let code = buf[read];
        if code == 0 {
            return Err(CobsError::Zero);
        }
        read += 1;
        let run = usize::from(code - 1);
        let end = read + run;
        if end > buf.len() {
            return Err(CobsError::Overrun);
        }
        // `write <= read` always holds, so the copy never overtakes unread input.
        if buf[read..end].contains(&0) {
            return Err(CobsError::Zero);
        }
        buf.copy_within(read..end, write);
        write += run;
        read = end;
        // A block shorter than 254 bytes implies a zero, unless it ends the frame.
        if code != 0xFF && read < buf.len() {
            buf[write] = 0;
            write += 1;
        }
    }
    Ok(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(input: &[u8]) {
        let mut enc = [0u8; 1024];
        let n = encode(input, &mut enc).expect("fits");
        assert!(n <= max_encoded_len(input.len()));
        assert!(!enc[..n].contains(&0));
        let mut dec = enc;
        let m = decode_in_place(&mut dec[..n]).expect("valid");
        assert_eq!(&dec[..m], input);
    }

    #[test]
    fn known_vectors() {
        // Vectors from the COBS paper / common references.
        let mut out = [0u8; 16];
        assert_eq!(encode(&[], &mut out), Some(1));
        assert_eq!(out[0], 1);
        let n = encode(&[0x00], &mut out).unwrap();
        assert_eq!(&out[..n], &[1, 1]);
        let n = encode(&[0x11, 0x22, 0x00, 0x33], &mut out).unwrap();
        assert_eq!(&out[..n], &[3, 0x11, 0x22, 2, 0x33]);
        let n = encode(&[0x11, 0x00, 0x00, 0x00], &mut out).unwrap();
        assert_eq!(&out[..n], &[2, 0x11, 1, 1, 1]);
    }

    #[test]
    fn block_boundaries() {
        for len in [0, 1, 253, 254, 255, 508, 509, 600] {
            let data: std::vec::Vec<u8> = (0..len).map(|i| (i % 255 + 1) as u8).collect();
            roundtrip(&data);
            let zeros = std::vec![0u8; len];
            roundtrip(&zeros);
        }
    }

    #[test]
    fn too_small_output_is_none() {
        let mut out = [0u8; 3];
        assert_eq!(encode(&[1, 2, 3, 4], &mut out), None);
        assert_eq!(encode(&[1], &mut []), None);
    }
}

//! Streaming frame decoder: bytes in, in chunks of any size; frames or typed errors out.
//!
//! Resynchronisation is the delimiter's job: whatever precedes a `0x00` (garbage, the tail of a
//! frame whose head was lost, a frame whose tail was cut and glued to the next one) becomes one
//! error, and decoding resumes right after it. Empty frames (two delimiters in a row) are
//! skipped silently: senders emit a lone `0x00` at start-up and after a write error precisely so
//! that a cut frame ends before the next good one begins.

use core::marker::PhantomData;

use super::{decode_in_place, DecodeError, Message, DELIMITER, MAX_ENCODED};

/// Accumulates a partial frame between calls to [`FrameDecoder::feed`].
///
/// Memory is fixed: [`MAX_ENCODED`] bytes plus a few words, whatever arrives.
pub struct FrameDecoder<M: Message> {
    buf: [u8; MAX_ENCODED],
    len: usize,
    /// Bytes dropped from the current frame because it outgrew `buf`.
    overflow: usize,
    _message: PhantomData<fn() -> M>,
}

impl<M: Message> Default for FrameDecoder<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Message> core::fmt::Debug for FrameDecoder<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("pending", &self.pending())
            .finish()
    }
}

impl<M: Message> FrameDecoder<M> {
    /// An empty decoder.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_ENCODED],
            len: 0,
            overflow: 0,
            _message: PhantomData,
        }
    }

    /// Bytes of an unfinished frame held from earlier chunks.
    pub fn pending(&self) -> usize {
        self.len + self.overflow
    }

    /// Forgets any unfinished frame (e.g. after re-opening the port).
    pub fn reset(&mut self) {
        self.len = 0;
        self.overflow = 0;
    }

    /// Feeds a chunk; iterate the result to get the frames it completes, in order.
    ///
    /// Drain the iterator: bytes it has not reached when it is dropped are not consumed.
    pub fn feed<'d, 'c>(&'d mut self, chunk: &'c [u8]) -> Frames<'d, 'c, M> {
        Frames {
            decoder: self,
            rest: chunk,
        }
    }

    /// Appends bytes of the current frame, counting what does not fit.
    fn absorb(&mut self, bytes: &[u8]) {
        if self.overflow > 0 {
            self.overflow += bytes.len();
            return;
        }
        let room = MAX_ENCODED - self.len;
        if bytes.len() > room {
            // Past any legal frame length: stop copying, just count until the delimiter.
            self.overflow = self.len + bytes.len();
            self.len = 0;
            return;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Ends the current frame at a delimiter; `None` for an empty frame.
    fn finish(&mut self) -> Option<Result<M, DecodeError>> {
        if self.overflow > 0 {
            let len = self.overflow;
            self.overflow = 0;
            return Some(Err(DecodeError::Oversized { len }));
        }
        if self.len == 0 {
            return None;
        }
        let len = self.len;
        self.len = 0;
        Some(decode_in_place(&mut self.buf[..len]))
    }
}

/// Iterator returned by [`FrameDecoder::feed`].
pub struct Frames<'d, 'c, M: Message> {
    decoder: &'d mut FrameDecoder<M>,
    rest: &'c [u8],
}

impl<M: Message> Iterator for Frames<'_, '_, M> {
    type Item = Result<M, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            match self.rest.iter().position(|&b| b == DELIMITER) {
                None => {
                    self.decoder.absorb(self.rest);
                    self.rest = &[];
                    return None;
                }
                Some(at) => {
                    let (frame, after) = self.rest.split_at(at);
                    self.rest = &after[1..];
                    self.decoder.absorb(frame);
                    if let Some(result) = self.decoder.finish() {
                        return Some(result);
                    }
                }
            }
        }
    }
}

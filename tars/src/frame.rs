//! TARS framing: every packet is preceded by a 4-byte big-endian length that counts
//! itself (so an empty body has length 4).
//!
//! [`encode_frame`] / [`FrameBuilder`] write frames; [`FrameSplitter`] cuts a byte stream
//! from a non-blocking socket into frames: it keeps partial frames across reads, yields
//! several frames from one read, and rejects a length below 4 or above the configured
//! maximum as soon as the 4 length bytes have arrived, so the caller can close that
//! connection without waiting for (or buffering) a body it will never accept.

use std::io;

use crate::codec::TarsWriter;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Default largest accepted frame, length prefix included: 10 MiB. Far above any
/// framework message; small enough that a bogus length cannot make us buffer much.
pub const DEFAULT_MAX_FRAME: usize = 10 * 1024 * 1024;

/// How much [`FrameSplitter::read_from`] asks the source for when it knows no better.
const READ_CHUNK: usize = 16 * 1024;

/// A frame length that cannot be accepted. The stream cannot be resynchronised after
/// this: the caller should close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length is below 4, though it counts its own 4 bytes.
    #[error("frame length {len} is below 4 (the length counts its own 4 bytes)")]
    TooShort {
        /// The declared length.
        len: u32,
    },
    /// The length exceeds the configured maximum (or, when writing, `u32::MAX`).
    #[error("frame length {len} exceeds the maximum of {max} bytes")]
    TooLong {
        /// The declared (or, when writing, the required) length.
        len: u64,
        /// The maximum in force.
        max: u64,
    },
}

/// Frames `body`: its length plus 4, big-endian, then the body.
pub fn encode_frame(body: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut b = FrameBuilder::with_capacity(body.len());
    b.writer().write_raw(body);
    b.finish()
}

/// Checks a declared frame length against `max_frame`; `Ok` carries the body length.
pub fn check_frame_len(len: u32, max_frame: usize) -> Result<usize, FrameError> {
    if (len as usize) < HEADER_LEN {
        return Err(FrameError::TooShort { len });
    }
    if len as usize > max_frame {
        return Err(FrameError::TooLong {
            len: u64::from(len),
            max: max_frame as u64,
        });
    }
    Ok(len as usize - HEADER_LEN)
}

/// Encodes a frame in place: reserves the length prefix, lets the caller write the body
/// through a [`TarsWriter`], then patches the length, so the body is never copied.
#[derive(Debug)]
pub struct FrameBuilder {
    w: TarsWriter,
}

impl Default for FrameBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameBuilder {
    /// A builder with the length prefix reserved.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A builder with room for a body of `body_capacity` bytes.
    pub fn with_capacity(body_capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN.saturating_add(body_capacity));
        buf.extend_from_slice(&[0; HEADER_LEN]);
        Self {
            w: TarsWriter::from_vec(buf),
        }
    }

    /// The writer for the body (it already holds the 4 reserved bytes).
    pub fn writer(&mut self) -> &mut TarsWriter {
        &mut self.w
    }

    /// Writes the length and returns the whole frame.
    pub fn finish(self) -> Result<Vec<u8>, FrameError> {
        let mut buf = self.w.into_bytes();
        let len = u32::try_from(buf.len()).map_err(|_| FrameError::TooLong {
            len: buf.len() as u64,
            max: u64::from(u32::MAX),
        })?;
        buf[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        Ok(buf)
    }
}

/// Cuts a byte stream into frames, for a non-blocking reader.
///
/// Feed it what the socket gave ([`Self::feed`], or [`Self::read_from`] to read straight
/// into its buffer), then take frames with [`Self::next_frame`] until it returns
/// `Ok(None)`. Consumed bytes are reclaimed at the next feed, so a read carrying many
/// small frames costs one buffer move, not one per frame.
#[derive(Debug)]
pub struct FrameSplitter {
    /// Received bytes live in `buf[start..end]`; `buf[end..]` is zeroed spare room kept
    /// for the next `read_from`, so a read does not zero its buffer again each time.
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    start: usize,
    /// End of the received bytes in `buf`.
    end: usize,
    max_frame: usize,
    /// Set once a bad length is seen; the stream is unusable afterwards.
    failed: Option<FrameError>,
}

impl Default for FrameSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameSplitter {
    /// A splitter accepting frames of at most `max_frame` bytes (prefix included).
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_frame,
            failed: None,
        }
    }

    /// The largest accepted frame, prefix included.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// True while part of a frame is waiting for more bytes (e.g. at connection close,
    /// this means the peer hung up mid-frame).
    pub fn has_partial(&self) -> bool {
        self.buffered() > 0
    }

    /// Appends bytes read from the stream.
    pub fn feed(&mut self, data: &[u8]) {
        self.compact();
        self.buf.truncate(self.end);
        self.buf.extend_from_slice(data);
        self.end = self.buf.len();
    }

    /// Performs one `read` from `src` straight into the buffer and returns its result
    /// (0 means end of stream; `WouldBlock` passes through untouched). It asks for what
    /// the frame being assembled still needs, at least 16 KiB; since a length is checked
    /// against the maximum before it is trusted, a peer cannot make it buffer more than
    /// one maximal frame plus a chunk.
    pub fn read_from<R: io::Read + ?Sized>(&mut self, src: &mut R) -> io::Result<usize> {
        self.compact();
        let want = match self.pending_len() {
            Some(Ok(frame_len)) => frame_len.saturating_sub(self.buffered()).max(READ_CHUNK),
            _ => READ_CHUNK,
        };
        if self.buf.len() < self.end + want {
            self.buf.resize(self.end + want, 0);
        }
        let result = src.read(&mut self.buf[self.end..self.end + want]);
        if let Ok(got) = result {
            self.end += got.min(want);
        }
        result
    }

    /// The next complete frame's body (without the length prefix), `Ok(None)` when
    /// more bytes are needed, or an error for a bad length (and every call after it).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let frame_len = match self.pending_len() {
            None => return Ok(None),
            Some(Err(e)) => {
                self.failed = Some(e.clone());
                return Err(e);
            }
            Some(Ok(len)) => len,
        };
        if self.buffered() < frame_len {
            return Ok(None);
        }
        let body_start = self.start + HEADER_LEN;
        let end = self.start + frame_len;
        self.start = end;
        Ok(Some(&self.buf[body_start..end]))
    }

    /// The declared length of the frame at the front, once its prefix has arrived.
    fn pending_len(&self) -> Option<Result<usize, FrameError>> {
        if let Some(e) = &self.failed {
            return Some(Err(e.clone()));
        }
        if self.buffered() < HEADER_LEN {
            return None;
        }
        let prefix = self.buf.get(self.start..self.start + HEADER_LEN)?;
        let mut bytes = [0u8; HEADER_LEN];
        bytes.copy_from_slice(prefix);
        let len = u32::from_be_bytes(bytes);
        Some(check_frame_len(len, self.max_frame).map(|body| body + HEADER_LEN))
    }

    /// Gives back memory held beyond the bytes still buffered (e.g. after one large
    /// frame, on an idle connection).
    pub fn shrink(&mut self) {
        self.compact();
        self.buf.truncate(self.end);
        self.buf.shrink_to_fit();
    }

    /// Drops consumed bytes from the front of the buffer.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

//! A connection's input buffer driving a [`RequestParser`].

use std::io::{self, Read};

use super::{HttpError, Limits, ParseStatus, Request, RequestParser};

/// Initial buffer size: a typical request head fits, and an idle keep-alive connection
/// costs little.
const INITIAL_CAPACITY: usize = 4096;

/// Input side of one HTTP connection: bytes read from the socket go in, requests come out.
/// Consumed bytes are dropped; the buffer only grows to hold what one read or
/// [`ConnBuffer::feed`] brought plus one incomplete head (bodies are moved into the
/// request as they arrive), i.e. at most about one read plus `max_header_bytes`.
#[derive(Debug)]
pub struct ConnBuffer {
    /// Storage; `buf[start..end]` are received, unconsumed bytes. Kept zero-initialized
    /// past `end` so reads go straight into it without per-read clearing.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    parser: RequestParser,
}

impl ConnBuffer {
    /// An empty buffer whose parser enforces `limits`. Storage is allocated on first use.
    pub fn new(limits: Limits) -> Self {
        ConnBuffer {
            buf: Vec::new(),
            start: 0,
            end: 0,
            parser: RequestParser::new(limits),
        }
    }

    /// Free space to read into (never empty). Follow a read of `n` bytes with
    /// [`ConnBuffer::filled`]`(n)`.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                // Full of one incomplete head: grow. The parser refuses a head longer than
                // `max_header_bytes` once it sees it, so this stays bounded.
                let grown = (self.buf.len() * 2).max(INITIAL_CAPACITY);
                self.buf.resize(grown, 0);
            }
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// Records that `n` bytes were written at the start of [`ConnBuffer::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Appends bytes read elsewhere (the event worker reads every connection into one
    /// scratch buffer, so idle connections hold no read-sized buffer of their own).
    #[inline]
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        // The common case: it fits after what is buffered.
        let end = self.end + data.len();
        if let Some(dst) = self.buf.get_mut(self.end..end) {
            dst.copy_from_slice(data);
            self.end = end;
            return;
        }
        while !data.is_empty() {
            let space = self.spare();
            let n = space.len().min(data.len());
            let (now, rest) = data.split_at(n);
            if let Some(dst) = space.get_mut(..n) {
                dst.copy_from_slice(now);
            }
            self.filled(n);
            data = rest;
        }
    }

    /// One `read` from `source` into the buffer (a non-blocking socket, typically):
    /// `Ok(0)` is end of stream; `WouldBlock` and other errors are passed through.
    pub fn read_from<R: Read>(&mut self, source: &mut R) -> io::Result<usize> {
        let n = source.read(self.spare())?;
        self.filled(n);
        Ok(n)
    }

    /// The next complete request, if the buffered bytes hold one. Call in a loop until
    /// `Ok(None)` to serve pipelined requests; on `Err` write the error response and close.
    pub fn next_request(&mut self) -> Result<Option<Request>, HttpError> {
        let pending = self.buf.get(self.start..self.end).unwrap_or_default();
        if pending.is_empty() && self.parser.is_between_requests() {
            return Ok(None);
        }
        match self.parser.parse(pending)? {
            ParseStatus::Complete { request, consumed } => {
                self.consume(consumed);
                Ok(Some(request))
            }
            ParseStatus::Partial { consumed } => {
                self.consume(consumed);
                Ok(None)
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Hands a served request back so its buffers are reused.
    pub fn recycle(&mut self, request: Request) {
        self.parser.recycle(request);
    }

    /// See [`RequestParser::write_continue`]: call after `next_request` returned `Ok(None)`.
    pub fn write_continue(&mut self, out: &mut Vec<u8>) -> bool {
        self.parser.write_continue(out)
    }

    /// True when no byte of a next request has arrived: closing now cannot cut a request
    /// the client already started sending (the safe moment for a draining worker).
    pub fn is_idle(&self) -> bool {
        self.start == self.end && self.parser.is_between_requests()
    }

    /// Bytes received but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Releases the storage of an idle connection (e.g. after the idle period) so many
    /// parked keep-alive connections do not hold buffers.
    pub fn shrink_if_idle(&mut self) {
        if self.is_idle() {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }
}

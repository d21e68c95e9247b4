//! Incremental HTTP/1.x request parser for one connection.
//!
//! The head is parsed by `httparse` once its end (`\n\r\n` or `\n\n`) is in the buffer;
//! until then only the new bytes are scanned for that end, plus a bounded check of the
//! first line so garbage is refused at once. Body bytes are consumed as they arrive (copied
//! into the request, chunked framing decoded by a byte-level state machine), so a slow body
//! is never re-scanned.

use std::mem::MaybeUninit;

use super::request::{HeaderSpan, Span};
use super::{HttpError, Limits, Request, MAX_HEADERS_CAP};

/// Result of feeding bytes to [`RequestParser::parse`].
#[derive(Debug)]
pub enum ParseStatus {
    /// A whole request was read; `consumed` bytes of the input belong to it (the rest is
    /// the start of the next, pipelined request).
    Complete {
        /// The request.
        request: Request,
        /// Bytes of the input used by this request.
        consumed: usize,
    },
    /// More bytes are needed. The first `consumed` input bytes were taken (body bytes are
    /// copied into the pending request; head bytes are never taken before the head is
    /// complete) and must not be passed again.
    Partial {
        /// Bytes of the input used so far.
        consumed: usize,
    },
}

/// Where the parser is inside the current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a complete request head.
    Head,
    /// Reading a body of known length; `remaining` bytes still to come.
    Body { remaining: u64 },
    /// Decoding a chunked body.
    Chunked(Chunk),
}

/// Position inside chunked framing (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex chunk size.
    Size { value: u64, digits: u8 },
    /// Whitespace after the size, before `;` or CR.
    SizeSpace { value: u64 },
    /// Inside chunk extensions (ignored), until CR.
    Extension { value: u64 },
    /// CR of the size line seen, LF expected.
    SizeLf { value: u64 },
    /// Chunk data; `remaining` bytes still to come.
    Data { remaining: u64 },
    /// CR after chunk data expected.
    DataCr,
    /// LF after chunk data expected.
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerStart,
    /// Inside a trailer field line (ignored), until CR.
    TrailerLine,
    /// CR of a trailer line seen; `last` when the line was empty (end of the message).
    TrailerLf { last: bool },
}

/// Longest chunk-size line (size, extensions, CRLF) accepted: extensions are ignored, so
/// there is no reason to let a client stream them forever.
const MAX_CHUNK_LINE: usize = 4096;

/// Largest body buffer kept for reuse by [`RequestParser::recycle`].
const KEEP_BODY_CAPACITY: usize = 64 * 1024;

/// How much of the first line is checked before the head is complete (enough for a
/// method, a short target and the version; longer lines are checked once complete).
const EARLY_CHECK_BYTES: usize = 64;

/// Incremental request parser for one connection. Feed it the unconsumed input; it
/// returns one request at a time (call again with the rest for pipelined requests).
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    state: State,
    /// Offset in the (not yet consumed) head bytes from which to resume looking for the
    /// end of the head.
    scan_from: usize,
    /// Bytes of the current chunk-size line, or of the trailer section.
    line_bytes: usize,
    /// Request whose head is parsed and whose body is being read.
    current: Request,
    /// Buffers handed back by the caller, reused for the next request.
    spare: Option<Request>,
    /// The client sent `Expect: 100-continue` and no body bytes yet.
    continue_pending: bool,
}

impl Default for RequestParser {
    fn default() -> Self {
        RequestParser::new(Limits::default())
    }
}

impl RequestParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            state: State::Head,
            scan_from: 0,
            line_bytes: 0,
            current: Request::default(),
            spare: None,
            continue_pending: false,
        }
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// True between requests: no head has been parsed whose body is still incomplete.
    /// (Bytes of a partial head live in the caller's buffer; see [`super::ConnBuffer`].)
    pub fn is_between_requests(&self) -> bool {
        self.state == State::Head
    }

    /// Hands a finished request back so its buffers are reused for the next request.
    /// A body buffer above 64 KiB is dropped rather than kept, so one big
    /// upload does not pin memory for the rest of a keep-alive connection.
    pub fn recycle(&mut self, mut request: Request) {
        if request.body.capacity() > KEEP_BODY_CAPACITY {
            request.body = Vec::new();
        }
        self.spare = Some(request);
    }

    /// If the pending request asked for `100-continue` and its body has not started,
    /// appends the interim `HTTP/1.1 100 Continue` response to `out` (once) and returns
    /// true. Call it after a [`ParseStatus::Partial`].
    pub fn write_continue(&mut self, out: &mut Vec<u8>) -> bool {
        if !self.continue_pending {
            return false;
        }
        self.continue_pending = false;
        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        true
    }

    /// Parses from `input`, which must start with the first byte not yet consumed.
    /// After an error the parser is reset, but the connection should be closed.
    pub fn parse(&mut self, input: &[u8]) -> Result<ParseStatus, HttpError> {
        let result = self.parse_inner(input);
        if result.is_err() {
            self.state = State::Head;
            self.scan_from = 0;
            self.continue_pending = false;
        }
        result
    }

    fn parse_inner(&mut self, input: &[u8]) -> Result<ParseStatus, HttpError> {
        let mut consumed = 0;
        if self.state == State::Head {
            match self.parse_head(input)? {
                Some(head_len) => consumed = head_len,
                None => return Ok(ParseStatus::Partial { consumed: 0 }),
            }
        }
        let rest = input.get(consumed..).unwrap_or_default();
        if !rest.is_empty() {
            self.continue_pending = false;
        }
        let (used, done) = match self.state {
            State::Head => (0, true),
            State::Body { remaining } => {
                let take = remaining.min(rest.len() as u64);
                // `take <= rest.len()`, so the conversion and the slice are in range.
                let n = usize::try_from(take).unwrap_or(rest.len());
                self.current
                    .body
                    .extend_from_slice(rest.get(..n).unwrap_or_default());
                let remaining = remaining - take;
                self.state = State::Body { remaining };
                (n, remaining == 0)
            }
            State::Chunked(_) => self.decode_chunked(rest)?,
        };
        consumed += used;
        if done {
            self.state = State::Head;
            self.scan_from = 0;
            self.continue_pending = false;
            let request = std::mem::take(&mut self.current);
            Ok(ParseStatus::Complete { request, consumed })
        } else {
            Ok(ParseStatus::Partial { consumed })
        }
    }

    /// Returns the head length once the head is complete and valid (state moves on to the
    /// body), or `None` when more bytes are needed.
    fn parse_head(&mut self, input: &[u8]) -> Result<Option<usize>, HttpError> {
        let limit = self.limits.max_header_bytes;
        // On the first look at a head, httparse (SIMD) finds its end in the same pass that
        // parses it: the whole head nearly always arrives in one read. After a partial
        // head, only the newly arrived bytes are scanned for the end before parsing again.
        if self.scan_from > 0 {
            if let Err(resume) = find_head_end(input, self.scan_from) {
                self.scan_from = resume;
                if input.len() > limit {
                    return Err(HttpError::HeadTooLarge { limit });
                }
                check_first_line(input)?;
                return Ok(None);
            }
        }
        let max_headers = self.limits.max_headers.min(MAX_HEADERS_CAP);
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS_CAP];
        let slots = slots.get_mut(..max_headers).unwrap_or_default();
        let mut parsed = httparse::Request::new(&mut []);
        match parsed.parse_with_uninit_headers(input, slots) {
            Ok(httparse::Status::Complete(len)) => {
                if len > limit {
                    return Err(HttpError::HeadTooLarge { limit });
                }
                self.accept_head(input, len, &parsed)?;
                Ok(Some(len))
            }
            // Everything so far is valid. Remember how far the end is known to be absent
            // (past an end-looking blank line when it only ended leading empty lines).
            Ok(httparse::Status::Partial) => {
                if input.len() > limit {
                    return Err(HttpError::HeadTooLarge { limit });
                }
                self.scan_from = match find_head_end(input, self.scan_from) {
                    Ok(end) => end,
                    Err(resume) => resume,
                };
                Ok(None)
            }
            Err(httparse::Error::TooManyHeaders) => {
                Err(HttpError::TooManyHeaders { limit: max_headers })
            }
            Err(e) => Err(HttpError::Malformed(e)),
        }
    }

    /// Copies the head into the request being built and decides the body framing.
    fn accept_head(
        &mut self,
        input: &[u8],
        len: usize,
        parsed: &httparse::Request<'_, '_>,
    ) -> Result<(), HttpError> {
        let mut req = self.spare.take().unwrap_or_default();
        req.clear();
        let head = input.get(..len).unwrap_or_default();
        req.head.extend_from_slice(head);
        let base = head.as_ptr() as usize;
        let span_of = |part: &[u8]| {
            let start = (part.as_ptr() as usize).saturating_sub(base);
            // The head is at most `max_header_bytes` long; a limit above 4 GiB would be a
            // configuration error, saturate rather than wrap.
            let start = u32::try_from(start).unwrap_or(u32::MAX);
            Span {
                start,
                end: start.saturating_add(u32::try_from(part.len()).unwrap_or(u32::MAX)),
            }
        };

        let method = parsed.method.unwrap_or_default();
        let target = parsed.path.unwrap_or_default();
        req.method = span_of(method.as_bytes());
        req.target = span_of(target.as_bytes());
        req.query_start = target
            .find('?')
            .and_then(|q| u32::try_from(q).ok())
            .map(|q| req.target.start + q);
        req.path_start = req.target.start + absolute_form_prefix(target);
        req.version = parsed.version.unwrap_or(1);

        let mut framing = Framing::default();
        for h in parsed.headers.iter() {
            let value = trim_ows(h.value);
            req.headers.push(HeaderSpan {
                name: span_of(h.name.as_bytes()),
                value: span_of(value),
            });
            framing.observe(h.name, value)?;
        }

        req.keep_alive = if req.version >= 1 {
            !framing.close
        } else {
            framing.keep_alive && !framing.close
        };

        self.state = framing.body_state(req.version, &self.limits)?;
        self.continue_pending = framing.expect_continue
            && req.version >= 1
            && self.state != State::Head
            && self.state != State::Body { remaining: 0 };
        if self.state == (State::Body { remaining: 0 }) {
            self.state = State::Head;
        }
        if let State::Body { remaining } = self.state {
            // Bounded by `max_body_bytes` (checked above), and by 64 KiB so an announced
            // body that never comes does not pin memory.
            let hint = usize::try_from(remaining).unwrap_or(0).min(64 * 1024);
            req.body.reserve(hint);
        }
        self.line_bytes = 0;
        self.current = req;
        Ok(())
    }

    /// Runs the chunked decoder over `input`; returns (bytes used, message complete).
    fn decode_chunked(&mut self, input: &[u8]) -> Result<(usize, bool), HttpError> {
        let State::Chunked(mut chunk) = self.state else {
            return Ok((0, true));
        };
        let max_body = self.limits.max_body_bytes;
        let mut i = 0;
        while i < input.len() {
            if let Chunk::Data { remaining } = chunk {
                let avail = input.get(i..).unwrap_or_default();
                let take = remaining.min(avail.len() as u64);
                let n = usize::try_from(take).unwrap_or(avail.len());
                self.current
                    .body
                    .extend_from_slice(avail.get(..n).unwrap_or_default());
                i += n;
                chunk = if take == remaining {
                    Chunk::DataCr
                } else {
                    Chunk::Data {
                        remaining: remaining - take,
                    }
                };
                continue;
            }
            let Some(&b) = input.get(i) else { break };
            i += 1;
            match chunk {
                Chunk::Size { .. }
                | Chunk::SizeSpace { .. }
                | Chunk::Extension { .. }
                | Chunk::SizeLf { .. } => {
                    self.line_bytes += 1;
                    if self.line_bytes > MAX_CHUNK_LINE {
                        self.state = State::Chunked(chunk);
                        return Err(HttpError::BadChunk("chunk size line too long"));
                    }
                }
                Chunk::TrailerStart | Chunk::TrailerLine | Chunk::TrailerLf { .. } => {
                    self.line_bytes += 1;
                    if self.line_bytes > self.limits.max_header_bytes {
                        return Err(HttpError::HeadTooLarge {
                            limit: self.limits.max_header_bytes,
                        });
                    }
                }
                _ => {}
            }
            chunk = match (chunk, b) {
                (Chunk::Size { value, digits }, _) if b.is_ascii_hexdigit() => {
                    // 15 hex digits already exceed any sane body limit; this also keeps
                    // the accumulation far from overflow.
                    if digits >= 15 {
                        return Err(HttpError::BadChunk("chunk size too large"));
                    }
                    let value = value * 16 + u64::from(hex_digit(b));
                    let total = self.current.body.len() as u64 + value;
                    if total > max_body as u64 {
                        return Err(HttpError::BodyTooLarge {
                            length: total,
                            limit: max_body,
                        });
                    }
                    Chunk::Size {
                        value,
                        digits: digits + 1,
                    }
                }
                (Chunk::Size { digits: 0, .. }, _) => {
                    return Err(HttpError::BadChunk("missing chunk size"));
                }
                (Chunk::Size { value, .. } | Chunk::SizeSpace { value }, b' ' | b'\t') => {
                    Chunk::SizeSpace { value }
                }
                (Chunk::Size { value, .. } | Chunk::SizeSpace { value }, b';') => {
                    Chunk::Extension { value }
                }
                (
                    Chunk::Size { value, .. }
                    | Chunk::SizeSpace { value }
                    | Chunk::Extension { value },
                    b'\r',
                ) => Chunk::SizeLf { value },
                (Chunk::Size { .. } | Chunk::SizeSpace { .. }, _) => {
                    return Err(HttpError::BadChunk("invalid character in chunk size"));
                }
                (Chunk::Extension { .. }, b'\n' | 0) => {
                    return Err(HttpError::BadChunk("invalid chunk extension"));
                }
                (Chunk::Extension { value }, _) => Chunk::Extension { value },
                (Chunk::SizeLf { value }, b'\n') => {
                    self.line_bytes = 0;
                    if value == 0 {
                        Chunk::TrailerStart
                    } else {
                        Chunk::Data { remaining: value }
                    }
                }
                (Chunk::DataCr, b'\r') => Chunk::DataLf,
                (Chunk::DataLf, b'\n') => Chunk::Size {
                    value: 0,
                    digits: 0,
                },
                (Chunk::TrailerStart, b'\r') => Chunk::TrailerLf { last: true },
                (Chunk::TrailerStart | Chunk::TrailerLine, b'\n' | 0) => {
                    return Err(HttpError::BadChunk("invalid trailer line"));
                }
                (Chunk::TrailerLine, b'\r') => Chunk::TrailerLf { last: false },
                (Chunk::TrailerStart | Chunk::TrailerLine, _) => Chunk::TrailerLine,
                (Chunk::TrailerLf { last: true }, b'\n') => {
                    self.state = State::Head;
                    return Ok((i, true));
                }
                (Chunk::TrailerLf { last: false }, b'\n') => Chunk::TrailerStart,
                (Chunk::SizeLf { .. } | Chunk::TrailerLf { .. }, _) => {
                    return Err(HttpError::BadChunk("expected LF after CR"));
                }
                (Chunk::DataCr | Chunk::DataLf, _) => {
                    return Err(HttpError::BadChunk("missing CRLF after chunk data"));
                }
                (Chunk::Data { .. }, _) => {
                    return Err(HttpError::BadChunk("internal: data state in byte loop"));
                }
            };
        }
        self.state = State::Chunked(chunk);
        Ok((i, false))
    }
}

/// What the framing-related header fields said.
#[derive(Debug, Default)]
struct Framing {
    content_length: Option<u64>,
    /// Raw `Transfer-Encoding` values, joined with ", ".
    transfer_encoding: Option<String>,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl Framing {
    fn observe(&mut self, name: &str, value: &[u8]) -> Result<(), HttpError> {
        if name.eq_ignore_ascii_case("content-length") {
            for item in value.split(|&b| b == b',') {
                let n = parse_decimal(trim_ows(item)).ok_or_else(|| {
                    HttpError::BadContentLength(String::from_utf8_lossy(value).into_owned())
                })?;
                match self.content_length {
                    Some(first) if first != n => {
                        return Err(HttpError::ConflictingContentLength { first, second: n });
                    }
                    _ => self.content_length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let text = String::from_utf8_lossy(value);
            match &mut self.transfer_encoding {
                Some(all) => {
                    all.push_str(", ");
                    all.push_str(&text);
                }
                None => self.transfer_encoding = Some(text.into_owned()),
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim_ows(token);
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            self.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    fn body_state(&self, version: u8, limits: &Limits) -> Result<State, HttpError> {
        if let Some(te) = &self.transfer_encoding {
            if self.content_length.is_some() {
                return Err(HttpError::LengthAndTransferEncoding);
            }
            if version == 0 {
                return Err(HttpError::BadTransferEncoding(te.clone()));
            }
            let codings: Vec<&str> = te
                .split(',')
                .map(|c| c.trim_matches([' ', '\t']))
                .filter(|c| !c.is_empty())
                .collect();
            return match codings.as_slice() {
                [only] if only.eq_ignore_ascii_case("chunked") => Ok(State::Chunked(Chunk::Size {
                    value: 0,
                    digits: 0,
                })),
                [.., last] if last.eq_ignore_ascii_case("chunked") => {
                    Err(HttpError::UnsupportedTransferEncoding(te.clone()))
                }
                _ => Err(HttpError::BadTransferEncoding(te.clone())),
            };
        }
        match self.content_length {
            Some(n) if n > limits.max_body_bytes as u64 => Err(HttpError::BodyTooLarge {
                length: n,
                limit: limits.max_body_bytes,
            }),
            Some(n) => Ok(State::Body { remaining: n }),
            None => Ok(State::Head),
        }
    }
}

/// Finds the end of the head (just past `\n\r\n` or `\n\n`) searching from `from`.
/// `Err(resume)` gives where the next search can start without missing an end.
fn find_head_end(buf: &[u8], from: usize) -> Result<usize, usize> {
    let mut i = from.min(buf.len());
    while let Some(pos) = buf
        .get(i..)
        .and_then(|s| s.iter().position(|&b| b == b'\n'))
    {
        let nl = i + pos;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Ok(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Ok(nl + 3),
            (None, _) | (Some(b'\r'), None) => return Err(nl),
            _ => i = nl + 1,
        }
    }
    Err(buf.len())
}

/// Refuses early what cannot become an HTTP/1.x request head (TLS, binary, the HTTP/2
/// preface's first line), looking at no more than [`EARLY_CHECK_BYTES`].
fn check_first_line(input: &[u8]) -> Result<(), HttpError> {
    let window = input
        .get(..input.len().min(EARLY_CHECK_BYTES))
        .unwrap_or(input);
    let cut = window
        .iter()
        .position(|&b| b == b'\n')
        .map_or(window.len(), |p| p + 1);
    let line = window.get(..cut).unwrap_or(window);
    let mut no_headers = [];
    match httparse::Request::new(&mut no_headers).parse(line) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => Ok(()),
        Err(e) => Err(HttpError::Malformed(e)),
    }
}

/// Length of `scheme://authority` in an absolute-form target (0 otherwise).
fn absolute_form_prefix(target: &str) -> u32 {
    // Origin form (`/path`) and `*` are by far the most common: no search for them.
    if target.starts_with('/') || target == "*" {
        return 0;
    }
    let Some(after_scheme) = target.find("://").map(|i| i + 3) else {
        return 0;
    };
    let rest = target.get(after_scheme..).unwrap_or_default();
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    u32::try_from(after_scheme + authority_len).unwrap_or(0)
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Parses a non-empty run of ASCII digits (no sign, no spaces) without overflow.
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

fn hex_digit(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

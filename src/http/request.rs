//! A parsed request: one copy of the head bytes plus offsets into it, and the body.

use std::borrow::Cow;

use super::ResponseMeta;

/// Byte range `start..end` inside [`Request::head`]; `u32` keeps the header table small.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) end: u32,
}

impl Span {
    fn get<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes
            .get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// One header field as offsets into the head copy.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HeaderSpan {
    pub(super) name: Span,
    pub(super) value: Span,
}

/// One HTTP/1.x request. Its buffers can be handed back to the parser
/// ([`super::RequestParser::recycle`]) so a keep-alive connection allocates nothing per
/// request in the steady state.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The raw request head as received (request line and header fields).
    pub(super) head: Vec<u8>,
    pub(super) method: Span,
    pub(super) target: Span,
    /// Offset of the '?' in the target, if any (absolute position in `head`).
    pub(super) query_start: Option<u32>,
    /// Where the path starts inside the target (after scheme and authority when the
    /// target is in absolute form).
    pub(super) path_start: u32,
    pub(super) version: u8,
    pub(super) headers: Vec<HeaderSpan>,
    pub(super) body: Vec<u8>,
    pub(super) keep_alive: bool,
}

impl Request {
    /// Empties the request while keeping its allocations for reuse.
    pub(super) fn clear(&mut self) {
        self.head.clear();
        self.headers.clear();
        self.body.clear();
        self.method = Span::default();
        self.target = Span::default();
        self.query_start = None;
        self.path_start = 0;
        self.version = 1;
        self.keep_alive = false;
    }

    fn text(&self, span: Span) -> &str {
        // The parser only records spans that httparse returned as `&str` (method, target,
        // header names), so this never falls back in practice.
        std::str::from_utf8(span.get(&self.head)).unwrap_or_default()
    }

    /// The method token, e.g. `GET`.
    pub fn method(&self) -> &str {
        self.text(self.method)
    }

    /// The request target exactly as sent, e.g. `/slow?ms=5`.
    pub fn target(&self) -> &str {
        self.text(self.target)
    }

    /// The path part of the target, without the query, e.g. `/slow`. For an absolute-form
    /// target (`http://host/p`) the scheme and authority are skipped; `*` stays `*`.
    pub fn path(&self) -> &str {
        let end = self.query_start.unwrap_or(self.target.end);
        let path = self.text(Span {
            start: self.path_start,
            end,
        });
        if path.is_empty() && self.path_start > self.target.start {
            "/"
        } else {
            path
        }
    }

    /// The raw (still percent-encoded) query string after `?`, if the target has one.
    pub fn query(&self) -> Option<&str> {
        self.query_start.map(|q| {
            self.text(Span {
                start: q + 1,
                end: self.target.end,
            })
        })
    }

    /// The HTTP minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// All header fields in order, as (name as sent, value bytes without surrounding
    /// whitespace).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers
            .iter()
            .map(move |h| (self.text(h.name), h.value.get(&self.head)))
    }

    /// The value of the first header field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.get(&self.head).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value.get(&self.head))
    }

    /// Like [`Request::header`], but only if the value is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first query parameter named `name`, percent-decoded (`+` means a space, as in
    /// HTML forms; invalid escapes are kept literally; invalid UTF-8 is replaced).
    /// A parameter without `=` has the empty value.
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        let query = self.query()?;
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .find_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key) == name).then(|| percent_decode(value))
            })
    }

    /// The request body (decoded from chunked framing when it was chunked).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Whether the client wants the connection kept open: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// What [`super::Response::write_to`] needs to know about this request: version,
    /// keep-alive, and whether it is a HEAD (no body is sent). No `Date` header.
    pub fn response_meta(&self) -> ResponseMeta<'static> {
        ResponseMeta {
            version: self.version,
            keep_alive: self.keep_alive,
            head: self.method() == "HEAD",
            date: None,
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes and `+`; borrows when there is nothing to decode.
pub(super) fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(err) => Cow::Owned(String::from_utf8_lossy(err.as_bytes()).into_owned()),
    }
}

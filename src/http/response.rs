//! Responses and their serialization.

use std::borrow::Cow;

/// Per-request facts the serializer needs (see [`super::Request::response_meta`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseMeta<'a> {
    /// The request's HTTP minor version (0 or 1): a 1.0 client that keeps the connection
    /// open is told so with `Connection: keep-alive`.
    pub version: u8,
    /// Keep the connection open after this response. The caller may clear it (draining
    /// worker, `max_request` reached) to send `Connection: close`.
    pub keep_alive: bool,
    /// The request was HEAD: headers (with the body's `Content-Length`) but no body.
    pub head: bool,
    /// Value of the `Date` header (e.g. from [`super::HttpDate`]); `None` sends none.
    pub date: Option<&'a str>,
}

impl Default for ResponseMeta<'_> {
    /// An HTTP/1.1 keep-alive, non-HEAD request, no `Date`.
    fn default() -> Self {
        ResponseMeta {
            version: 1,
            keep_alive: true,
            head: false,
            date: None,
        }
    }
}

/// An HTTP response. Static bodies and header values are borrowed, so the common
/// `Response::text(200, "hello")` allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    content_type: Option<Cow<'static, str>>,
    headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    body: Cow<'static, [u8]>,
    close: bool,
}

fn str_body(body: Cow<'static, str>) -> Cow<'static, [u8]> {
    match body {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// True for statuses that never carry a body (RFC 9110 §6.4.1).
fn bodiless(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

impl Response {
    /// A response with no body and no content type.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Cow::Borrowed(&[]),
            close: false,
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<Cow<'static, str>>) -> Self {
        Response::new(status)
            .content_type("text/plain; charset=utf-8")
            .body(str_body(body.into()))
    }

    /// An `application/json` response; `body` is sent as is.
    pub fn json(status: u16, body: impl Into<Cow<'static, str>>) -> Self {
        Response::new(status)
            .content_type("application/json")
            .body(str_body(body.into()))
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Cow<'static, [u8]>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the `Content-Type` header.
    pub fn content_type(mut self, value: impl Into<Cow<'static, str>>) -> Self {
        self.content_type = Some(value.into());
        self
    }

    /// Asks for the connection to be closed after this response (`Connection: close`).
    pub fn close(mut self) -> Self {
        self.close = true;
        self
    }

    /// Adds a header field. Framing fields are owned by the serializer: `Content-Length`
    /// and `Transfer-Encoding` are ignored, `Connection: close` is the same as
    /// [`Response::close`] (other `Connection` values are ignored), `Content-Type` replaces
    /// the content type. A name or value containing CR, LF or NUL is dropped (it would
    /// let a value inject header lines).
    pub fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        let name = name.into();
        let value = value.into();
        let unsafe_byte = |s: &str| s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
        if name.is_empty() || unsafe_byte(&name) || unsafe_byte(&value) || name.contains(':') {
            return self;
        }
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            return self;
        }
        if name.eq_ignore_ascii_case("connection") {
            if value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                self.close = true;
            }
            return self;
        }
        if name.eq_ignore_ascii_case("content-type") {
            self.content_type = Some(value);
            return self;
        }
        self.headers.push((name, value));
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body bytes.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Whether this response itself asks to close the connection.
    pub fn closes(&self) -> bool {
        self.close
    }

    /// Value of an extra header added with [`Response::header`] (case-insensitive), or the
    /// content type for `Content-Type`.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case("content-type") {
            return self.content_type.as_deref();
        }
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// Appends the serialized response to `out` and returns whether the connection stays
    /// open afterwards (`meta.keep_alive` and the response did not ask to close).
    ///
    /// Layout: status line, `Date`, `Content-Type`, extra headers in order,
    /// `Content-Length` (not for 1xx/204/304), `Connection` (`close`, or `keep-alive` for
    /// an HTTP/1.0 client that keeps the connection), blank line, body (not for HEAD).
    pub fn write_to(&self, out: &mut Vec<u8>, meta: ResponseMeta<'_>) -> bool {
        // A status outside 100..=999 cannot be written as three digits: answer 500.
        let status = if (100..=999).contains(&self.status) {
            self.status
        } else {
            500
        };
        let keep_alive = meta.keep_alive && !self.close;
        let no_body = bodiless(status);
        let mut len_buf = [0u8; 20];
        let len_text = format_decimal(self.body.len() as u64, &mut len_buf);

        out.reserve(128 + self.body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        // 100..=999: exactly three digits; each `% 10` fits a u8.
        out.extend_from_slice(&[
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ]);
        out.push(b' ');
        out.extend_from_slice(reason_phrase(status).as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(date) = meta.date {
            out.extend_from_slice(b"Date: ");
            out.extend_from_slice(date.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(ct) = &self.content_type {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(ct.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !no_body {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(len_text);
            out.extend_from_slice(b"\r\n");
        }
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if meta.version == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !no_body && !meta.head {
            out.extend_from_slice(&self.body);
        }
        keep_alive
    }
}

/// Writes `n` in decimal at the end of `buf` and returns the digits.
fn format_decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        // `n % 10 < 10`, so the cast cannot truncate.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The reason phrase for a status code (RFC 9110 wording; empty when unknown, which the
/// status line grammar allows).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

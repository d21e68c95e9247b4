//! Protocol errors: each maps to the status code answered before closing the connection.

use super::{Response, ResponseMeta};

/// Why a request was rejected. The connection must be closed after writing
/// [`HttpError::response`]: the byte stream can no longer be trusted to be in sync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The request line or a header line is not HTTP/1.x (includes the HTTP/2 preface,
    /// TLS handshakes and other garbage).
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    /// The request line plus header section (or the chunked trailer section) is too big.
    #[error("request header section exceeds {limit} bytes")]
    HeadTooLarge {
        /// The configured `max_header_bytes`.
        limit: usize,
    },
    /// More header fields than allowed.
    #[error("request has more than {limit} header fields")]
    TooManyHeaders {
        /// The configured `max_headers`.
        limit: usize,
    },
    /// The body is (or is announced to be) larger than allowed.
    #[error("request body of at least {length} bytes exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// Announced or accumulated body size that crossed the limit.
        length: u64,
        /// The configured `max_body_bytes`.
        limit: usize,
    },
    /// A `Content-Length` value that is not a decimal number.
    #[error("invalid Content-Length value {0:?}")]
    BadContentLength(String),
    /// Several `Content-Length` values that disagree.
    #[error("conflicting Content-Length values {first} and {second}")]
    ConflictingContentLength {
        /// The first value seen.
        first: u64,
        /// The differing value.
        second: u64,
    },
    /// Both `Content-Length` and `Transfer-Encoding` (a smuggling vector, RFC 9112 §6.3).
    #[error("request has both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    /// `Transfer-Encoding` whose final coding is not `chunked`, or in an HTTP/1.0 request.
    #[error("invalid Transfer-Encoding {0:?}")]
    BadTransferEncoding(String),
    /// A coding list such as `gzip, chunked`: well-formed but not decoded here.
    #[error("unsupported Transfer-Encoding {0:?}")]
    UnsupportedTransferEncoding(String),
    /// A chunked body that does not follow the chunk grammar.
    #[error("bad chunked body: {0}")]
    BadChunk(&'static str),
}

impl HttpError {
    /// The status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge { .. } | HttpError::TooManyHeaders { .. } => 431,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::UnsupportedTransferEncoding(_) => 501,
            HttpError::Malformed(_)
            | HttpError::BadContentLength(_)
            | HttpError::ConflictingContentLength { .. }
            | HttpError::LengthAndTransferEncoding
            | HttpError::BadTransferEncoding(_)
            | HttpError::BadChunk(_) => 400,
        }
    }

    /// The error response: a short text body naming the status, with `Connection: close`.
    pub fn response(&self) -> Response {
        let status = self.status();
        let body = match status {
            431 => "Request Header Fields Too Large\n",
            413 => "Content Too Large\n",
            501 => "Not Implemented\n",
            _ => "Bad Request\n",
        };
        Response::text(status, body).close()
    }

    /// Appends [`HttpError::response`] to `out` (optionally with a `Date` header). The
    /// caller then flushes `out` and closes the connection.
    pub fn write_response(&self, out: &mut Vec<u8>, date: Option<&str>) {
        let meta = ResponseMeta {
            version: 1,
            keep_alive: false,
            head: false,
            date,
        };
        self.response().write_to(out, meta);
    }
}

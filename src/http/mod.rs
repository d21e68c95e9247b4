//! HTTP/1.1 protocol layer for the "not_tars" adapters: pure parsing and serialization.
//!
//! Nothing here touches a socket or a process: the event worker's HTTP protocol
//! (`src/worker/http.rs`) feeds the bytes it reads into a [`ConnBuffer`], gets
//! [`Request`]s out, calls the handler and serializes the [`Response`] with
//! [`Response::write_to`] into the connection's output. [`RequestParser`] is the
//! parser underneath, for callers that keep their own buffer. A protocol error is an [`HttpError`] whose [`HttpError::response`] is
//! written before closing that one connection.
//!
//! How a connection loop drives it (here the "socket" is a byte slice):
//!
//! ```
//! use tarsfork::http::{ConnBuffer, HttpDate, Limits, Response};
//! let mut socket: &[u8] = b"GET / HTTP/1.1\r\n\r\nGET /x HTTP/1.0\r\n\r\n";
//! let date = HttpDate::new(std::time::SystemTime::now()); // `update` it once per loop turn
//! let (mut conn, mut out, mut open) = (ConnBuffer::new(Limits::default()), Vec::new(), true);
//! while open && conn.read_from(&mut socket).unwrap() > 0 {   // on WouldBlock: wait for readiness
//!     loop {
//!         match conn.next_request() {
//!             Ok(Some(req)) => {
//!                 let mut meta = req.response_meta();
//!                 meta.date = Some(date.as_str()); // and `meta.keep_alive = false` when draining
//!                 open = Response::text(200, "hello").write_to(&mut out, meta);
//!                 conn.recycle(req);
//!                 if !open { break; } // flush `out`, then close
//!             }
//!             Ok(None) => { conn.write_continue(&mut out); break; }
//!             Err(e) => { e.write_response(&mut out, Some(date.as_str())); open = false; break; }
//!         }
//!     }
//! }
//! assert_eq!(out.windows(5).filter(|w| w == b"hello").count(), 2);
//! assert!(!open); // the HTTP/1.0 request did not ask for keep-alive
//! ```
//!
//! Choices where HTTP leaves room:
//! - `Expect: 100-continue` is answered: after a `Partial` the caller asks
//!   [`RequestParser::write_continue`] (or [`ConnBuffer::write_continue`]) whether to send
//!   `HTTP/1.1 100 Continue` now. A body announced over the limit is refused with 413
//!   before the client sends it. Other expectations are ignored.
//! - Chunked trailers are read and discarded; their size counts against the header limit.
//! - Chunk lines must end in CRLF (no bare LF there: it is a request-smuggling vector);
//!   the request head itself accepts what `httparse` accepts.
//! - `Transfer-Encoding` in an HTTP/1.0 request, or together with `Content-Length`, is a
//!   400; a coding list other than plain `chunked` is 501 when it ends in `chunked` and
//!   400 otherwise (the body length cannot be known).
//! - A missing `Host` header is tolerated (RFC 9112 says 400; raw test clients omit it).
//! - Responses always carry `HTTP/1.1` in the status line, as nginx does for 1.0 clients.

mod conn;
mod date;
mod error;
mod parser;
mod request;
mod response;

pub use conn::ConnBuffer;
pub use date::HttpDate;
pub use error::HttpError;
pub use parser::{ParseStatus, RequestParser};
pub use request::Request;
pub use response::{reason_phrase, Response, ResponseMeta};

/// Size limits applied while parsing one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes in the request line plus header section (and, separately, in chunked
    /// trailers); more is answered with 431.
    pub max_header_bytes: usize,
    /// Most bytes of (decoded) request body; more is answered with 413.
    pub max_body_bytes: usize,
    /// Most header fields; more is answered with 431. Capped at [`MAX_HEADERS_CAP`].
    pub max_headers: usize,
}

/// Hard upper bound on [`Limits::max_headers`] (the parser's on-stack header array size).
pub const MAX_HEADERS_CAP: usize = 256;

impl Default for Limits {
    /// 8 KiB of head (nginx's `large_client_header_buffers` line size), 1 MiB of body
    /// (nginx's `client_max_body_size`), 100 header fields (hyper's default).
    fn default() -> Self {
        Limits {
            max_header_bytes: 8 * 1024,
            max_body_bytes: 1024 * 1024,
            max_headers: 100,
        }
    }
}

#[cfg(test)]
mod tests;

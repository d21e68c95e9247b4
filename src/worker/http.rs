//! HTTP/1.1 on `protocol=not_tars` adapters: bytes go into an [`http::ConnBuffer`],
//! each complete request goes to the service's `on_request`, and the response is
//! serialized into the connection's output, pipelined requests in order.
//!
//! Draining: the next request on each keep-alive connection is answered with
//! `Connection: close` (the worker's [`Host::end`] says when); the worker closes
//! connections that stay between requests. A malformed request is answered with its
//! 4xx/5xx and closes this connection only. `Expect: 100-continue` is answered as soon
//! as the head is in.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use crate::http::{self, ConnBuffer, HttpDate, Limits, Request};
use crate::platform::callstats::Call;

use super::protocol::{Host, Opener, Output, Protocol, Switch};

/// One HTTP connection.
struct Http {
    input: ConnBuffer,
    /// The `Date` header value, shared by the worker's HTTP connections and formatted
    /// at most once a second.
    date: Rc<RefCell<HttpDate>>,
}

/// The opener of HTTP connections whose requests are held to `limits`.
pub(super) fn opener(limits: Limits) -> Opener {
    let date = Rc::new(RefCell::new(HttpDate::new(SystemTime::now())));
    Rc::new(move || {
        Box::new(Http {
            input: ConnBuffer::new(limits),
            date: Rc::clone(&date),
        })
    })
}

impl Protocol for Http {
    fn on_input(
        &mut self,
        input: &[u8],
        out: &mut Output,
        host: &mut Host<'_, '_>,
    ) -> Option<Switch> {
        self.input.feed(input);
        // Not borrowed elsewhere: the worker serves one connection at a time.
        let mut date = self.date.borrow_mut();
        date.update(host.wall());
        while !out.is_closing() && !out.is_full() {
            match self.input.next_request() {
                Ok(Some(request)) => {
                    if !answer(&request, out.buf(), host, date.as_str()) {
                        out.close();
                    }
                    self.input.recycle(request);
                }
                Ok(None) => {
                    self.input.write_continue(out.buf());
                    break;
                }
                Err(err) => {
                    err.write_response(out.buf(), Some(date.as_str()));
                    out.close();
                    break;
                }
            }
        }
        None
    }

    fn is_idle(&self) -> bool {
        self.input.is_idle()
    }
}

/// Answers one request into `out`; false when the connection must close after it.
fn answer(request: &Request, out: &mut Vec<u8>, host: &mut Host<'_, '_>, date: &str) -> bool {
    let started = host.begin();
    let response: http::Response = (host.service().on_request)(request, host.ctx());
    let winding_down = host.end(started, || Call::http(request.path(), response.status()));
    let mut meta = request.response_meta();
    meta.keep_alive = request.keep_alive() && !winding_down;
    meta.date = Some(date);
    response.write_to(out, meta)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::worker::tests::{app, hello, host};

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    /// A connection of a worker's HTTP adapter.
    fn conn() -> Http {
        Http {
            input: ConnBuffer::new(Limits::default()),
            date: Rc::new(RefCell::new(HttpDate::new(SystemTime::now()))),
        }
    }

    /// Serves `reads` one after the other on `http`, in a worker that drains after
    /// `max_request` requests (0: never); returns the output as text.
    fn serve(http: &mut Http, reads: &[&[u8]], max_request: u64) -> (String, Output) {
        let service = hello();
        let mut app = app(&service, max_request);
        // RFC 9110's example date, so the header can be checked.
        app.wall = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let mut out = Output::default();
        for read in reads {
            assert!(http.on_input(read, &mut out, &mut host(&mut app)).is_none());
        }
        (String::from_utf8(out.buf().clone()).unwrap(), out)
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_with_the_turns_date() {
        let both = [GET, GET].concat();
        let (text, out) = serve(&mut conn(), &[&both], 0);
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
        assert_eq!(
            text.matches("Date: Sun, 06 Nov 1994 08:49:37 GMT").count(),
            2,
            "{text}"
        );
        assert!(!text.contains("Connection: close"), "{text}");
        assert!(!out.is_closing());
    }

    #[test]
    fn the_request_reaching_max_request_is_answered_with_close_and_ends_the_connection() {
        let both = [GET, GET].concat();
        let (text, out) = serve(&mut conn(), &[&both], 1);
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 1, "{text}");
        assert!(text.contains("Connection: close"), "{text}");
        assert!(out.is_closing());
    }

    #[test]
    fn a_draining_worker_answers_the_next_request_with_close() {
        let service = hello();
        let mut app = app(&service, 0);
        app.requests.set_draining();
        let mut out = Output::default();
        let both = [GET, GET].concat();
        conn().on_input(&both, &mut out, &mut host(&mut app));
        let text = String::from_utf8(out.buf().clone()).unwrap();
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 1, "{text}");
        assert!(text.contains("Connection: close"), "{text}");
        assert!(out.is_closing());
    }

    #[test]
    fn a_malformed_request_gets_400_and_closes() {
        let (text, out) = serve(&mut conn(), &[b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"], 0);
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(out.is_closing());
    }

    #[test]
    fn a_head_split_over_reads_is_answered_once_complete_and_is_not_idle_meanwhile() {
        let (head, tail) = GET.split_at(10);
        let mut http = conn();
        assert!(http.is_idle());
        let (text, _) = serve(&mut http, &[head], 0);
        assert!(text.is_empty());
        assert!(!http.is_idle());
        let (text, _) = serve(&mut http, &[tail], 0);
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 1, "{text}");
        assert!(http.is_idle());
    }

    #[test]
    fn expect_100_continue_is_answered_when_the_head_is_in() {
        let head =
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n";
        let mut http = conn();
        let (text, _) = serve(&mut http, &[head], 0);
        assert_eq!(text, "HTTP/1.1 100 Continue\r\n\r\n");
        assert!(!http.is_idle());
        let (text, _) = serve(&mut http, &[b"hi"], 0);
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(http.is_idle());
    }
}

//! Request accounting of one event worker, written once for every protocol: the
//! scoreboard's busy stamp and request count, the call statistics, the served count
//! against `max_request`, and the clock read at the end of each request.

use crate::platform::callstats::{Call, CallRecord, Served};
use crate::scoreboard::ProcHandle;
use crate::sys;

/// The request accounting and the clock of one event worker.
pub(crate) struct Requests<'a> {
    handle: ProcHandle,
    stats: Option<Served<'a>>,
    /// The monotonic clock (ms), read when `poll` returns and after each request: the
    /// time of connection events and of the next request's start, without a clock
    /// read of their own.
    now: i64,
    served: u64,
    /// Requests after which the worker drains; 0: never.
    max_request: u64,
    /// The worker is draining: every answer from now on lets its connection close.
    draining: bool,
}

impl<'a> Requests<'a> {
    /// Accounting into `handle` (and `stats`, when on), draining after `max_request`
    /// requests (0: never).
    pub(crate) fn new(handle: ProcHandle, stats: Option<Served<'a>>, max_request: u64) -> Self {
        Requests {
            handle,
            stats,
            now: sys::monotonic_ms(),
            served: 0,
            max_request,
            draining: false,
        }
    }

    /// Reads the clock (once per loop turn) and returns it.
    pub(crate) fn tick(&mut self) -> i64 {
        self.now = sys::monotonic_ms();
        self.now
    }

    /// The clock as of the last [`Requests::tick`] or the end of the last request.
    pub(crate) fn now(&self) -> i64 {
        self.now
    }

    /// A request starts now; returns its start time.
    pub(crate) fn begin(&mut self) -> i64 {
        self.handle.begin_request(self.now);
        self.now
    }

    /// The request begun at `started` on a connection from `peer` to `port` was served;
    /// `call` says what it was (built only when statistics are on). True when its answer
    /// must let the connection close: the worker is draining or has now served its
    /// `max_request`.
    pub(crate) fn end<'c>(
        &mut self,
        started: i64,
        peer: &str,
        port: i32,
        call: impl FnOnce() -> Call<'c>,
    ) -> bool {
        self.handle.end_request();
        // The end of this request is the start of the next one in this turn.
        self.now = sys::monotonic_ms();
        if let Some(stats) = &self.stats {
            stats.record(&CallRecord {
                call: call(),
                peer,
                port,
                ms: self.now - started,
            });
        }
        self.served += 1;
        self.draining || self.max_reached()
    }

    /// True once `max_request` requests were served: the worker should drain.
    pub(crate) fn max_reached(&self) -> bool {
        self.max_request > 0 && self.served >= self.max_request
    }

    /// From now on every answer lets its connection close.
    pub(crate) fn set_draining(&mut self) {
        self.draining = true;
    }
}

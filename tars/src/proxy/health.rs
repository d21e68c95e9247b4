//! When an endpoint is taken out of rotation, and when it is tried again.
//!
//! The rule, beside TarsCpp 3.0.22's (`AdapterProxy::finishInvoke`, `checkActive`,
//! `addConnExc`, defaults in `CheckTimeoutInfo`):
//!
//! | | tarsfork ([`FailoverPolicy::default`]) | TarsCpp 3.0.22 |
//! |---|---|---|
//! | connect refused / failed / timed out | out at once; the call moves on to the next endpoint | out at once (`maxConnectExc` = 1) |
//! | failed calls in a row (timeout, or the connection lost before the reply) | out after 3 | out after 1 (`frequenceFailInvoke` = 1; with more, only once `minFrequenceFailTime` = 3 s has passed) |
//! | failure ratio | out when, within a 10 s window, ≥ 5 calls failed and they are ≥ 50 % of its calls | out when, within a 5 s window (`checkTimeoutInterval`), ≥ 1 timed out (`minTimeoutInvoke`) and ≥ 5 % (`radio`) |
//! | what counts as a failure | a timeout or a lost connection; a server's error code is an answer, so it does not count | any reply with `iRet` ≠ 0, and timeouts; not exceptions |
//! | back in | after 5 s out, the next call that picks it sends `tars_ping` first (timeout ≤ 1 s); any answer (even -3 from a server without `tars_ping`) puts it back, and the call goes on there; no answer keeps it out 5 s more and the call moves on | after 5 s (`tryTimeInterval`) the next call itself is sent there; its success puts it back |
//! | every endpoint out | each is tried anyway, probe first, before the call fails | a random one is tried |
//!
//! Why tarsfork waits for 3 failures where TarsCpp takes one: a blocking caller has
//! already paid for the timeout, and one long call (a legitimately slow request) should
//! not take a healthy endpoint away from every other caller of the process; the window
//! rule still catches an endpoint that fails every other call. Why the probe: the call
//! that would have been sent to a still-dead endpoint would fail (a timeout is never
//! retried, as the call may have run), while a lost ping costs nothing but its wait.

use std::time::{Duration, Instant};

/// The numbers of the failover rule (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverPolicy {
    /// Failed calls in a row that take an endpoint out.
    pub max_failures_in_row: u32,
    /// The window of the failure-ratio rule.
    pub window: Duration,
    /// The fewest failures in a window that take an endpoint out by ratio.
    pub window_min_failures: u32,
    /// The share of a window's calls that must have failed (0.0 to 1.0).
    pub window_failure_ratio: f64,
    /// How long an endpoint stays out before it is probed again.
    pub retry_after: Duration,
    /// The longest wait for a probe's `tars_ping` reply (the call's own timeout when
    /// that is shorter).
    pub probe_timeout: Duration,
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        FailoverPolicy {
            max_failures_in_row: 3,
            window: Duration::from_secs(10),
            window_min_failures: 5,
            window_failure_ratio: 0.5,
            retry_after: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(1),
        }
    }
}

/// What a caller may do with an endpoint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// In rotation: call it.
    Use,
    /// Out, and its retry time has come: probe it first (this caller holds the probe).
    Probe,
    /// Out: leave it alone.
    Skip,
}

/// Where an endpoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In rotation.
    In,
    /// Out until `retry_at`; `probing` while one caller probes it.
    Out { retry_at: Instant, probing: bool },
}

/// The health of one endpoint, as seen by this process.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    state: State,
    failures_in_row: u32,
    window_start: Instant,
    window_calls: u32,
    window_failures: u32,
}

impl Health {
    /// A new endpoint: in rotation, nothing counted.
    pub(crate) fn new(now: Instant) -> Health {
        Health {
            state: State::In,
            failures_in_row: 0,
            window_start: now,
            window_calls: 0,
            window_failures: 0,
        }
    }

    /// True while in rotation.
    pub(crate) fn is_in(&self) -> bool {
        self.state == State::In
    }

    /// May a call use the endpoint now? Hands out at most one probe at a time.
    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        match &mut self.state {
            State::In => Admit::Use,
            State::Out { retry_at, probing } if !*probing && now >= *retry_at => {
                *probing = true;
                Admit::Probe
            }
            State::Out { .. } => Admit::Skip,
        }
    }

    /// Takes a probe regardless of the retry time (every endpoint is out).
    pub(crate) fn force_probe(&mut self) {
        if let State::Out { probing, .. } = &mut self.state {
            *probing = true;
        }
    }

    /// A probe (or forced try) ended: back in, or out for another interval.
    pub(crate) fn probe_done(&mut self, ok: bool, now: Instant, policy: &FailoverPolicy) {
        if ok {
            *self = Health::new(now);
        } else {
            self.take_out(now, policy);
        }
    }

    /// Connecting failed: out at once.
    pub(crate) fn connect_failed(&mut self, now: Instant, policy: &FailoverPolicy) {
        self.take_out(now, policy);
    }

    /// A call on the endpoint ended (`failed`: timed out or lost its connection).
    /// Calls that end while it is out (sent before) change nothing.
    pub(crate) fn call_done(&mut self, failed: bool, now: Instant, policy: &FailoverPolicy) {
        if !self.is_in() {
            return;
        }
        if now.duration_since(self.window_start) >= policy.window {
            self.window_start = now;
            self.window_calls = 0;
            self.window_failures = 0;
        }
        self.window_calls += 1;
        if !failed {
            self.failures_in_row = 0;
            return;
        }
        self.failures_in_row += 1;
        self.window_failures += 1;
        let in_row = self.failures_in_row >= policy.max_failures_in_row;
        let by_ratio = self.window_failures >= policy.window_min_failures
            && f64::from(self.window_failures)
                >= policy.window_failure_ratio * f64::from(self.window_calls);
        if in_row || by_ratio {
            self.take_out(now, policy);
        }
    }

    fn take_out(&mut self, now: Instant, policy: &FailoverPolicy) {
        self.state = State::Out {
            retry_at: now + policy.retry_after,
            probing: false,
        };
        self.failures_in_row = 0;
        self.window_calls = 0;
        self.window_failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> FailoverPolicy {
        FailoverPolicy::default()
    }

    #[test]
    fn three_failures_in_a_row_take_it_out_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        h.call_done(true, t0, &policy());
        h.call_done(true, t0, &policy());
        h.call_done(false, t0, &policy());
        h.call_done(true, t0, &policy());
        h.call_done(true, t0, &policy());
        assert!(h.is_in());
        h.call_done(true, t0, &policy());
        assert!(!h.is_in());
        assert_eq!(h.admit(t0), Admit::Skip);
    }

    #[test]
    fn half_of_a_windows_calls_failing_takes_it_out() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        for _ in 0..4 {
            h.call_done(true, t0, &policy());
            h.call_done(false, t0, &policy());
        }
        assert!(h.is_in(), "4 failures are below the minimum of 5");
        h.call_done(true, t0, &policy());
        assert!(!h.is_in(), "5 failures of 9 calls");
    }

    #[test]
    fn a_new_window_forgets_the_old_failures() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        for _ in 0..4 {
            h.call_done(true, t0, &policy());
            h.call_done(false, t0, &policy());
        }
        let later = t0 + policy().window;
        h.call_done(true, later, &policy());
        assert!(h.is_in());
    }

    #[test]
    fn an_out_endpoint_gets_one_probe_after_the_retry_time() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        h.connect_failed(t0, &policy());
        assert_eq!(h.admit(t0), Admit::Skip);
        let due = t0 + policy().retry_after;
        assert_eq!(h.admit(due), Admit::Probe);
        assert_eq!(h.admit(due), Admit::Skip, "one probe at a time");
        h.probe_done(false, due, &policy());
        assert_eq!(h.admit(due), Admit::Skip);
        let next = due + policy().retry_after;
        assert_eq!(h.admit(next), Admit::Probe);
        h.probe_done(true, next, &policy());
        assert_eq!(h.admit(next), Admit::Use);
    }

    #[test]
    fn calls_ending_while_out_change_nothing() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        h.connect_failed(t0, &policy());
        h.call_done(false, t0, &policy());
        assert_eq!(h.admit(t0 + policy().retry_after), Admit::Probe);
    }
}

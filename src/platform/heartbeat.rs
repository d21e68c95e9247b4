//! keepAlive and reportVersion to tarsnode, sent by task worker 0 as framework work.
//!
//! tarsnode learns the server's pid only from keepAlive, and marks the server dead when
//! any adapter it knows (each `<…Adapter>` plus `AdminAdapter`) goes without one for
//! `heartTimeout`. So, every `keepalive-interval`: one keepAlive per adapter and one for
//! `AdminAdapter`, all with the master's pid — but only while at least one event worker
//! is up (an honest heartbeat: a server whose workers are all dead or in backoff stops
//! reporting). The schedule lives in shared memory, so a replaced task worker 0 goes on
//! where the old one stopped instead of sending a duplicate burst; `reportVersion` is
//! sent once per server start for the same reason.
//!
//! A node that is down or slow costs a bounded timeout per round inside the task
//! process and nothing else; the next round tries again.

use std::time::Duration;

use tarsfork_tars::framework::tars::{ServerFProxy, ServerInfo};
use tarsfork_tars::proxy::{CallError, Proxy};

use crate::platform::ADMIN_ADAPTER;
use crate::process::Shared;
use crate::scoreboard::Cell;
use crate::{log, sys};

/// Longest wait for tarsnode's answer to one keepAlive.
const CALL_TIMEOUT: Duration = Duration::from_millis(1000);

/// The version reported to tarsnode.
pub const VERSION: &str = concat!("tarsfork-", env!("CARGO_PKG_VERSION"));

/// The heartbeat job of task worker 0.
pub(crate) struct Heartbeat {
    node: ServerFProxy,
    app: String,
    server: String,
    adapters: Vec<String>,
    master_pid: i32,
    interval_ms: i64,
    next_due: Cell,
    version_sent: Cell,
}

impl Heartbeat {
    /// The job, if the config names a node (`server<node>`).
    pub(crate) fn new(shared: &Shared) -> Option<Heartbeat> {
        let s = &shared.settings;
        let node = s.node.as_ref()?;
        let Some(addr) = crate::platform::locator::first_tcp(&node.endpoints) else {
            log::error(&format!(
                "node {}: no usable endpoint; no keepAlive will be sent",
                node.name
            ));
            return None;
        };
        let mut proxy = Proxy::new(addr, &node.name);
        proxy.set_timeout(CALL_TIMEOUT);
        let mut adapters: Vec<String> = s.adapters.iter().map(|a| a.name.clone()).collect();
        adapters.push(ADMIN_ADAPTER.to_string());
        let cell = |name: &str| match shared.scoreboard.platform_cell(name) {
            Ok(c) => Some(c),
            Err(e) => {
                log::error(&format!("heartbeat state: {e}"));
                None
            }
        };
        Some(Heartbeat {
            node: ServerFProxy::new(proxy),
            app: s.app.clone(),
            server: s.server.clone(),
            adapters,
            master_pid: shared.master_pid,
            interval_ms: s.keepalive_interval.as_millis().max(1) as i64,
            next_due: cell("keepalive_next_ms")?,
            version_sent: cell("version_reported")?,
        })
    }

    /// Milliseconds until the next round is due.
    pub(crate) fn due_in(&self, now: i64) -> i64 {
        (self.next_due.load() - now).max(0)
    }

    /// Sends what is due. Cheap when nothing is.
    pub(crate) fn run_due(&mut self, shared: &Shared) {
        let now = sys::monotonic_ms();
        if now < self.next_due.load() {
            return;
        }
        self.next_due.store(now + self.interval_ms);
        if shared.scoreboard.live_workers() == 0 {
            log::warn("no event worker is up: keepAlive withheld");
            return;
        }
        if self.version_sent.load() == 0 {
            match self.node.report_version(&self.app, &self.server, VERSION) {
                Ok(_) => self.version_sent.store(1),
                Err(e) => {
                    log::warn(&format!("reportVersion to tarsnode failed: {e}"));
                    return;
                }
            }
        }
        for adapter in &self.adapters {
            let info = ServerInfo {
                application: self.app.clone(),
                server_name: self.server.clone(),
                pid: self.master_pid,
                adapter: adapter.clone(),
            };
            if let Err(e) = self.node.keep_alive(&info) {
                log::warn(&format!("keepAlive for {adapter} failed: {e}"));
                // A down or slow node: do not pay the timeout once per adapter.
                if matches!(
                    e,
                    CallError::Connect { .. } | CallError::Timeout { .. } | CallError::Io { .. }
                ) {
                    return;
                }
            }
        }
    }
}

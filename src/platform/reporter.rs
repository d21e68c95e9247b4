//! Task worker 0's reports, every `report-interval`: call statistics to tarsstat
//! (StatF.reportMicMsg, served calls with `bFromClient = false`, outgoing calls with
//! `true`) and properties to tarsproperty (PropertyF.reportPropMsg): the built-in ones
//! read from /proc and the scoreboard, and the application's. `stat` and `property`
//! are used as written when they carry `@tcp …`, else resolved through the locator.
//!
//! What a report takes is subtracted from the shared tables at the take, so calls
//! recorded during a flush wait for the next one. A report that cannot be sent (the
//! service is down) is dropped and logged; the next interval tries again.

use std::collections::BTreeMap;

use tarsfork_tars::framework::tars::{
    PropertyFProxy, StatFProxy, StatPropInfo, StatPropMsgBody, StatPropMsgHead,
};

use crate::platform::locator::Locator;
use crate::platform::procfs;
use crate::process::Shared;
use crate::scoreboard::Role;
use crate::{log, sys};

/// The built-in properties, as tarsproperty shows them.
pub const BUILTIN_PROPERTIES: [&str; 5] = [
    "tarsfork.memory.rss_kib",
    "tarsfork.cpu.percent",
    "tarsfork.workers",
    "tarsfork.connections",
    "tarsfork.requests",
];

/// The reporting job of task worker 0.
pub(crate) struct Reporter {
    locator: Locator,
    interval_ms: i64,
    next_ms: i64,
    cpu: Option<procfs::CpuSample>,
    requests: i64,
}

impl Reporter {
    /// The job, if there is anything to report to.
    pub(crate) fn new(shared: &Shared) -> Option<Reporter> {
        let c = &shared.settings.client;
        if c.stat.is_none() && c.property.is_none() {
            return None;
        }
        let interval_ms = c.report_interval.as_millis().max(1) as i64;
        Some(Reporter {
            locator: Locator::new(&shared.settings),
            interval_ms,
            next_ms: sys::monotonic_ms() + interval_ms,
            cpu: None,
            requests: total_requests(shared),
        })
    }

    /// Milliseconds until the next report.
    pub(crate) fn due_in(&self, now: i64) -> i64 {
        (self.next_ms - now).max(0)
    }

    /// Reports if due.
    pub(crate) fn run_due(&mut self, shared: &Shared) {
        let now = sys::monotonic_ms();
        if now < self.next_ms {
            return;
        }
        self.next_ms = now + self.interval_ms;
        self.report_stats(shared);
        self.report_properties(shared);
    }

    fn report_stats(&mut self, shared: &Shared) {
        let (Some(table), Some(obj)) = (&shared.stats, &shared.settings.client.stat) else {
            return;
        };
        let report = match table.take_report() {
            Ok(r) => r,
            Err(e) => {
                log::error(&format!("taking the call statistics failed: {e}"));
                return;
            }
        };
        if report.dropped > 0 {
            log::warn(&format!(
                "{} call record(s) did not fit the statistics table",
                report.dropped
            ));
        }
        if report.server.is_empty() && report.client.is_empty() {
            return;
        }
        let Some(proxy) = self.locator.proxy(obj) else {
            log::warn(&format!("{}: no address; statistics dropped", obj.name));
            return;
        };
        let mut stat = StatFProxy::new(proxy);
        for (entries, from_client) in [(report.server, false), (report.client, true)] {
            if entries.is_empty() {
                continue;
            }
            let map: BTreeMap<_, _> = entries.into_iter().collect();
            if let Err(e) = stat.report_mic_msg(&map, from_client) {
                log::warn(&format!(
                    "reportMicMsg failed ({} entries dropped): {e}",
                    map.len()
                ));
            }
        }
    }

    fn report_properties(&mut self, shared: &Shared) {
        let Some(obj) = &shared.settings.client.property else {
            return;
        };
        let s = &shared.settings;
        let template = StatPropMsgHead {
            module_name: s.full_name(),
            ip: s.localip.clone().unwrap_or_default(),
            i_property_ver: 1,
            ..StatPropMsgHead::default()
        };
        let mut msg: BTreeMap<StatPropMsgHead, StatPropMsgBody> = BTreeMap::new();
        for (name, policy, value) in self.builtin(shared) {
            let head = StatPropMsgHead {
                property_name: name.to_string(),
                ..template.clone()
            };
            let info = StatPropInfo {
                policy: policy.to_string(),
                value,
            };
            msg.insert(head, StatPropMsgBody { v_info: vec![info] });
        }
        if let Some(props) = &shared.props {
            match props.take_report(&template) {
                Ok(app) => msg.extend(app),
                Err(e) => log::error(&format!("taking the properties failed: {e}")),
            }
        }
        let Some(proxy) = self.locator.proxy(obj) else {
            log::warn(&format!("{}: no address; properties dropped", obj.name));
            return;
        };
        if let Err(e) = PropertyFProxy::new(proxy).report_prop_msg(&msg) {
            log::warn(&format!("reportPropMsg failed: {e}"));
        }
    }

    /// (name, policy, value) of each built-in property.
    fn builtin(&mut self, shared: &Shared) -> Vec<(&'static str, &'static str, String)> {
        let rows = shared.scoreboard.rows();
        let mut pids: Vec<u32> = rows
            .iter()
            .filter(|r| r.pid > 0)
            .map(|r| r.pid as u32)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        let mem = procfs::tree_memory(&pids);
        let sample = procfs::sample_cpu(&pids);
        let cpu = self
            .cpu
            .as_ref()
            .and_then(|earlier| procfs::cpu_percent(earlier, &sample))
            .unwrap_or(0.0);
        self.cpu = Some(sample);
        let workers = rows
            .iter()
            .filter(|r| r.role == Some(Role::EventWorker) && r.pid > 0)
            .count();
        let conns: i64 = shared
            .scoreboard
            .adapter_connections()
            .iter()
            .map(|(_, n)| n)
            .sum();
        let total = total_requests(shared);
        let delta = (total - self.requests).max(0);
        self.requests = total;
        vec![
            (BUILTIN_PROPERTIES[0], "Avg", mem.rss_kib.to_string()),
            (BUILTIN_PROPERTIES[1], "Avg", format!("{cpu:.1}")),
            (BUILTIN_PROPERTIES[2], "Avg", workers.to_string()),
            (BUILTIN_PROPERTIES[3], "Avg", conns.to_string()),
            (BUILTIN_PROPERTIES[4], "Sum", delta.to_string()),
        ]
    }
}

/// Requests served by the event workers now alive (a reaped worker's count leaves
/// with it, so a drop shows as zero new requests rather than a negative).
fn total_requests(shared: &Shared) -> i64 {
    shared
        .scoreboard
        .rows()
        .iter()
        .filter(|r| r.role == Some(Role::EventWorker))
        .map(|r| r.requests)
        .sum()
}

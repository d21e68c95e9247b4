//! The status report: one row per process from the scoreboard, plus connections per
//! adapter. One module renders it for the `status` command (text or JSON) and for
//! `tars.viewstatus` on the admin endpoint.

use serde::Serialize;

use crate::scoreboard::{ProcRow, ProcState, Scoreboard};
use crate::sys;

/// One process as `status --json` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct ProcStatus {
    pid: i32,
    role: &'static str,
    id: u32,
    generation: u64,
    state: &'static str,
    requests: i64,
    uptime_ms: i64,
    heartbeat_age_ms: i64,
    request_age_ms: i64,
    tasks_pending: i64,
    backoff_ms: i64,
    failures: i64,
    /// Task results and failure notices dropped because the receiver was full or gone.
    replies_dropped: i64,
}

/// The whole report as `status --json` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct ServerStatus {
    server: String,
    master_pid: i32,
    processes: Vec<ProcStatus>,
    /// Open connections per adapter, in the adapters' order.
    #[serde(serialize_with = "as_map")]
    connections: Vec<(String, i64)>,
}

fn as_map<S: serde::Serializer>(pairs: &[(String, i64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

impl ProcStatus {
    fn of(r: &ProcRow, now: i64, wall: i64) -> ProcStatus {
        let backoff = r.state == ProcState::Backoff;
        ProcStatus {
            pid: r.pid,
            role: crate::pool::status_word(r.role),
            id: r.id,
            generation: r.generation,
            state: r.state.name(),
            requests: r.requests,
            uptime_ms: if backoff { 0 } else { wall - r.started_wall_ms },
            heartbeat_age_ms: if r.pid > 0 { now - r.heartbeat_ms } else { 0 },
            request_age_ms: if r.request_start_ms > 0 {
                now - r.request_start_ms
            } else {
                0
            },
            tasks_pending: r.tasks_pending,
            backoff_ms: if backoff {
                (r.backoff_until_ms - now).max(0)
            } else {
                0
            },
            failures: r.failures,
            replies_dropped: r.replies_dropped,
        }
    }
}

impl ServerStatus {
    /// Reads the report from the scoreboard now.
    pub(crate) fn read(full_name: &str, master_pid: i32, sb: &Scoreboard) -> ServerStatus {
        let now = sys::monotonic_ms();
        let wall = sys::wall_ms();
        ServerStatus {
            server: full_name.to_string(),
            master_pid,
            processes: sb
                .rows()
                .iter()
                .map(|r| ProcStatus::of(r, now, wall))
                .collect(),
            connections: sb.adapter_connections(),
        }
    }

    /// The report as one line of JSON.
    pub(crate) fn to_json(&self) -> String {
        // Serializing plain structs of numbers and strings into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The report as a text table.
    pub(crate) fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "{} (master pid {})", self.server, self.master_pid);
        let _ = writeln!(
            out,
            "{:>8}  {:<8} {:>3} {:>3}  {:<9} {:>9} {:>10} {:>9} {:>9} {:>7}",
            "PID",
            "ROLE",
            "ID",
            "GEN",
            "STATE",
            "REQUESTS",
            "UPTIME",
            "HEARTBEAT",
            "REQUEST",
            "TASKS"
        );
        for p in &self.processes {
            let (uptime, hb) = if p.state == ProcState::Backoff.name() {
                (format!("backoff {}ms", p.backoff_ms), "-".to_string())
            } else {
                (secs(p.uptime_ms), format!("{}ms", p.heartbeat_age_ms))
            };
            let req = if p.request_age_ms > 0 {
                format!("{}ms", p.request_age_ms)
            } else {
                "-".into()
            };
            let pid = if p.pid > 0 {
                p.pid.to_string()
            } else {
                "-".into()
            };
            let _ = writeln!(
                out,
                "{pid:>8}  {:<8} {:>3} {:>3}  {:<9} {:>9} {uptime:>10} {hb:>9} {req:>9} {:>7}",
                p.role, p.id, p.generation, p.state, p.requests, p.tasks_pending
            );
        }
        let dropped: i64 = self.processes.iter().map(|p| p.replies_dropped).sum();
        if dropped > 0 {
            let _ = writeln!(
                out,
                "task replies dropped: {dropped} (the asking worker's queue was full, or it was gone)"
            );
        }
        for (name, conns) in &self.connections {
            let _ = writeln!(out, "adapter {name}: {conns} connection(s)");
        }
        out
    }
}

fn secs(ms: i64) -> String {
    if ms >= 3_600_000 {
        format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60)
    } else if ms >= 60_000 {
        format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::secs;

    #[test]
    fn uptime_is_short_and_readable() {
        assert_eq!(secs(1500), "1.5s");
        assert_eq!(secs(61_000), "1m01s");
        assert_eq!(secs(3_660_000), "1h01m");
    }
}

//! The manager: forks the event workers and task workers, reaps and respawns them
//! (with crash-loop backoff), rolls reloads, applies TTIN/TTOU, and watches liveness.
//!
//! The main loop reads top to bottom: wait, notice a clock gap, dispatch signals,
//! reap, then either finish stopping or manage workers and murder the hung ones.

use std::collections::HashMap;
use std::time::Duration;

use crate::process::{self, ChildBoot, Shared};
use crate::scoreboard::{ProcRow, ProcState, Role};
use crate::service::Service;
use crate::signals::{self, Action};
use crate::sys::{self, ExitStatus};
use crate::{log, task, worker, EXIT_BOOT_ERROR};

/// A process that dies sooner than this after its start counts as a crash-loop failure.
pub(crate) const MIN_UPTIME_MS: i64 = 1000;
/// First backoff delay; doubles per consecutive early death.
const BACKOFF_START_MS: i64 = 100;
/// Backoff cap.
const BACKOFF_MAX_MS: i64 = 10_000;
/// How long after TERM a process told to die (timeouts) gets before KILL.
const KILL_GRACE_MS: i64 = 1000;
/// How often the loop wakes when nothing happens.
const TICK_MS: u64 = 20;
/// A loop turn that took longer than this means we were stopped (SIGSTOP, suspend).
const CLOCK_GAP_MS: i64 = 1000;

/// Where the manager is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Keeping the workers running.
    Running,
    /// Children told to stop; KILL whoever is left at `deadline`.
    Stopping { deadline: i64, killed: bool },
}

/// One child process.
#[derive(Debug)]
struct Proc {
    pid: i32,
    role: Role,
    id: u32,
    generation: u64,
    started_ms: i64,
    /// Told to leave (reload, TTOU, stop): its exit is expected. KILL at this deadline.
    retiring_until: Option<i64>,
    /// TERM sent by liveness at this time; KILL after the grace.
    murder_started: Option<i64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Backoff {
    failures: u32,
    until_ms: i64,
}

struct Manager<'a> {
    shared: &'a mut Shared,
    service: &'a Service,
    procs: Vec<Proc>,
    worker_ids: Vec<u32>,
    task_ids: Vec<u32>,
    worker_generation: u64,
    task_generation: u64,
    backoff: HashMap<u32, Backoff>,
    phase: Phase,
    last_turn_ms: i64,
    /// After a clock gap, ages are counted from here, not from stamps made before it.
    resumed_ms: i64,
    exit_code: i32,
    /// Adapter names, to release a reaped worker's connections.
    adapter_names: Vec<String>,
}

/// Runs the manager; never returns.
pub(crate) fn run(shared: &mut Shared, service: &Service) -> ! {
    let code = match manage(shared, service) {
        Ok(code) => code,
        Err(e) => {
            log::error(&format!("manager failed: {e}"));
            1
        }
    };
    log::flush();
    sys::exit_now(code)
}

fn manage(shared: &mut Shared, service: &Service) -> std::io::Result<i32> {
    let wake = signals::install(&[
        libc::SIGTERM,
        libc::SIGQUIT,
        libc::SIGINT,
        libc::SIGUSR1,
        libc::SIGHUP,
        libc::SIGUSR2,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGWINCH,
        libc::SIGCHLD,
    ])?;
    sys::unblock_all_signals()?;
    let me = shared.register_self(&ChildBoot {
        role: Role::Manager,
        id: 0,
        generation: 0,
    })?;
    me.set_state(ProcState::Idle);
    if let Some(f) = &service.on_manager_start {
        f(&shared.settings);
    }
    let n = shared.settings.worker_num.max(1) as u32;
    let m = shared.settings.task_worker_num as u32;
    let now = sys::monotonic_ms();
    let mut mgr = Manager {
        shared,
        service,
        procs: Vec::new(),
        worker_ids: (0..n).collect(),
        task_ids: (n..n + m).collect(),
        worker_generation: 1,
        task_generation: 1,
        backoff: HashMap::new(),
        phase: Phase::Running,
        last_turn_ms: now,
        resumed_ms: 0,
        exit_code: 0,
        adapter_names: Vec::new(),
    };
    mgr.adapter_names = mgr
        .shared
        .settings
        .adapters
        .iter()
        .map(|a| a.name.clone())
        .collect();
    let master_fd = mgr.shared.master_alive_fd();
    loop {
        let ready = sys::poll_readable(
            &[wake.fd(), master_fd],
            Some(Duration::from_millis(TICK_MS)),
        )?;
        let now = sys::monotonic_ms();
        me.heartbeat();
        mgr.notice_clock_gap(now);
        if ready[0] {
            wake.drain();
        }
        if ready[1] && mgr.phase == Phase::Running {
            log::warn("master process is gone; stopping every child now");
            mgr.begin_stop(true, now);
        }
        for action in signals::take() {
            mgr.handle(action, now);
        }
        mgr.reap_workers(now);
        match mgr.phase {
            Phase::Stopping { deadline, killed } => {
                if mgr.procs.is_empty() {
                    return Ok(mgr.exit_code);
                }
                if now >= deadline && !killed {
                    for p in &mgr.procs {
                        log::warn(&format!(
                            "{} {} (pid {}) still running at the stop deadline; sending KILL",
                            p.role.name(),
                            p.id,
                            p.pid
                        ));
                        let _ = sys::send_signal(p.pid, libc::SIGKILL);
                    }
                    mgr.phase = Phase::Stopping {
                        deadline,
                        killed: true,
                    };
                }
            }
            Phase::Running => {
                let rows = mgr.shared.scoreboard.rows();
                mgr.manage_workers(&rows, now);
                mgr.murder_workers(&rows, now);
            }
        }
    }
}

impl Manager<'_> {
    /// If our own loop stalled (we were SIGSTOPped, or the machine was suspended), the
    /// workers' stamps are not to be trusted against our clock: restart every age count.
    fn notice_clock_gap(&mut self, now: i64) {
        let gap = now - self.last_turn_ms;
        if gap > CLOCK_GAP_MS {
            log::warn(&format!(
                "manager loop stalled for {gap} ms (stopped?); restarting liveness clocks"
            ));
            self.resumed_ms = now;
        }
        self.last_turn_ms = now;
    }

    fn handle(&mut self, action: Action, now: i64) {
        match action {
            Action::Stop => self.begin_stop(false, now),
            Action::FastStop => self.begin_stop(true, now),
            Action::Reload => {
                log::info("rolling reload of event workers and task workers");
                self.worker_generation += 1;
                self.task_generation += 1;
            }
            Action::ReloadTasks => {
                log::info("reloading task workers");
                self.task_generation += 1;
            }
            Action::AddWorker => {
                let next = self
                    .worker_ids
                    .iter()
                    .chain(self.task_ids.iter())
                    .max()
                    .map_or(0, |m| m + 1);
                self.worker_ids.push(next);
                log::info(&format!(
                    "TTIN: adding event worker {next} ({} now)",
                    self.worker_ids.len()
                ));
            }
            Action::RemoveWorker => {
                if self.worker_ids.len() > 1 {
                    if let Some(id) = self.worker_ids.pop() {
                        log::info(&format!(
                            "TTOU: removing event worker {id} ({} now)",
                            self.worker_ids.len()
                        ));
                    }
                } else {
                    log::info("TTOU ignored: never fewer than one event worker");
                }
            }
            Action::ReopenLogs => {
                log::reopen();
                for p in &self.procs {
                    let _ = sys::send_signal(p.pid, libc::SIGWINCH);
                }
            }
            Action::ChildExited => {}
        }
    }

    fn begin_stop(&mut self, fast: bool, now: i64) {
        if let Phase::Stopping { .. } = self.phase {
            if !fast {
                return;
            }
        }
        let sig = if fast { libc::SIGINT } else { libc::SIGTERM };
        let wait = if fast {
            KILL_GRACE_MS
        } else {
            self.shared.settings.max_wait_time.as_millis() as i64
        };
        for p in &self.procs {
            let _ = sys::send_signal(p.pid, sig);
        }
        for id in self.backoff.keys() {
            self.shared.scoreboard.clear_backoff(*id);
        }
        self.phase = Phase::Stopping {
            deadline: now + wait,
            killed: false,
        };
    }

    fn reap_workers(&mut self, now: i64) {
        loop {
            let (pid, status) = match sys::reap_any() {
                Ok(Some(x)) => x,
                Ok(None) => return,
                Err(e) => {
                    log::error(&format!("waitpid() failed: {e}"));
                    return;
                }
            };
            self.shared.scoreboard.remove(pid);
            self.shared
                .scoreboard
                .release_connections(pid, &self.adapter_names);
            let Some(pos) = self.procs.iter().position(|p| p.pid == pid) else {
                continue;
            };
            let p = self.procs.swap_remove(pos);
            let what = format!("{} {} (pid {pid})", role_word(p.role), p.id);
            if p.retiring_until.is_some() || self.phase != Phase::Running {
                log::debug(&format!("{what} exited ({status})"));
                continue;
            }
            if status == ExitStatus::Code(EXIT_BOOT_ERROR) {
                log::error(&format!(
                    "{what} failed to boot (exit code {EXIT_BOOT_ERROR}); stopping the server instead of respawning"
                ));
                self.exit_code = EXIT_BOOT_ERROR;
                self.begin_stop(false, now);
                continue;
            }
            if status == ExitStatus::Code(0) {
                // A worker that recycled itself (max_request) or was told to go.
                log::info(&format!("{what} exited normally; respawning"));
                continue;
            }
            let uptime = now - p.started_ms;
            let entry = self.backoff.entry(p.id).or_default();
            if uptime < MIN_UPTIME_MS {
                entry.failures += 1;
                let delay = backoff_delay(entry.failures);
                entry.until_ms = now + delay;
                log::error(&format!(
                    "{what} died after {uptime} ms with {status}; respawning in {delay} ms (crash-loop backoff, failure {})",
                    entry.failures
                ));
                self.shared
                    .scoreboard
                    .set_backoff(p.role, p.id, entry.until_ms, entry.failures);
            } else {
                entry.failures = 0;
                entry.until_ms = 0;
                log::error(&format!(
                    "{what} died with {status} after {uptime} ms; respawning"
                ));
            }
        }
    }

    /// Keeps one current-generation process per id, retires the others.
    fn manage_workers(&mut self, rows: &[ProcRow], now: i64) {
        // Workers that started draining on their own (max_request) are leaving.
        let max_wait = self.shared.settings.max_wait_time.as_millis() as i64;
        for p in self.procs.iter_mut() {
            if p.retiring_until.is_none()
                && row_of(rows, p.pid).map(|r| r.state) == Some(ProcState::Draining)
            {
                p.retiring_until = Some(now + max_wait + KILL_GRACE_MS);
            }
        }
        for role in [Role::Worker, Role::Task] {
            let (ids, generation) = match role {
                Role::Worker => (self.worker_ids.clone(), self.worker_generation),
                _ => (self.task_ids.clone(), self.task_generation),
            };
            // Rolling: replace one id at a time while a new process is still starting.
            let rolling = self
                .procs
                .iter()
                .any(|p| p.role == role && p.generation < generation && p.retiring_until.is_none());
            let starting_new = self.procs.iter().any(|p| {
                p.role == role
                    && p.generation == generation
                    && row_of(rows, p.pid).is_none_or(|r| r.state == ProcState::Starting)
            });
            for &id in &ids {
                let has_current = self.procs.iter().any(|p| {
                    p.role == role
                        && p.id == id
                        && p.generation == generation
                        && p.retiring_until.is_none()
                });
                if has_current {
                    continue;
                }
                let has_old = self
                    .procs
                    .iter()
                    .any(|p| p.role == role && p.id == id && p.retiring_until.is_none());
                if has_old && rolling && starting_new {
                    continue;
                }
                if let Some(b) = self.backoff.get(&id) {
                    if b.until_ms > now {
                        continue;
                    }
                    if b.until_ms != 0 {
                        self.shared.scoreboard.clear_backoff(id);
                    }
                }
                self.spawn(role, id, generation, now);
                if has_old {
                    break;
                }
            }
            // Retire what is no longer wanted: ids removed by TTOU, and old generations
            // whose replacement is up and serving.
            let mut retire = Vec::new();
            for p in self.procs.iter() {
                if p.role != role || p.retiring_until.is_some() {
                    continue;
                }
                if !ids.contains(&p.id) {
                    retire.push(p.pid);
                } else if p.generation < generation {
                    let replaced = self.procs.iter().any(|q| {
                        q.role == role
                            && q.id == p.id
                            && q.generation == generation
                            && row_of(rows, q.pid).is_some_and(|r| {
                                matches!(r.state, ProcState::Idle | ProcState::Busy)
                            })
                    });
                    if replaced {
                        retire.push(p.pid);
                    }
                }
            }
            for pid in retire {
                if let Some(p) = self.procs.iter_mut().find(|p| p.pid == pid) {
                    log::info(&format!(
                        "retiring {} {} (pid {pid})",
                        role_word(p.role),
                        p.id
                    ));
                    let _ = sys::send_signal(pid, libc::SIGTERM);
                    p.retiring_until = Some(now + max_wait + KILL_GRACE_MS);
                }
            }
        }
    }

    /// TERM, then KILL, the processes that stopped stamping or hang in a request, and the
    /// retiring ones past their deadline.
    fn murder_workers(&mut self, rows: &[ProcRow], now: i64) {
        let s = &self.shared.settings;
        let worker_timeout = s.worker_timeout.as_millis() as i64;
        let request_timeout = s.request_timeout.as_millis() as i64;
        let since = |t: i64| now - t.max(self.resumed_ms);
        for p in self.procs.iter_mut() {
            if let Some(until) = p.retiring_until {
                if now >= until {
                    log::warn(&format!(
                        "{} {} (pid {}) did not finish draining in time; sending KILL",
                        role_word(p.role),
                        p.id,
                        p.pid
                    ));
                    let _ = sys::send_signal(p.pid, libc::SIGKILL);
                    p.retiring_until = Some(i64::MAX);
                }
                continue;
            }
            if let Some(t) = p.murder_started {
                if now - t >= KILL_GRACE_MS {
                    let _ = sys::send_signal(p.pid, libc::SIGKILL);
                    p.murder_started = Some(i64::MAX / 2);
                }
                continue;
            }
            let Some(row) = row_of(rows, p.pid) else {
                continue;
            };
            let reason = if worker_timeout > 0 && since(row.heartbeat_ms) > worker_timeout {
                Some(format!(
                    "no heartbeat for {} ms (worker_timeout {worker_timeout} ms)",
                    since(row.heartbeat_ms)
                ))
            } else if request_timeout > 0
                && row.request_start_ms > 0
                && since(row.request_start_ms) > request_timeout
            {
                Some(format!(
                    "request running for {} ms (request_timeout {request_timeout} ms)",
                    since(row.request_start_ms)
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                log::error(&format!(
                    "{} {} (pid {}): {reason}; sending TERM, then KILL after {KILL_GRACE_MS} ms",
                    role_word(p.role),
                    p.id,
                    p.pid
                ));
                let _ = sys::send_signal(p.pid, libc::SIGTERM);
                p.murder_started = Some(now);
            }
        }
    }

    fn spawn(&mut self, role: Role, id: u32, generation: u64, now: i64) {
        let boot = ChildBoot {
            role,
            id,
            generation,
        };
        let what = format!("{} {id}", role_word(role));
        let service = self.service;
        let manager_pid = sys::getpid();
        let result = process::spawn(self.shared, &what, |shared| {
            child_main(shared, service, &boot, manager_pid)
        });
        match result {
            Ok(pid) => {
                log::debug(&format!(
                    "spawned {what} (pid {pid}, generation {generation})"
                ));
                self.procs.push(Proc {
                    pid,
                    role,
                    id,
                    generation,
                    started_ms: now,
                    retiring_until: None,
                    murder_started: None,
                });
            }
            Err(e) => {
                // Treat like an early death so we do not spin on fork().
                log::error(&e.to_string());
                let entry = self.backoff.entry(id).or_default();
                entry.failures += 1;
                entry.until_ms = now + backoff_delay(entry.failures);
            }
        }
    }
}

fn child_main(shared: &mut Shared, service: &Service, boot: &ChildBoot, manager_pid: i32) -> ! {
    sys::proctitle::set_title(&process::title(&shared.settings, boot.role));
    log::set_role(&format!("{} {}", role_word(boot.role), boot.id));
    // A worker whose manager dies drains (TERM); the new manager's workers take over.
    if let Err(e) = sys::die_with_parent(libc::SIGTERM, manager_pid) {
        log::error(&format!("prctl(PR_SET_PDEATHSIG) failed: {e}"));
    }
    match boot.role {
        Role::Task => task::run(shared, service, boot),
        _ => worker::run(shared, service, boot),
    }
}

/// The crash-loop delay after `failures` consecutive early deaths (≥ 1): 100 ms
/// doubling, capped at 10 s.
pub(crate) fn backoff_delay(failures: u32) -> i64 {
    (BACKOFF_START_MS << failures.saturating_sub(1).min(16)).min(BACKOFF_MAX_MS)
}

fn row_of(rows: &[ProcRow], pid: i32) -> Option<&ProcRow> {
    rows.iter().find(|r| r.pid == pid)
}

fn role_word(role: Role) -> &'static str {
    match role {
        Role::Worker => "event worker",
        Role::Task => "task worker",
        Role::Manager => "manager",
        Role::Master => "master",
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_delay;

    #[test]
    fn backoff_doubles_from_100_ms_to_a_10_s_cap() {
        let delays: Vec<i64> = (1..=9).map(backoff_delay).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        assert_eq!(backoff_delay(1000), 10_000);
    }
}

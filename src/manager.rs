//! The manager: runs the pools described in `pool` — forks their processes, reaps and
//! respawns them (under the respawn policy of `backoff`), rolls reloads one id at a time, applies
//! TTIN/TTOU, and watches liveness. It never asks which kind a process is: the pool's
//! description says what applies.
//!
//! The main loop reads top to bottom: wait, notice a clock gap, dispatch signals,
//! reap, then either finish stopping or manage the pools and murder the hung processes.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::backoff::{Budget, Respawns, Verdict};
use crate::pool::{self, Pool, MANAGER, POOLS};
use crate::process::{self, ChildBoot, Shared, Started};
use crate::scoreboard::{ProcHandle, ProcRow, ProcState};
use crate::service::Service;
use crate::signals::{self, Action};
use crate::sys::{self, ExitStatus};
use crate::taskq::{self, Kind, Message, ReplyChannel};
use crate::{log, EXIT_BOOT_ERROR};

/// How long after TERM a process told to die (timeouts) gets before KILL.
const KILL_GRACE_MS: i64 = 1000;
/// How often the loop wakes when nothing happens.
const TICK_MS: u64 = 20;
/// A loop turn that took longer than this means we were stopped (SIGSTOP, suspend).
const CLOCK_GAP_MS: i64 = 1000;

/// Where the manager is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Keeping the pools running.
    Running,
    /// Children told to stop; KILL whoever is left at `deadline` (once: `killed`).
    Stopping { deadline: i64, killed: bool },
}

/// Where one child is in its life, as the manager has decided it (the scoreboard says
/// what the child itself reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Wanted; its exit would be a death (logged, counted for backoff).
    Running,
    /// Told to leave (reload, TTOU) or draining on its own: its exit is expected. KILL
    /// at `until` (monotonic ms).
    Retiring { until: i64 },
    /// TERMed by the liveness check at `since`; KILL once the grace has passed.
    Murdering { since: i64 },
    /// KILL sent; waiting for the reap. `retired`: it was retiring, so its exit is
    /// still expected.
    Killed { retired: bool },
}

impl SlotState {
    /// Whether its exit is expected: no error, no backoff, and its id is free for a
    /// successor.
    fn leaving(self) -> bool {
        matches!(
            self,
            SlotState::Retiring { .. } | SlotState::Killed { retired: true }
        )
    }
}

/// One child process.
#[derive(Debug)]
struct Slot {
    pid: i32,
    /// Index into [`POOLS`] (and `Manager::pools`).
    pool: usize,
    id: u32,
    generation: u64,
    started_ms: i64,
    state: SlotState,
    /// For a process that sends tasks: the sending end of its reply channel, kept to
    /// tell it at once when the task worker running one of its tasks dies.
    notify: Option<OwnedFd>,
}

/// A pool as it runs now: the ids it keeps and its current generation.
struct PoolRun {
    spec: &'static Pool,
    ids: Vec<u32>,
    generation: u64,
}

struct Manager<'a> {
    shared: &'a mut Shared,
    service: &'a Service,
    /// The manager's own scoreboard row.
    me: ProcHandle,
    pools: Vec<PoolRun>,
    slots: Vec<Slot>,
    /// When the ids' dead processes may be respawned (ids are unique across pools).
    respawns: Respawns,
    phase: Phase,
    last_turn_ms: i64,
    /// After a clock gap, ages are counted from here, not from stamps made before it.
    resumed_ms: i64,
    exit_code: i32,
}

/// In a fresh child of the master (`master_pid`): becomes the manager, runs it and
/// exits with its code. Never returns.
pub(crate) fn run_child(shared: &mut Shared, service: &Service, master_pid: i32) -> ! {
    if let Err(e) = MANAGER.enter(shared, MANAGER.word, master_pid, &[]) {
        log::error(&format!("manager cannot start: {e}"));
        process::exit_with(MANAGER.word, Ok(EXIT_BOOT_ERROR));
    }
    let boot = ChildBoot {
        role: MANAGER.role,
        id: 0,
        generation: 0,
    };
    let outcome = MANAGER
        .start(shared, &boot)
        .and_then(|started| run(shared, service, started));
    process::exit_with(MANAGER.word, outcome)
}

fn run(shared: &mut Shared, service: &Service, started: Started) -> std::io::Result<i32> {
    let Started {
        wake, handle: me, ..
    } = started;
    me.set_state(ProcState::Idle);
    if let Some(f) = &service.on_manager_start {
        f(&shared.settings);
    }
    let pools: Vec<PoolRun> = POOLS
        .iter()
        .zip(pool::first_ids(&shared.settings))
        .map(|(&spec, ids)| PoolRun {
            spec,
            ids,
            generation: 1,
        })
        .collect();
    let processes = pools.iter().map(|p| p.ids.len()).sum();
    let master_fd = shared.master_alive_fd();
    let mut mgr = Manager {
        shared,
        service,
        me: me.clone(),
        pools,
        slots: Vec::new(),
        respawns: Respawns::new(Budget::for_pools(processes, sys::monotonic_ms())),
        phase: Phase::Running,
        last_turn_ms: sys::monotonic_ms(),
        resumed_ms: 0,
        exit_code: 0,
    };
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
                if mgr.slots.is_empty() {
                    return Ok(mgr.exit_code);
                }
                if now >= deadline && !killed {
                    mgr.kill_stragglers(deadline);
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
    /// How logs name a slot: `event worker 3 (pid 42)`.
    fn what(&self, slot: &Slot) -> String {
        format!(
            "{} (pid {})",
            self.pools[slot.pool].spec.label(slot.id),
            slot.pid
        )
    }

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
            Action::Reload | Action::ReloadTasks => self.reload(action),
            Action::AddWorker => self.grow(),
            Action::RemoveWorker => self.shrink(),
            Action::ReopenLogs => {
                log::reopen();
                for p in &self.slots {
                    let _ = sys::send_signal(p.pid, libc::SIGWINCH);
                }
            }
            Action::ChildExited => {}
        }
    }

    /// A new generation of every pool `action` reloads; `manage_workers` rolls it in.
    fn reload(&mut self, action: Action) {
        let mut words = Vec::new();
        for p in self.pools.iter_mut() {
            if p.spec.reloaded_by.contains(&action) {
                p.generation += 1;
                words.push(format!("{}s", p.spec.kind.word));
            }
        }
        if !words.is_empty() {
            log::info(&format!("rolling reload of {}", words.join(" and ")));
        }
    }

    /// TTIN: one process more in each resizable pool, with the next unused id.
    fn grow(&mut self) {
        for i in 0..self.pools.len() {
            if self.pools[i].spec.resize.is_none() {
                continue;
            }
            let next = self
                .pools
                .iter()
                .flat_map(|p| p.ids.iter())
                .max()
                .map_or(0, |m| m + 1);
            let p = &mut self.pools[i];
            p.ids.push(next);
            log::info(&format!(
                "TTIN: adding {} ({} now)",
                p.spec.label(next),
                p.ids.len()
            ));
        }
    }

    /// TTOU: one process fewer in each resizable pool, never below its floor.
    fn shrink(&mut self) {
        for p in self.pools.iter_mut() {
            let Some(min) = p.spec.resize else { continue };
            if p.ids.len() > min as usize {
                if let Some(id) = p.ids.pop() {
                    log::info(&format!(
                        "TTOU: removing {} ({} now)",
                        p.spec.label(id),
                        p.ids.len()
                    ));
                }
            } else {
                log::info(&format!(
                    "TTOU ignored: never fewer than {min} {}",
                    p.spec.kind.word
                ));
            }
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
        for p in &self.slots {
            let _ = sys::send_signal(p.pid, sig);
        }
        for id in self.respawns.ids() {
            self.shared.scoreboard.clear_backoff(id);
        }
        self.phase = Phase::Stopping {
            deadline: now + wait,
            killed: false,
        };
    }

    /// The stop deadline passed: KILL every child still there.
    fn kill_stragglers(&mut self, deadline: i64) {
        for p in &self.slots {
            log::warn(&format!(
                "{} still running at the stop deadline; sending KILL",
                self.what(p)
            ));
            let _ = sys::send_signal(p.pid, libc::SIGKILL);
        }
        self.phase = Phase::Stopping {
            deadline,
            killed: true,
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
            // The row says which task the process was running, if any: read it before
            // the row goes.
            let row = self
                .shared
                .scoreboard
                .rows()
                .into_iter()
                .find(|r| r.pid == pid);
            let last_state = self.shared.forget(pid);
            let Some(pos) = self.slots.iter().position(|p| p.pid == pid) else {
                continue;
            };
            let p = self.slots.swap_remove(pos);
            if let Some(row) = row.filter(|r| r.task_id != 0) {
                self.tell_task_sender(&row, status);
            }
            let what = self.what(&p);
            if p.state.leaving() || self.phase != Phase::Running {
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
            let was_ready = last_state.is_some_and(ProcState::has_been_ready);
            let uptime = now - p.started_ms;
            let delay = self.respawns.died(p.id, was_ready, now);
            if status == ExitStatus::Code(0) && was_ready {
                // A worker that recycled itself (max_request) or was told to go.
                log::info(&format!("{what} exited normally; respawning"));
                continue;
            }
            match delay {
                Some(delay) => {
                    let Some(crash) = self.respawns.record(p.id).copied() else {
                        continue;
                    };
                    log::error(&format!(
                        "{what} died after {uptime} ms with {status} before it was ready; respawning in {delay} ms (crash-loop backoff, failure {})",
                        crash.failures()
                    ));
                    self.shared.scoreboard.set_backoff(
                        self.pools[p.pool].spec.kind.role,
                        p.id,
                        crash.until_ms(),
                        crash.failures(),
                    );
                }
                None => log::error(&format!(
                    "{what} died with {status} after {uptime} ms; respawning"
                )),
            }
        }
    }

    /// Keeps one current-generation process per id of every pool, retires the others.
    fn manage_workers(&mut self, rows: &[ProcRow], now: i64) {
        // Processes that started draining on their own (max_request) are leaving.
        let max_wait = self.shared.settings.max_wait_time.as_millis() as i64;
        for p in self.slots.iter_mut() {
            let state = row_of(rows, p.pid).map(|r| r.state);
            if state.is_some_and(ProcState::has_been_ready) {
                self.respawns.ready(p.id);
            }
            if !p.state.leaving() && state == Some(ProcState::Draining) {
                p.state = SlotState::Retiring {
                    until: now + max_wait + KILL_GRACE_MS,
                };
            }
        }
        for pool in 0..self.pools.len() {
            self.fill(pool, rows, now);
            self.retire_unwanted(pool, rows, now + max_wait + KILL_GRACE_MS);
        }
    }

    /// Spawns what `pool` lacks: a current-generation process for every id the respawn
    /// policy lets go. Rolling: while a new process is still starting, an id that still
    /// has its old process waits, so ids are replaced one at a time.
    fn fill(&mut self, pool: usize, rows: &[ProcRow], now: i64) {
        let generation = self.pools[pool].generation;
        let ids = self.pools[pool].ids.clone();
        let mine = |p: &&Slot| p.pool == pool;
        let rolling = self
            .slots
            .iter()
            .filter(mine)
            .any(|p| p.generation < generation && !p.state.leaving());
        let starting_new = self.slots.iter().filter(mine).any(|p| {
            p.generation == generation
                && row_of(rows, p.pid).is_none_or(|r| r.state == ProcState::Starting)
        });
        for id in ids {
            let has_current = self
                .slots
                .iter()
                .filter(mine)
                .any(|p| p.id == id && p.generation == generation && !p.state.leaving());
            if has_current {
                continue;
            }
            let has_old = self
                .slots
                .iter()
                .filter(mine)
                .any(|p| p.id == id && !p.state.leaving());
            if has_old && rolling && starting_new {
                continue;
            }
            match self.respawns.check(id, now) {
                Verdict::Go { after_backoff } => {
                    if after_backoff {
                        self.shared.scoreboard.clear_backoff(id);
                    }
                }
                Verdict::Backoff { .. } => continue,
                Verdict::Budget { until } => {
                    if self.respawns.newly_dry() {
                        log::warn(&format!(
                            "respawn budget spent (processes keep dying); the next respawn in {} ms",
                            until - now
                        ));
                    }
                    continue;
                }
            }
            self.spawn(pool, id, generation, now);
            if has_old {
                break;
            }
        }
    }

    /// Retires what `pool` no longer wants: ids removed by TTOU, and old generations
    /// whose replacement is up and serving. They get TERM and until `until` to leave.
    fn retire_unwanted(&mut self, pool: usize, rows: &[ProcRow], until: i64) {
        let PoolRun {
            spec,
            ref ids,
            generation,
        } = self.pools[pool];
        let mut retire = Vec::new();
        for p in self.slots.iter() {
            if p.pool != pool || p.state.leaving() {
                continue;
            }
            if !ids.contains(&p.id) {
                retire.push(p.pid);
            } else if p.generation < generation {
                let replaced = self.slots.iter().any(|q| {
                    q.pool == pool
                        && q.id == p.id
                        && q.generation == generation
                        && row_of(rows, q.pid)
                            .is_some_and(|r| matches!(r.state, ProcState::Idle | ProcState::Busy))
                });
                if replaced {
                    retire.push(p.pid);
                }
            }
        }
        for pid in retire {
            if let Some(p) = self.slots.iter_mut().find(|p| p.pid == pid) {
                log::info(&format!("retiring {} (pid {pid})", spec.label(p.id)));
                let _ = sys::send_signal(pid, libc::SIGTERM);
                p.state = SlotState::Retiring { until };
            }
        }
    }

    /// TERM, then KILL, the processes that stopped stamping or hang in a request (where
    /// their pool's liveness rules say so), and the retiring ones past their deadline.
    fn murder_workers(&mut self, rows: &[ProcRow], now: i64) {
        let s = &self.shared.settings;
        let worker_timeout = s.worker_timeout.as_millis() as i64;
        let request_timeout = s.request_timeout.as_millis() as i64;
        let resumed = self.resumed_ms;
        let since = |t: i64| now - t.max(resumed);
        let pools = &self.pools;
        for p in self.slots.iter_mut() {
            let label = || format!("{} (pid {})", pools[p.pool].spec.label(p.id), p.pid);
            match p.state {
                SlotState::Retiring { until } => {
                    if now >= until {
                        log::warn(&format!(
                            "{} did not finish draining in time; sending KILL",
                            label()
                        ));
                        let _ = sys::send_signal(p.pid, libc::SIGKILL);
                        p.state = SlotState::Killed { retired: true };
                    }
                    continue;
                }
                SlotState::Murdering { since: t } => {
                    if now - t >= KILL_GRACE_MS {
                        let _ = sys::send_signal(p.pid, libc::SIGKILL);
                        p.state = SlotState::Killed { retired: false };
                    }
                    continue;
                }
                SlotState::Killed { .. } => continue,
                SlotState::Running => {}
            }
            let Some(row) = row_of(rows, p.pid) else {
                continue;
            };
            let rules = pools[p.pool].spec.liveness;
            let reason = if rules.heartbeat
                && worker_timeout > 0
                && since(row.heartbeat_ms) > worker_timeout
            {
                Some(format!(
                    "no heartbeat for {} ms (worker_timeout {worker_timeout} ms)",
                    since(row.heartbeat_ms)
                ))
            } else if rules.request
                && request_timeout > 0
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
                    "{}: {reason}; sending TERM, then KILL after {KILL_GRACE_MS} ms",
                    label()
                ));
                let _ = sys::send_signal(p.pid, libc::SIGTERM);
                p.state = SlotState::Murdering { since: now };
            }
        }
    }

    /// The task worker of `row` died with `status` in the middle of a task: tell the
    /// event worker that sent it, on its reply channel, without waiting (a full or
    /// closed channel loses the notice, counted in the manager's row).
    fn tell_task_sender(&self, row: &ProcRow, status: ExitStatus) {
        let how = status.to_string();
        log::error(&format!(
            "task worker {} (pid {}) died with {how} while running task {} of pid {}; telling the sender",
            row.id, row.pid, row.task_id, row.task_sender
        ));
        let Some(notify) = self
            .slots
            .iter()
            .find(|s| s.pid == row.task_sender)
            .and_then(|s| s.notify.as_ref())
        else {
            return;
        };
        let msg = Message {
            task_id: row.task_id,
            kind: Kind::Failed,
            from_id: row.id,
            from_pid: row.pid,
            data: how.as_bytes(),
        };
        let mut buf = Vec::new();
        let sent = taskq::encode(&mut buf, &msg)
            .map_err(|e| e.to_string())
            .and_then(|()| taskq::send_reply(notify.as_fd(), &buf).map_err(|e| e.to_string()));
        if let Err(e) = sent {
            self.me.reply_dropped();
            log::warn(&format!(
                "could not tell pid {} that its task {} failed: {e}",
                row.task_sender, row.task_id
            ));
        }
    }

    /// Forks process `id` of `pool`, in `generation`. A process of a pool that sends
    /// tasks gets a reply channel made here, of which the manager keeps the sending end.
    fn spawn(&mut self, pool: usize, id: u32, generation: u64, now: i64) {
        let spec = self.pools[pool].spec;
        let boot = ChildBoot {
            role: spec.kind.role,
            id,
            generation,
        };
        let what = spec.label(id);
        let channel = if spec.sends_tasks && self.shared.task_queue.is_some() {
            match ReplyChannel::new().and_then(|c| c.send.try_clone().map(|n| (c, n))) {
                Ok(x) => Some(x),
                Err(e) => {
                    log::error(&format!(
                        "cannot make the task reply channel of {what}: {e}"
                    ));
                    self.respawns.fork_failed(id, now);
                    return;
                }
            }
        } else {
            None
        };
        let (reply, notify) = match channel {
            Some((c, n)) => (Some(c), Some(n)),
            None => (None, None),
        };
        let service = self.service;
        let manager_pid = sys::getpid();
        // In the parent the closure is dropped unrun, which closes the manager's copy of
        // the channel: only `notify` stays here.
        let result = process::spawn(self.shared, &what, move |shared| {
            pool::run_child(shared, service, spec, &boot, manager_pid, reply)
        });
        match result {
            Ok(pid) => {
                log::debug(&format!(
                    "spawned {what} (pid {pid}, generation {generation})"
                ));
                self.slots.push(Slot {
                    pid,
                    pool,
                    id,
                    generation,
                    started_ms: now,
                    state: SlotState::Running,
                    notify,
                });
            }
            Err(e) => {
                // Treat like a death before ready so we do not spin on fork().
                log::error(&e.to_string());
                self.respawns.fork_failed(id, now);
            }
        }
    }
}

fn row_of(rows: &[ProcRow], pid: i32) -> Option<&ProcRow> {
    rows.iter().find(|r| r.pid == pid)
}

#[cfg(test)]
mod tests {
    use super::SlotState;

    #[test]
    fn only_a_retiring_process_is_expected_to_leave() {
        assert!(!SlotState::Running.leaving());
        assert!(SlotState::Retiring { until: 5 }.leaving());
        assert!(!SlotState::Murdering { since: 5 }.leaving());
        assert!(SlotState::Killed { retired: true }.leaving());
        assert!(!SlotState::Killed { retired: false }.leaving());
    }
}

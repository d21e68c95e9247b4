//! The master: binds every listener, takes the pid file, creates the shared memory and
//! the task queue, forks the manager and supervises it, forwards control signals, serves
//! the admin endpoint, and on its way out takes everything down and cleans up.
//!
//! Its loop reads as verbs on `Master`: wait, handle the signals (and what the admin
//! endpoint asked), reap the manager, respawn it, advance the phase. What the children
//! inherit (`Shared`) and what only the master holds (`MasterOnly`) are two structs:
//! the master forks only through `Master::fork_child`, which drops the master-only
//! part in the child before the child's code runs, and hands that code the inherited
//! part alone.
//!
//! The listeners stay open in the master for its whole life, so a handoff to a new
//! executable (a binary upgrade) can pass them on without ever closing a port.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::backoff::{Budget, Respawns, Verdict};
use crate::daemon::{self, Launcher, Readiness};
use crate::error::Error;
use crate::pidfile::{MasterRecord, PidFile};
use crate::platform::admin::{AdminAction, AdminEndpoint};
use crate::platform::config_pull;
use crate::platform::locator::Locator;
use crate::pool::{self, MASTER};
use crate::process::{self, Listener, Shared};
use crate::runas::RunAs;
use crate::rundir::{RunDir, ServerDirs, Trust};
use crate::scoreboard::{ProcHandle, ProcState, Scoreboard};
use crate::service::Service;
use crate::settings::{Protocol as AdapterProtocol, Settings};
use crate::signals::{self, Action, Wakeup};
use crate::sys::{self, ident::ProcessId, ExitStatus};
use crate::taskq::TaskQueue;
use crate::{log, manager, EXIT_BOOT_ERROR};

/// How long the master waits in one turn when nothing happens.
const TICK_MS: u64 = 10;
/// How long after a fast stop the tree gets KILL.
const FAST_STOP_MS: i64 = 1000;
/// What a graceful stop allows beyond `max_wait_time` (the manager's own KILL grace,
/// and its reaping) before the master KILLs the tree.
const STOP_SLACK_MS: i64 = 2000;

/// Where the master is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterPhase {
    /// Manager forked, workers not all up yet.
    Starting,
    /// Every pool that counts toward readiness is up; the start was reported.
    Ready,
    /// A stop was asked; waiting for the manager until the deadline (monotonic ms).
    Stopping {
        /// When the tree gets KILL.
        deadline: i64,
    },
    /// The stop deadline passed and the tree got KILL; waiting for the manager's exit.
    Killed,
}

impl MasterPhase {
    fn stopping(self) -> bool {
        matches!(self, MasterPhase::Stopping { .. } | MasterPhase::Killed)
    }
}

/// What only the master may hold. No child ever keeps any of it: the pid file's lock
/// must die with the master alone, the launcher must see the master's report (not a
/// child's silence), the admin endpoint is the master's to serve, and the life pipe's
/// write end must close when the master dies so that every child sees EOF.
struct MasterOnly {
    /// The locked pid file.
    pidfile: Option<PidFile>,
    /// The daemon launcher's readiness pipe, until the report is sent.
    launcher: Option<Launcher>,
    /// The admin endpoint (`local`), with its connections.
    admin: Option<AdminEndpoint>,
    /// Write end of the life pipe.
    life: Option<OwnedFd>,
    /// The verified run-time directories (data dir, pid file's dir).
    dirs: Option<ServerDirs>,
    /// The shared-memory directory, held open.
    shm: Option<RunDir>,
    /// What the master recorded about itself beside the pid file.
    record: Option<MasterRecord>,
}

impl MasterOnly {
    /// In a freshly forked child: close every master-only descriptor.
    fn close_in_child(&mut self) {
        if let Some(p) = self.pidfile.as_mut() {
            p.close_in_child();
        }
        self.pidfile = None;
        self.launcher = None;
        self.admin = None;
        self.life = None;
        self.dirs = None;
        self.shm = None;
        self.record = None;
    }
}

/// The manager as the master supervises it.
#[derive(Debug)]
struct ManagerSlot {
    /// Its pid while it runs (and is not reaped yet).
    pid: Option<i32>,
    /// When it was forked (monotonic ms, taken just before the fork).
    started_ms: i64,
    /// Whether it has been ready: every pool that counts toward readiness had all its
    /// processes up, forked since it was. A manager that dies before that is in a
    /// crash loop; one that dies after is re-forked at once (budget permitting).
    ready: bool,
    /// When it may be re-forked after a death (the respawn policy, as id 0).
    respawns: Respawns,
    /// When it is to be forked again, after a death.
    respawn_at: Option<i64>,
}

/// The manager's id in its respawn policy (it is the only one).
const MANAGER_ID: u32 = 0;

/// The master and everything it holds while it runs.
struct Master<'a> {
    service: &'a Service,
    /// What children inherit.
    shared: Shared,
    /// What they never do.
    only: MasterOnly,
    wake: Wakeup,
    /// The master's own scoreboard row.
    me: ProcHandle,
    phase: MasterPhase,
    manager: ManagerSlot,
    /// The start fails if the pools are not up by then (monotonic ms).
    ready_by: i64,
}

/// Where the shared-memory directories of a server go: /dev/shm, or the data dir on a
/// system without it.
fn shm_parent(settings: &Settings) -> PathBuf {
    let base = Path::new("/dev/shm");
    if base.is_dir() {
        base.to_path_buf()
    } else {
        settings.datapath.clone()
    }
}

/// The name every shared-memory directory of this server (for this uid) starts with.
fn shm_prefix(settings: &Settings) -> String {
    format!("tarsfork.{}.{}.", sys::fs::geteuid(), settings.full_name())
}

/// Whether `dir` may be the shared-memory directory of this server: a directory named
/// with the server's prefix, directly in the place such directories go.
pub fn is_shm_dir_of(settings: &Settings, dir: &Path) -> bool {
    let named = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(&shm_prefix(settings)));
    named && dir.parent() == Some(shm_parent(settings).as_path())
}

/// Makes a fresh shared-memory directory for the master `pid`:
/// `/dev/shm/tarsfork.<uid>.<App.Server>.<pid>.<random>`, mode 0700. The name cannot be
/// guessed ahead, and a directory already at it is never used (mkdir fails and another
/// name is drawn).
fn create_shm_dir(settings: &Settings, pid: i32) -> Result<RunDir, Error> {
    let parent = shm_parent(settings);
    let mut last = None;
    for _ in 0..8 {
        let name = format!("{}{pid}.{:016x}", shm_prefix(settings), random_u64());
        match RunDir::create_fresh(&parent, &name) {
            Ok(d) => return Ok(d),
            Err(Error::Io { source, what })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                last = Some(Error::Io { source, what });
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Config("cannot name a shared-memory directory".into())))
}

/// Whether the master that created the shared-memory directory `dir` (pid `pid` in its
/// name) still runs: its scoreboard row gives its start time, so a pid handed to
/// another process since does not keep a dead server's directory alive. Without a
/// readable row, the pid alone decides.
fn shm_owner_alive(dir: &RunDir, pid: i32) -> bool {
    let recorded = Scoreboard::open_readonly(dir).ok().and_then(|sb| {
        sb.rows()
            .iter()
            .find(|r| r.pid == pid && r.role == Some(MASTER.role))
            .map(|r| r.identity())
    });
    recorded.unwrap_or(ProcessId { pid, start: 0 }).is_alive()
}

/// Removes the shared-memory directories of earlier masters of this server that died
/// without cleaning up (kill -9). Only directories that are verifiably ours (owner,
/// mode, not a symlink) are looked at; anything else with our prefix is left alone.
fn remove_stale_shm(settings: &Settings) {
    let parent = shm_parent(settings);
    let prefix = shm_prefix(settings);
    let Ok(entries) = std::fs::read_dir(&parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('.').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(dir) = RunDir::existing(&e.path(), Trust::Private) else {
            log::warn(&format!(
                "leaving {} alone: it is not a private directory of ours",
                e.path().display()
            ));
            continue;
        };
        if !shm_owner_alive(&dir, pid) {
            log::info(&format!(
                "removing stale shared memory {}",
                dir.path().display()
            ));
            let _ = std::fs::remove_dir_all(dir.path());
        }
    }
}

/// Binds one listener: SO_REUSEADDR, the configured backlog, close-on-exec.
fn bind(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// The statistics and properties tables, in subdirectories of the server's
/// shared-memory directory (each made 0700 relative to its descriptor).
fn create_platform_tables(shared: &mut Shared, shm: &RunDir) -> Result<(), Error> {
    use crate::platform::aggregate::Capacity;
    let processes = 2 * (shared.settings.worker_num + shared.settings.task_worker_num) + 64;
    let shm_err = |e: crate::platform::aggregate::StoreError| Error::Shm(e.to_string());
    let subdir = |name: &str| -> Result<RunDir, Error> {
        let path = shm.join(name);
        sys::fs::mkdir_at(shm.fd(), name, 0o700)
            .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        RunDir::existing(&path, Trust::Private)
    };
    if shared.settings.client.stat.is_some() {
        let cap = Capacity {
            keys: 4096,
            processes,
        };
        let dir = subdir("stats")?;
        shared.stats = Some(
            crate::platform::stats::StatTable::create_at(dir.fd(), dir.path(), cap)
                .map_err(shm_err)?,
        );
    }
    let cap = Capacity {
        keys: 1024,
        processes,
    };
    let dir = subdir("props")?;
    shared.props = Some(
        crate::platform::props::PropTable::create_at(dir.fd(), dir.path(), cap).map_err(shm_err)?,
    );
    Ok(())
}

/// Pulls the application's config files from tarsconfig before any worker starts.
fn pull_configs(settings: &Settings, service: &Service) -> Result<(), Error> {
    if service.config_files.is_empty() {
        return Ok(());
    }
    let mut locator = Locator::new(settings);
    for file in &service.config_files {
        match config_pull::pull(settings, &mut locator, file) {
            Ok(path) => log::info(&format!("pulled config {file} into {}", path.display())),
            Err(e) => {
                let old = config_pull::config_dir(settings).join(file);
                if old.exists() {
                    log::warn(&format!(
                        "{e}; using the copy from before, {}",
                        old.display()
                    ));
                } else {
                    return Err(Error::Config(format!(
                        "cannot pull config file {file}: {e}"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
}

/// The adapters' listeners. Every listener the tree serves on comes from here.
fn bind_all(settings: &Settings) -> Result<Vec<Listener>, Error> {
    let mut out = Vec::new();
    for (i, a) in settings.adapters.iter().enumerate() {
        let ep = &a.endpoint;
        let addr = resolve(&ep.host, ep.port).ok_or_else(|| {
            Error::Config(format!(
                "adapter {}: cannot resolve host {:?} of endpoint `{}`",
                a.name, ep.host, ep
            ))
        })?;
        let listener = bind(addr, settings.backlog as i32)
            .map_err(|e| Error::io(format!("bind {addr} for {}", a.name), e))?;
        out.push(Listener {
            adapter: i,
            listener,
            protocol: a.protocol,
        });
    }
    Ok(out)
}

/// The admin endpoint on `local`, when one is configured.
fn bind_admin(settings: &Settings) -> Result<Option<AdminEndpoint>, Error> {
    let Some(ep) = &settings.local else {
        return Ok(None);
    };
    let addr = resolve(&ep.host, ep.port).ok_or_else(|| {
        Error::Config(format!(
            "local: cannot resolve host {:?} of endpoint `{ep}`",
            ep.host
        ))
    })?;
    bind(addr, settings.backlog as i32)
        .and_then(|l| AdminEndpoint::new(l, Locator::new(settings)))
        .map(Some)
        .map_err(|e| Error::io(format!("bind {addr} for the admin endpoint (local)"), e))
}

/// Starts the server in this process (already daemonized if asked) and runs the master
/// until the server stops. Returns the process exit code. A start that fails is
/// reported to the launcher, if any, with its reason.
pub(crate) fn run(
    settings: Settings,
    service: &Service,
    launcher: Option<Launcher>,
) -> Result<i32, Error> {
    let mut launcher = launcher;
    let result = start_and_supervise(settings, service, &mut launcher);
    if let Err(e) = &result {
        if let Some(l) = launcher.take() {
            l.send(&Readiness::Failed {
                reason: e.to_string(),
            });
        }
    }
    result
}

/// Builds what the tree needs, then supervises it; whatever happens, leaves no shared
/// memory and no pid file behind. `launcher` is handed back if no report was sent.
fn start_and_supervise(
    settings: Settings,
    service: &Service,
    launcher: &mut Option<Launcher>,
) -> Result<i32, Error> {
    log::set_role(MASTER.word);
    log::configure(&settings);
    let run_as = RunAs::from_settings(&settings)?;
    let pid = sys::getpid();
    if let Err(e) = sys::become_subreaper() {
        log::warn(&format!("prctl(PR_SET_CHILD_SUBREAPER) failed: {e}"));
    }
    let dirs = ServerDirs::create(&settings)?;
    let pidfile = PidFile::acquire(&dirs.pid, &dirs.pid_name, pid, |old| {
        log::warn(&format!(
            "stale pid file {} (pid {}) is not locked by a running master; taking it over",
            settings.pid_file.display(),
            old.map_or("?".to_string(), |p| p.to_string())
        ))
    })?;
    let listeners = bind_all(&settings)?;
    pull_configs(&settings, service)?;
    let admin = bind_admin(&settings)?;
    remove_stale_shm(&settings);
    let shm = create_shm_dir(&settings, pid)?;
    let max_procs = 2 * (settings.worker_num + settings.task_worker_num) + 64;
    let built = Scoreboard::create(&shm, max_procs, settings.adapters.len()).and_then(|sb| {
        let record = MasterRecord {
            master: ProcessId::current(),
            shm_dir: shm.path().to_path_buf(),
        };
        record.write(&dirs.pid, &dirs.pid_name).map_err(|e| {
            Error::io(
                format!(
                    "write the master record beside {}",
                    settings.pid_file.display()
                ),
                e,
            )
        })?;
        let queue = if settings.task_worker_num > 0 {
            Some(TaskQueue::new().map_err(|e| Error::io("create the task queue socketpair", e))?)
        } else {
            None
        };
        Ok((sb, record, queue))
    });
    let (scoreboard, record, task_queue) = match built {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_dir_all(shm.path());
            return Err(e);
        }
    };
    let (life_read, life_write) =
        sys::pipe().map_err(|e| Error::io("create the master's life pipe", e))?;
    let mut shared = Shared::new(
        settings,
        listeners,
        scoreboard,
        shm.path().to_path_buf(),
        task_queue,
        life_read,
        run_as,
    );
    let (me, wake) = match become_master(&mut shared, &shm) {
        Ok(x) => x,
        Err(e) => {
            remove_shared_memory(&shared);
            record.remove(&dirs.pid, &dirs.pid_name);
            return Err(e);
        }
    };
    let only = MasterOnly {
        pidfile: Some(pidfile),
        launcher: None,
        admin,
        life: Some(life_write),
        dirs: Some(dirs),
        shm: Some(shm),
        record: Some(record),
    };
    if let Some(f) = &service.on_master_start {
        f(&shared.settings);
    }
    let ready_by = sys::monotonic_ms() + shared.settings.activating_timeout.as_millis() as i64;
    let mut master = Master {
        service,
        shared,
        only,
        wake,
        me,
        phase: MasterPhase::Starting,
        manager: ManagerSlot {
            pid: None,
            started_ms: 0,
            ready: false,
            respawns: Respawns::new(Budget::for_manager(sys::monotonic_ms())),
            respawn_at: None,
        },
        ready_by,
    };
    master.only.launcher = launcher.take();
    let result = master.supervise();
    remove_shared_memory(&master.shared);
    if let (Some(r), Some(d)) = (&master.only.record, &master.only.dirs) {
        r.remove(&d.pid, &d.pid_name);
    }
    if let Some(p) = master.only.pidfile.take() {
        p.remove();
    }
    *launcher = master.only.launcher.take();
    result
}

/// The master's own part of the shared memory, its row, title and signal handlers.
fn become_master(shared: &mut Shared, shm: &RunDir) -> Result<(ProcHandle, Wakeup), Error> {
    create_platform_tables(shared, shm)?;
    let me = shared.scoreboard.register(MASTER.role, 0, 0)?;
    me.set_state(ProcState::Idle);
    sys::proctitle::set_title(&MASTER.title(&shared.settings));
    let wake =
        signals::install(MASTER.signals).map_err(|e| Error::io("install signal handlers", e))?;
    Ok((me, wake))
}

/// Removes the server's shared memory (the master's clean exit).
fn remove_shared_memory(shared: &Shared) {
    shared.scoreboard.unlink();
    if let Some(t) = &shared.stats {
        let _ = t.unlink();
    }
    if let Some(t) = &shared.props {
        let _ = t.unlink();
    }
    let _ = std::fs::remove_dir_all(&shared.shm_dir);
}

impl Master<'_> {
    /// The loop: until the server has stopped, returning the exit code.
    fn supervise(&mut self) -> Result<i32, Error> {
        self.spawn_manager()?;
        loop {
            let admin_ready = self.wait()?;
            let now = sys::monotonic_ms();
            let mut actions = signals::take();
            if admin_ready {
                actions.extend(self.serve_admin());
            }
            for action in actions {
                self.handle(action, now);
            }
            if let Some(code) = self.reap_manager(now)? {
                return Ok(code);
            }
            self.respawn_manager(now)?;
            self.watch_manager();
            if let Some(code) = self.advance_phase(now)? {
                return Ok(code);
            }
        }
    }

    /// Waits for a signal, admin work or the next tick; true when the admin endpoint
    /// has something to serve.
    fn wait(&mut self) -> Result<bool, Error> {
        let mut fds = vec![self.wake.fd()];
        if let Some(a) = &self.only.admin {
            fds.extend(a.fds());
        }
        let ready = sys::poll_readable(&fds, Some(Duration::from_millis(TICK_MS)))
            .map_err(|e| Error::io("poll", e))?;
        if ready[0] {
            self.wake.drain();
        }
        self.me.heartbeat();
        Ok(ready[1..].iter().any(|r| *r))
    }

    /// Answers the admin endpoint; returns the actions its requests ask for.
    fn serve_admin(&mut self) -> Vec<Action> {
        let Some(admin) = self.only.admin.as_mut() else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        for act in admin.serve(&self.shared) {
            match act {
                AdminAction::Shutdown => {
                    log::info("shutdown() on the admin endpoint");
                    actions.push(Action::Stop);
                }
                AdminAction::SetLogLevel(level) => log::set_level(level),
            }
        }
        actions
    }

    /// Acts on one signal: stops, or forwards it to the manager.
    fn handle(&mut self, action: Action, now: i64) {
        match action {
            Action::Stop | Action::FastStop => self.begin_stop(action == Action::FastStop, now),
            Action::ChildExited => {}
            Action::ReopenLogs => {
                log::reopen();
                self.signal_manager(libc::SIGWINCH);
            }
            other => self.signal_manager(signals::signal_for(other)),
        }
    }

    fn begin_stop(&mut self, fast: bool, now: i64) {
        if self.phase.stopping() && !fast {
            return;
        }
        log::info(if fast {
            "fast stop requested"
        } else {
            "graceful stop requested"
        });
        let wait = if fast {
            FAST_STOP_MS
        } else {
            self.shared.settings.max_wait_time.as_millis() as i64 + STOP_SLACK_MS
        };
        self.phase = MasterPhase::Stopping {
            deadline: now + wait,
        };
        self.signal_manager(signals::signal_for(if fast {
            Action::FastStop
        } else {
            Action::Stop
        }));
    }

    fn signal_manager(&self, sig: i32) {
        if let Some(pid) = self.manager.pid {
            let _ = sys::send_signal(pid, sig);
        }
    }

    /// Reaps the manager, and the orphaned workers of a dead manager that were
    /// re-parented to us. Some(code) when the server has stopped.
    fn reap_manager(&mut self, now: i64) -> Result<Option<i32>, Error> {
        while let Ok(Some((pid, status))) = sys::reap_any() {
            self.shared.forget(pid);
            if self.manager.pid != Some(pid) {
                continue;
            }
            self.manager.pid = None;
            if self.phase.stopping() {
                return Ok(Some(0));
            }
            if status == ExitStatus::Code(EXIT_BOOT_ERROR) {
                let msg = "a worker failed to boot (its error is logged above); server stopped"
                    .to_string();
                log::error(&msg);
                return Err(Error::Boot(msg));
            }
            let ready = self.manager.ready;
            let delay = self.manager.respawns.died(MANAGER_ID, ready, now);
            let when = match delay {
                Some(ms) => format!("in {ms} ms (crash-loop backoff: its pools never came up)"),
                None => "now".to_string(),
            };
            log::error(&format!(
                "manager process died with {status}; re-forking it {when} (its workers drain and exit)"
            ));
            self.manager.respawn_at = Some(now + delay.unwrap_or(0));
        }
        Ok(None)
    }

    /// Forks the manager again once the respawn policy lets it (never while stopping).
    fn respawn_manager(&mut self, now: i64) -> Result<(), Error> {
        match self.manager.respawn_at {
            Some(at) if now >= at && !self.phase.stopping() => {
                match self.manager.respawns.check(MANAGER_ID, now) {
                    Verdict::Go { .. } => {
                        self.manager.respawn_at = None;
                        self.spawn_manager()
                    }
                    Verdict::Backoff { until } | Verdict::Budget { until } => {
                        if self.manager.respawns.newly_dry() {
                            log::warn(&format!(
                                "manager re-fork budget spent; re-forking it in {} ms",
                                until - now
                            ));
                        }
                        self.manager.respawn_at = Some(until);
                        Ok(())
                    }
                }
            }
            _ => Ok(()),
        }
    }

    /// Notes when the running manager's pools are first all up.
    fn watch_manager(&mut self) {
        let m = &mut self.manager;
        if m.pid.is_none() || m.ready {
            return;
        }
        let rows = self.shared.scoreboard.rows();
        if pool::ready(&rows, &self.shared.settings, m.started_ms) {
            m.ready = true;
            m.respawns.ready(MANAGER_ID);
        }
    }

    /// Moves the phase on: reports readiness, fails a start that took too long, ends a
    /// stop, or KILLs a tree that outlived its stop deadline. Some(code) when the
    /// server has stopped.
    fn advance_phase(&mut self, now: i64) -> Result<Option<i32>, Error> {
        let manager_gone = self.manager.pid.is_none() && self.manager.respawn_at.is_none();
        match self.phase {
            MasterPhase::Starting => {
                if self.manager.ready {
                    self.phase = MasterPhase::Ready;
                    let lines = self.ready_lines();
                    daemon::report(self.only.launcher.take(), Readiness::Ready { lines });
                } else if now > self.ready_by {
                    return Err(Error::Timeout(format!(
                        "workers did not come up within activating-timeout ({} ms)",
                        self.shared.settings.activating_timeout.as_millis()
                    )));
                }
            }
            MasterPhase::Stopping { deadline } => {
                if manager_gone {
                    return Ok(Some(0));
                }
                if now >= deadline {
                    log::warn("stop deadline passed; killing the whole tree");
                    self.kill_tree();
                    self.phase = MasterPhase::Killed;
                    self.manager.respawn_at = None;
                }
            }
            MasterPhase::Killed => {
                if manager_gone {
                    return Ok(Some(0));
                }
            }
            MasterPhase::Ready => {}
        }
        Ok(None)
    }

    /// KILLs every process of the tree (each checked against its recorded start time,
    /// so a reused pid is never hit) and the manager, our child, which we then reap.
    fn kill_tree(&self) {
        process::kill_tree(&self.shared.scoreboard.tree());
        self.signal_manager(libc::SIGKILL);
    }

    /// Forks a child that runs `body` with what children inherit; master-only
    /// descriptors are closed in the child before `body` runs. The master's one way to
    /// fork.
    fn fork_child(&mut self, what: &str, body: impl FnOnce(&mut Shared)) -> Result<i32, Error> {
        let only = &mut self.only;
        process::spawn(&mut self.shared, what, |shared| {
            only.close_in_child();
            body(shared)
        })
    }

    fn spawn_manager(&mut self) -> Result<(), Error> {
        let master_pid = sys::getpid();
        let service = self.service;
        // Before the fork: the manager's workers stamp their rows after it.
        let started_ms = sys::monotonic_ms();
        let pid = self.fork_child("manager process", |shared| {
            manager::run_child(shared, service, master_pid)
        })?;
        self.manager.pid = Some(pid);
        self.manager.started_ms = started_ms;
        self.manager.ready = false;
        Ok(())
    }

    /// The ready report: one line per listener, then the master's.
    fn ready_lines(&self) -> Vec<String> {
        let shared = &self.shared;
        let mut lines = Vec::new();
        for l in &shared.listeners {
            let a = &shared.settings.adapters[l.adapter];
            let addr = l
                .listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| a.endpoint.host_port());
            let scheme = if a.protocol == AdapterProtocol::Tars {
                "tars"
            } else {
                "http"
            };
            lines.push(format!(
                "tarsfork: {} listening on {scheme}://{addr}",
                a.name
            ));
        }
        lines.push(format!(
            "tarsfork: {} started, master pid {}, {}",
            shared.settings.full_name(),
            shared.master_pid,
            pool::sizes(&shared.settings)
        ));
        lines
    }
}

/// 64 random bits from the kernel (for names nobody may guess ahead).
fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        if f.read_exact(&mut buf).is_ok() {
            return u64::from_ne_bytes(buf);
        }
    }
    // Without /dev/urandom the name is guessable, but mkdir still refuses an existing
    // directory, so a prepared one is never used.
    (sys::wall_ms() as u64) ^ ((sys::getpid() as u64) << 32) ^ sys::monotonic_ms() as u64
}

//! The master: binds every listener, takes the pid file, creates the shared memory and
//! the task queue, forks the manager and supervises it, forwards control signals, and on
//! its way out takes everything down and cleans up.
//!
//! The listeners stay owned by the master for its whole life, so a future zero-downtime
//! restart can hand them (FD_CLOEXEC cleared) to a new executable.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::Error;
use crate::pidfile::PidFile;
use crate::platform::admin::{AdminAction, AdminEndpoint};
use crate::platform::config_pull;
use crate::platform::locator::Locator;
use crate::process::{self, Listener, Shared};
use crate::scoreboard::{ProcHandle, ProcState, Role, Scoreboard};
use crate::service::Service;
use crate::settings::{Protocol as AdapterProtocol, Settings};
use crate::signals::{self, Action};
use crate::sys::{self, ExitStatus};
use crate::{log, manager, taskq, EXIT_BOOT_ERROR};

/// Where the master is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterPhase {
    /// Manager forked, workers not all up yet.
    Starting,
    /// Every worker and task worker reported in.
    Ready,
    /// A stop was asked; waiting for the manager until the deadline (monotonic ms).
    Stopping {
        /// When the tree gets KILL.
        deadline: i64,
    },
}

/// Sends the readiness report: down the launcher's pipe (daemon), closing it so the
/// launcher returns, or to stdout (foreground).
fn report(shared: &mut Shared, text: &str) {
    match shared.launcher.take() {
        Some(fd) => {
            use std::os::fd::AsRawFd;
            let _ = sys::write_all_fd(fd.as_raw_fd(), format!("{text}END\n").as_bytes());
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

/// The shared-memory directory of the server whose master has `pid`.
pub fn shm_dir(settings: &Settings, pid: i32) -> PathBuf {
    let base = Path::new("/dev/shm");
    let name = format!("tarsfork.{}.{}.{pid}", sys::getuid(), settings.full_name());
    if base.is_dir() {
        base.join(name)
    } else {
        settings.datapath.join(name)
    }
}

/// Removes the shared-memory directories of earlier masters of this server that died
/// without cleaning up (kill -9).
fn remove_stale_shm(settings: &Settings) {
    let Some(parent) = shm_dir(settings, 0).parent().map(Path::to_path_buf) else {
        return;
    };
    let prefix = format!("tarsfork.{}.{}.", sys::getuid(), settings.full_name());
    let Ok(entries) = std::fs::read_dir(&parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !sys::process_exists(pid) {
            log::info(&format!(
                "removing stale shared memory {}",
                e.path().display()
            ));
            let _ = std::fs::remove_dir_all(e.path());
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

/// The statistics and properties tables, in the server's shared-memory directory.
fn create_platform_tables(shared: &mut Shared) -> Result<(), Error> {
    use crate::platform::aggregate::Capacity;
    let processes = 2 * (shared.settings.worker_num + shared.settings.task_worker_num) + 64;
    let shm = |e: crate::platform::aggregate::StoreError| Error::Shm(e.to_string());
    if shared.settings.client.stat.is_some() {
        let cap = Capacity {
            keys: 4096,
            processes,
        };
        shared.stats = Some(
            crate::platform::stats::StatTable::create(&shared.shm_dir.join("stats"), cap)
                .map_err(shm)?,
        );
    }
    let cap = Capacity {
        keys: 1024,
        processes,
    };
    shared.props = Some(
        crate::platform::props::PropTable::create(&shared.shm_dir.join("props"), cap)
            .map_err(shm)?,
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

/// Starts the server in this process (already daemonized if asked) and runs the master
/// until the server stops. Returns the process exit code.
pub(crate) fn run(
    settings: Settings,
    service: &Service,
    launcher: Option<OwnedFd>,
) -> Result<i32, Error> {
    let mut launcher = launcher;
    let result = start_and_supervise(settings, service, &mut launcher);
    if let (Err(e), Some(fd)) = (&result, launcher.take()) {
        use std::os::fd::AsRawFd;
        let _ = sys::write_all_fd(fd.as_raw_fd(), format!("ERR {e}\nEND\n").as_bytes());
    }
    result
}

fn start_and_supervise(
    settings: Settings,
    service: &Service,
    launcher: &mut Option<OwnedFd>,
) -> Result<i32, Error> {
    log::set_role("master");
    log::configure(&settings);
    let pid = sys::getpid();
    if let Err(e) = sys::become_subreaper() {
        log::warn(&format!("prctl(PR_SET_CHILD_SUBREAPER) failed: {e}"));
    }
    let pidfile = PidFile::acquire(&settings.pid_file, pid, |old| {
        log::warn(&format!(
            "stale pid file {} (pid {}) is not locked by a running master; taking it over",
            settings.pid_file.display(),
            old.map_or("?".to_string(), |p| p.to_string())
        ))
    })?;
    let listeners = bind_all(&settings)?;
    pull_configs(&settings, service)?;
    let admin = match &settings.local {
        Some(ep) => {
            let addr = resolve(&ep.host, ep.port).ok_or_else(|| {
                Error::Config(format!(
                    "local: cannot resolve host {:?} of endpoint `{ep}`",
                    ep.host
                ))
            })?;
            let l = bind(addr, settings.backlog as i32)
                .and_then(|l| AdminEndpoint::new(l, Locator::new(&settings)))
                .map_err(|e| Error::io(format!("bind {addr} for the admin endpoint (local)"), e))?;
            Some(l)
        }
        None => None,
    };
    remove_stale_shm(&settings);
    let dir = shm_dir(&settings, pid);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let max_procs = 2 * (settings.worker_num + settings.task_worker_num) + 64;
    let scoreboard = Scoreboard::create(&dir, max_procs, settings.adapters.len())?;
    let token = random_token();
    let task_queue = if settings.task_worker_num > 0 {
        Some(taskq::bind_queue(token).map_err(|e| Error::io("bind the task queue socket", e))?)
    } else {
        None
    };
    let mut shared = Shared::new(
        settings,
        listeners,
        scoreboard,
        dir,
        token,
        task_queue,
        Some(pidfile),
    )?;
    shared.launcher = launcher.take();
    create_platform_tables(&mut shared)?;
    if let Some(a) = &admin {
        shared.master_only_fds = a.fds();
    }
    let me = shared.scoreboard.register(Role::Master, 0, 0)?;
    me.set_state(ProcState::Idle);
    sys::proctitle::set_title(&process::title(&shared.settings, Role::Master));
    let wake = signals::install(&signals::TABLE.iter().map(|t| t.0).collect::<Vec<_>>())
        .map_err(|e| Error::io("install signal handlers", e))?;
    if let Some(f) = &service.on_master_start {
        f(&shared.settings);
    }
    let result = supervise(&mut shared, service, &wake, &me, admin);
    // Whatever happened, leave nothing behind.
    shared.scoreboard.unlink();
    if let Some(t) = &shared.stats {
        let _ = t.unlink();
    }
    if let Some(t) = &shared.props {
        let _ = t.unlink();
    }
    let _ = std::fs::remove_dir_all(&shared.shm_dir);
    if let Some(p) = shared.pidfile.take() {
        p.remove();
    }
    *launcher = shared.launcher.take();
    result
}

fn supervise(
    shared: &mut Shared,
    service: &Service,
    wake: &signals::Wakeup,
    me: &ProcHandle,
    mut admin: Option<AdminEndpoint>,
) -> Result<i32, Error> {
    let mut manager_pid = spawn_manager(shared, service)?;
    let mut manager_started = sys::monotonic_ms();
    let mut failures = 0u32;
    let mut respawn_at: Option<i64> = None;
    let mut phase = MasterPhase::Starting;
    let exit_code = 0;
    let ready_by = sys::monotonic_ms() + shared.settings.activating_timeout.as_millis() as i64;
    let adapter_names: Vec<String> = shared
        .settings
        .adapters
        .iter()
        .map(|a| a.name.clone())
        .collect();
    loop {
        let mut fds = vec![wake.fd()];
        if let Some(a) = &admin {
            fds.extend(a.fds());
        }
        let ready = sys::poll_readable(&fds, Some(Duration::from_millis(10)))
            .map_err(|e| Error::io("poll", e))?;
        if ready[0] {
            wake.drain();
        }
        me.heartbeat();
        let now = sys::monotonic_ms();
        let mut actions = signals::take();
        if ready[1..].iter().any(|r| *r) {
            if let Some(a) = admin.as_mut() {
                for act in a.serve(shared) {
                    match act {
                        AdminAction::Shutdown => {
                            log::info("shutdown() on the admin endpoint");
                            actions.push(Action::Stop);
                        }
                        AdminAction::SetLogLevel(level) => log::set_level(level),
                    }
                }
            }
        }
        for action in actions {
            match action {
                Action::Stop | Action::FastStop => {
                    if let MasterPhase::Stopping { .. } = phase {
                        if action == Action::Stop {
                            continue;
                        }
                    }
                    let fast = action == Action::FastStop;
                    log::info(if fast {
                        "fast stop requested"
                    } else {
                        "graceful stop requested"
                    });
                    let wait = if fast {
                        1000
                    } else {
                        shared.settings.max_wait_time.as_millis() as i64 + 2000
                    };
                    phase = MasterPhase::Stopping {
                        deadline: now + wait,
                    };
                    if manager_pid > 0 {
                        let _ = sys::send_signal(manager_pid, signals::signal_for(action));
                    }
                }
                Action::ChildExited => {}
                Action::ReopenLogs => {
                    log::reopen();
                    if manager_pid > 0 {
                        let _ = sys::send_signal(manager_pid, libc::SIGWINCH);
                    }
                }
                other => {
                    if manager_pid > 0 {
                        let _ = sys::send_signal(manager_pid, signals::signal_for(other));
                    }
                }
            }
        }
        // Reap: the manager, or orphaned workers of a dead manager re-parented to us.
        while let Ok(Some((pid, status))) = sys::reap_any() {
            shared.scoreboard.remove(pid);
            shared.scoreboard.release_connections(pid, &adapter_names);
            if pid != manager_pid {
                continue;
            }
            manager_pid = 0;
            if let MasterPhase::Stopping { .. } = phase {
                return Ok(exit_code);
            }
            if status == ExitStatus::Code(EXIT_BOOT_ERROR) {
                let msg = "a worker failed to boot (its error is logged above); server stopped"
                    .to_string();
                log::error(&msg);
                return Err(Error::Boot(msg));
            }
            let uptime = now - manager_started;
            failures = if uptime < manager::MIN_UPTIME_MS {
                failures + 1
            } else {
                0
            };
            let delay = if failures == 0 {
                0
            } else {
                manager::backoff_delay(failures)
            };
            log::error(&format!(
                "manager process died with {status}; re-forking it in {delay} ms (its workers drain and exit)"
            ));
            respawn_at = Some(now + delay);
        }
        if let Some(at) = respawn_at {
            if now >= at && !matches!(phase, MasterPhase::Stopping { .. }) {
                respawn_at = None;
                manager_pid = spawn_manager(shared, service)?;
                manager_started = sys::monotonic_ms();
            }
        }
        match phase {
            MasterPhase::Starting => {
                if all_up(shared) {
                    phase = MasterPhase::Ready;
                    let text = ready_report(shared);
                    report(shared, &text);
                } else if now > ready_by {
                    return Err(Error::Timeout(format!(
                        "workers did not come up within activating-timeout ({} ms)",
                        shared.settings.activating_timeout.as_millis()
                    )));
                }
            }
            MasterPhase::Stopping { deadline } => {
                if manager_pid == 0 && respawn_at.is_none() {
                    return Ok(exit_code);
                }
                if now >= deadline {
                    log::warn("stop deadline passed; killing the whole tree");
                    kill_tree(shared, manager_pid);
                    if manager_pid > 0 {
                        // Reap it so we don't leave a zombie to our own parent.
                        let _ = sys::send_signal(manager_pid, libc::SIGKILL);
                    }
                    phase = MasterPhase::Stopping { deadline: i64::MAX };
                    respawn_at = None;
                }
            }
            MasterPhase::Ready => {}
        }
    }
}

fn spawn_manager(shared: &mut Shared, service: &Service) -> Result<i32, Error> {
    let master_pid = sys::getpid();
    process::spawn(shared, "manager process", |shared| {
        sys::proctitle::set_title(&process::title(&shared.settings, Role::Manager));
        log::set_role("manager");
        // The manager has no requests to finish: it goes with the master at once.
        if let Err(e) = sys::die_with_parent(libc::SIGKILL, master_pid) {
            log::error(&format!("prctl(PR_SET_PDEATHSIG) failed: {e}"));
        }
        manager::run(shared, service)
    })
}

fn all_up(shared: &Shared) -> bool {
    let rows = shared.scoreboard.rows();
    let up = |role: Role| {
        rows.iter()
            .filter(|r| r.role == role && matches!(r.state, ProcState::Idle | ProcState::Busy))
            .count()
    };
    up(Role::Worker) >= shared.settings.worker_num
        && up(Role::Task) >= shared.settings.task_worker_num
}

fn ready_report(shared: &Shared) -> String {
    let mut out = String::new();
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
        out.push_str(&format!(
            "tarsfork: {} listening on {scheme}://{addr}\n",
            a.name
        ));
    }
    out.push_str(&format!(
        "tarsfork: {} started, master pid {}, {} event worker(s), {} task worker(s)\n",
        shared.settings.full_name(),
        shared.master_pid,
        shared.settings.worker_num,
        shared.settings.task_worker_num
    ));
    out
}

/// KILLs every process in the scoreboard (checked against its recorded start time so a
/// reused pid is never hit) and the manager.
pub(crate) fn kill_tree(shared: &Shared, manager_pid: i32) {
    for row in shared.scoreboard.rows() {
        if row.pid <= 0 || row.pid == sys::getpid() {
            continue;
        }
        if sys::process_start_time(row.pid) == Some(row.proc_start) {
            let _ = sys::send_signal(row.pid, libc::SIGKILL);
        }
    }
    if manager_pid > 0 {
        let _ = sys::send_signal(manager_pid, libc::SIGKILL);
    }
}

fn random_token() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        if f.read_exact(&mut buf).is_ok() {
            return u64::from_ne_bytes(buf);
        }
    }
    (sys::wall_ms() as u64) ^ ((sys::getpid() as u64) << 32)
}

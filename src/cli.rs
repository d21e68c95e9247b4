//! The command: `tarsfork --config=<file> [start|stop|restart|reload|status|table]`.
//!
//! With no command word it starts, as tarsnode calls it. Without `--config` it runs the
//! embedded default (foreground, HTTP on loopback). Every command finds the running
//! master through the locked pid file, never through `ps`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::error::Error;
use crate::master;
use crate::pidfile::{self, MasterRecord, PidState};
use crate::pool::MASTER;
use crate::rundir::{RunDir, ServerDirs, Trust};
use crate::scoreboard::Scoreboard;
use crate::service::Service;
use crate::settings::Settings;
use crate::status::ServerStatus;
use crate::sys::{self, ident, ident::ProcessId};
use crate::{daemon, log, process, signals};

/// Exit code of `status` when the server is not running (LSB init-script convention).
pub const EXIT_NOT_RUNNING: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "tarsfork",
    version,
    about = "A prefork server for the Tars platform: master, manager, event workers, task workers",
    after_help = "With no command word the server starts (that is how tarsnode runs it).\n\
                  Without --config it runs the embedded demo settings in the foreground."
)]
struct Cli {
    /// The Tars config file (as tarsnode writes it). Without it: the embedded default.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With the embedded default only: the HTTP address to listen on (default 127.0.0.1:8080).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    listen: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server (refused while one runs); returns when it is ready if daemonize=1.
    Start,
    /// Graceful stop; waits for the master to exit, then KILLs the tree after the timeout.
    Stop {
        /// Milliseconds to wait before KILL (default: deactivating-timeout).
        #[arg(long, value_name = "MS")]
        timeout: Option<u64>,
    },
    /// Stop (waiting for the exit), then start.
    Restart {
        /// Milliseconds to wait for the stop before KILL (default: deactivating-timeout).
        #[arg(long, value_name = "MS")]
        timeout: Option<u64>,
    },
    /// Rolling reload of workers and task workers (USR1), or task workers only (USR2).
    Reload {
        /// Reload task workers only.
        #[arg(long)]
        tasks: bool,
    },
    /// One line per process, read from shared memory (no signal is sent).
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Inspect the running server's shared-memory tables.
    Table {
        #[command(subcommand)]
        command: TableCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TableCommand {
    /// List the tables.
    List,
    /// Print one table's rows.
    Dump {
        /// Table name, as `table list` shows it.
        name: String,
        /// JSON instead of a text table.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line and runs the command for `service`.
pub fn main(service: Service) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let settings = match load_settings(&cli) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("tarsfork: {msg}");
            return ExitCode::from(1);
        }
    };
    log::set_level(settings.loglevel);
    let result = match cli.command.unwrap_or(Command::Start) {
        Command::Start => start(settings, &service),
        Command::Stop { timeout } => stop(&settings, timeout).map(|_| 0),
        Command::Restart { timeout } => match stop(&settings, timeout) {
            Ok(_) => start(settings, &service),
            Err(e) => Err(e),
        },
        Command::Reload { tasks } => reload(&settings, tasks),
        Command::Status { json } => status(&settings, json),
        Command::Table { command } => table(&settings, command),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tarsfork: {e}");
            ExitCode::from(1)
        }
    }
}

fn load_settings(cli: &Cli) -> Result<Settings, String> {
    let mut settings = match &cli.config {
        Some(path) => Settings::from_file(path).map_err(|e| e.to_string())?,
        None => Settings::embedded_default(),
    };
    if let Some(listen) = &cli.listen {
        if cli.config.is_some() {
            return Err("--listen applies to the embedded default only; set the adapter's endpoint in the config file".into());
        }
        let (host, port) = listen
            .rsplit_once(':')
            .and_then(|(h, p)| {
                Some((
                    h.trim_matches(['[', ']']).to_string(),
                    p.parse::<u16>().ok()?,
                ))
            })
            .ok_or_else(|| {
                format!("--listen {listen:?}: expected HOST:PORT, e.g. --listen 127.0.0.1:8080")
            })?;
        for a in settings.adapters.iter_mut() {
            a.endpoint.host = host.clone();
            a.endpoint.port = port;
        }
    }
    settings.validate().map_err(|e| e.to_string())?;
    for k in settings.unknown_keys() {
        log::debug(&format!("ignored config key: {k}"));
    }
    Ok(settings)
}

fn start(settings: Settings, service: &Service) -> Result<u8, Error> {
    // The directories are made and verified here, so that a refusal is the command's
    // error even when the server would daemonize.
    let dirs = ServerDirs::create(&settings)?;
    if let PidState::Running(pid) = pidfile::probe(&dirs.pid, &dirs.pid_name)? {
        return Err(Error::AlreadyRunning {
            pid,
            pid_file: settings.pid_file.clone(),
        });
    }
    drop(dirs);
    if !settings.daemonize {
        return master::run(settings, service, None).map(|c| c as u8);
    }
    daemon::start(settings, |settings, launcher| {
        match master::run(settings, service, Some(launcher)) {
            Ok(code) => code,
            Err(e) => {
                log::error(&e.to_string());
                1
            }
        }
    })
}

/// The running master, verified before anything trusts it.
struct RunningMaster {
    /// Its pid and start time.
    id: ProcessId,
    /// Its shared-memory directory, verified (ours, 0700, not a symlink).
    shm: RunDir,
}

/// Finds the running master: the locked pid file names its pid, the record beside the
/// pid file gives its start time and shared-memory directory, and the process that has
/// the pid now must be that master — same start time, running as our uid, with the
/// master's title. None when no master holds the pid file. A pid file that names any
/// other process is refused with the reason: no command ever signals it.
fn find_master(settings: &Settings) -> Result<Option<RunningMaster>, Error> {
    let Some(dirs) = ServerDirs::existing(settings)? else {
        return Ok(None);
    };
    let pid = match pidfile::probe(&dirs.pid, &dirs.pid_name)? {
        PidState::Running(Some(pid)) => pid,
        PidState::Running(None) => {
            return Err(Error::Config(format!(
                "pid file {} is locked but holds no pid; is another program using it?",
                settings.pid_file.display()
            )))
        }
        _ => return Ok(None),
    };
    let refuse = |why: String| {
        Error::NotOurMaster(format!(
            "refusing to act on pid {pid} named by the locked pid file {}: {why}; nothing was signalled",
            settings.pid_file.display()
        ))
    };
    let record_path = dirs.pid.join(&pidfile::record_name(&dirs.pid_name));
    let record = MasterRecord::read(&dirs.pid, &dirs.pid_name)
        .map_err(|e| Error::io(format!("read {}", record_path.display()), e))?
        .ok_or_else(|| {
            refuse(format!(
                "there is no master record {} beside it",
                record_path.display()
            ))
        })?;
    if record.master.pid != pid {
        return Err(refuse(format!(
            "the master record {} names pid {}",
            record_path.display(),
            record.master.pid
        )));
    }
    if !record.master.is_current() {
        return Err(refuse(
            "it is not the process that started as the master (its start time differs, or it is gone)"
                .into(),
        ));
    }
    let me = sys::fs::geteuid();
    let uid = ident::uid_of(pid);
    if uid != Some(me) {
        return Err(refuse(format!(
            "it runs as uid {}, not as uid {me}",
            uid.map_or("?".into(), |u| u.to_string())
        )));
    }
    let title = MASTER.title(settings);
    let shown = ident::cmdline_of(pid).unwrap_or_default();
    if shown != title {
        return Err(refuse(format!("its title is {shown:?}, not {title:?}")));
    }
    if !master::is_shm_dir_of(settings, &record.shm_dir) {
        return Err(refuse(format!(
            "its record names {} as its shared memory, which is not this server's",
            record.shm_dir.display()
        )));
    }
    let shm = RunDir::existing(&record.shm_dir, Trust::Private)?;
    Ok(Some(RunningMaster {
        id: record.master,
        shm,
    }))
}

/// Whether a master holds the pid file now.
fn pid_file_locked(settings: &Settings) -> Result<bool, Error> {
    let Some(dirs) = ServerDirs::existing(settings)? else {
        return Ok(false);
    };
    Ok(matches!(
        pidfile::probe(&dirs.pid, &dirs.pid_name)?,
        PidState::Running(_)
    ))
}

fn not_running(settings: &Settings) -> String {
    let stale = ServerDirs::existing(settings).ok().flatten().and_then(|d| {
        match pidfile::probe(&d.pid, &d.pid_name) {
            Ok(PidState::Stale(pid)) => Some(pid),
            _ => None,
        }
    });
    match stale {
        Some(pid) => format!(
            "{} is not running (stale pid file {} names pid {}, but no master holds its lock)",
            settings.full_name(),
            settings.pid_file.display(),
            pid.map_or("?".into(), |p| p.to_string())
        ),
        None => format!(
            "{} is not running (no pid file {})",
            settings.full_name(),
            settings.pid_file.display()
        ),
    }
}

/// The processes of `tree` that still carry one of this server's titles: what a KILL
/// after the stop timeout may hit (each is also checked against its start time).
fn still_ours(settings: &Settings, tree: &[ProcessId]) -> Vec<ProcessId> {
    let prefix = format!("{}: ", settings.full_name());
    tree.iter()
        .filter(|p| ident::cmdline_of(p.pid).is_some_and(|t| t.starts_with(&prefix)))
        .copied()
        .collect()
}

fn stop(settings: &Settings, timeout: Option<u64>) -> Result<(), Error> {
    let Some(master) = find_master(settings)? else {
        println!("tarsfork: {}", not_running(settings));
        return Ok(());
    };
    let pid = master.id.pid;
    // Remember the tree (the master included) before the master removes the scoreboard.
    let mut tree = Scoreboard::open_readonly(&master.shm)
        .map(|sb| sb.tree())
        .unwrap_or_default();
    if !tree.contains(&master.id) {
        tree.push(master.id);
    }
    master
        .id
        .signal(signals::signal_for(signals::Action::Stop))
        .map_err(|e| Error::io(format!("send TERM to master pid {pid}"), e))?;
    let wait = timeout.map_or(settings.deactivating_timeout, Duration::from_millis);
    let deadline = sys::monotonic_ms() + wait.as_millis() as i64;
    while sys::monotonic_ms() < deadline {
        if !pid_file_locked(settings)? {
            println!(
                "tarsfork: {} stopped (master pid {pid})",
                settings.full_name()
            );
            return Ok(());
        }
        sys::sleep(Duration::from_millis(5));
    }
    process::kill_tree(&still_ours(settings, &tree));
    // The lock goes with the master's death.
    let deadline = sys::monotonic_ms() + 2000;
    while sys::monotonic_ms() < deadline && pid_file_locked(settings)? {
        sys::sleep(Duration::from_millis(5));
    }
    println!(
        "tarsfork: {} did not stop within {} ms; killed the process tree (master pid {pid})",
        settings.full_name(),
        wait.as_millis()
    );
    Ok(())
}

fn reload(settings: &Settings, tasks: bool) -> Result<u8, Error> {
    let Some(master) = find_master(settings)? else {
        eprintln!("tarsfork: {}", not_running(settings));
        return Ok(1);
    };
    let pid = master.id.pid;
    let action = if tasks {
        signals::Action::ReloadTasks
    } else {
        signals::Action::Reload
    };
    let sig = signals::signal_for(action);
    if !master
        .id
        .signal(sig)
        .map_err(|e| Error::io(format!("signal master pid {pid}"), e))?
    {
        eprintln!("tarsfork: master pid {pid} exited meanwhile; nothing was signalled");
        return Ok(1);
    }
    println!(
        "tarsfork: sent {} to master pid {pid} ({})",
        sys::signal_name(sig),
        if tasks {
            "reload task workers"
        } else {
            "rolling reload"
        }
    );
    Ok(0)
}

fn status(settings: &Settings, json: bool) -> Result<u8, Error> {
    let Some(master) = find_master(settings)? else {
        println!("tarsfork: {}", not_running(settings));
        return Ok(EXIT_NOT_RUNNING);
    };
    let sb = Scoreboard::open_readonly(&master.shm)?;
    let report = ServerStatus::read(&settings.full_name(), master.id.pid, &sb);
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(0)
}

fn table(settings: &Settings, command: TableCommand) -> Result<u8, Error> {
    let Some(master) = find_master(settings)? else {
        println!("tarsfork: {}", not_running(settings));
        return Ok(EXIT_NOT_RUNNING);
    };
    let dir = master.shm.path();
    let shm = |e: tarsfork_shm::ShmError| Error::Shm(e.to_string());
    match command {
        TableCommand::List => {
            println!(
                "{:<16} {:>6} {:>9} {:>12}",
                "TABLE", "ROWS", "CAPACITY", "BYTES"
            );
            for t in tarsfork_shm::inspect::list_tables(dir).map_err(shm)? {
                println!(
                    "{:<16} {:>6} {:>9} {:>12}",
                    t.name, t.len, t.capacity, t.memory_size
                );
            }
        }
        TableCommand::Dump { name, json } => {
            if name.contains('/') || name.starts_with('.') {
                return Err(Error::Config(format!(
                    "{name:?} is not a table name; see `table list`"
                )));
            }
            let path = dir.join(&name);
            if !path.exists() {
                return Err(Error::Config(format!(
                    "no table {name:?} in {}; see `table list`",
                    dir.display()
                )));
            }
            let text = if json {
                tarsfork_shm::inspect::render_json(&path)
            } else {
                tarsfork_shm::inspect::render_text(&path)
            }
            .map_err(shm)?;
            println!("{}", text.trim_end());
        }
    }
    Ok(0)
}
